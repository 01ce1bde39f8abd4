"""A hand-edited list URL with a non-numeric store, region or tag gets Django's "bad filter" answer, not a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import TagFactory


@pytest.mark.parametrize("param", ["store__id__exact", "region__id__exact", "tag"])
def test_a_non_numeric_filter_value_is_refused_cleanly(org, hq_operator, client, param):
    TagFactory(name="高意向")  # the tag filter is offered only when the corp has tags
    client.force_login(hq_operator)
    response = client.get(reverse("admin:customers_customer_changelist"), {param: "1 OR 1=1"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
