"""Remark mobiles on the relationship page: an HQ operator sees them masked, like members' mobiles."""

from __future__ import annotations

from django.urls import reverse

from tests.factories import relationship_in


def test_hq_sees_remark_mobiles_masked_never_whole(org, hq_operator, client):
    relationship = relationship_in(org.store_a)
    relationship.remark_mobiles = ["+86 138-0013-8000", "0571-8888666"]
    relationship.save(update_fields=["remark_mobiles"])
    client.force_login(hq_operator)
    page = client.get(reverse("admin:customers_relationship_change", args=[relationship.pk])).content.decode()
    assert "138****8000" in page and "****8666" in page
    assert "138-0013-8000" not in page and "13800138000" not in page and "0571-8888666" not in page
