"""An HQ operator looking at a huge list is told when its count is the planner's estimate ("约 N"), and
sees a plain exact number otherwise."""

from __future__ import annotations

from django.urls import reverse

from portal import pagination
from tests.factories import CustomerFactory


def _paginator_line(client) -> str:
    page = client.get(reverse("admin:customers_customer_changelist"), {"q": "张"}).content.decode()
    return page[page.index('<p class="paginator">'):].split("</p>", 1)[0]


def test_an_estimated_count_says_about_and_an_exact_one_does_not(org, hq_operator, client, monkeypatch):
    for i in range(3):
        CustomerFactory(name=f"张{i}号", staff=org.guide_a)
    client.force_login(hq_operator)
    exact = _paginator_line(client)
    assert "约" not in exact and "3" in exact

    # What a search over millions looks like: a costly plan, more rows than the probe.
    monkeypatch.setattr(pagination, "query_plan_estimate", lambda queryset: (40_000, 90_000.0))
    monkeypatch.setattr(pagination, "COUNT_PROBE", 2)
    estimated = _paginator_line(client)
    assert "约" in estimated and "40000" in estimated.replace(",", "")
