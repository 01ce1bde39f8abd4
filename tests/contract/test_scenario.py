"""The day-in-the-life script produces the traffic a demo needs, through the same control actions as tests."""

from __future__ import annotations


def test_a_day_in_the_life_adds_customers_and_fires_callbacks(sandbox):
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店"}],
               members=[{"userid": f"g{i}", "name": f"导购{i}", "department": [2]} for i in range(12)])
    happened = sandbox.do("scenario/step", count=300, seed=7)["happened"]
    assert happened.get("direct_add", 0) + happened.get("scan", 0) > 100
    assert happened.get("customer_deletes", 0) > 0 and happened.get("edit", 0) > 0
    state = sandbox.get("state")
    assert state["tables"]["customers"] > 100 and state["callbacks"]["emitted"] > 250
