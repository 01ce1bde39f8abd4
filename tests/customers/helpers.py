"""Helpers for the customers tests that talk to the sandbox: customers loaded quietly, the calls it received,
corp tags made in WeCom, snapshots of what a user sees, callbacks settled. Fixtures are in conftest.py."""

from __future__ import annotations

from customers.models import Customer, Relationship
from portal.wecom.gateway import wecom_call
from portal.wecom.models import CallbackEvent
from tests.conftest import eventually

TOKEN_ERRORS = {40014, 41001, 42001}  # refused before the endpoint ran (a reset sandbox forgets our token)


def customers_load(sandbox, userid: str, count: int, *, prefix: str, start: int = 0, createtime: int | None = None,
                   **follow) -> list[str]:
    """``count`` customers followed by ``userid``, loaded without callbacks (as if they were always there)."""
    ids = [f"wm{prefix}{i:06d}" for i in range(start, start + count)]
    now = createtime or sandbox.get("state")["now"]
    sandbox.do("customers/load", customers=[{"external_userid": e, "name": f"客户{prefix}{i}", "unionid": f"o{e}x"}
                                            for i, e in enumerate(ids)],
               follows=[{"userid": userid, "external_userid": e, "createtime": now - 1000 + i, **follow}
                        for i, e in enumerate(ids)])
    return ids


def follow_load(sandbox, userid: str, external_userid: str, **follow) -> None:
    """One more (quiet) follow of a customer WeCom already knows."""
    sandbox.do("customers/load", follows=[{"userid": userid, "external_userid": external_userid, **follow}])


def sandbox_calls(sandbox, endpoint: str) -> list[dict]:
    """The calls the sandbox received at ``endpoint`` that reached it (not refused for the token)."""
    calls = sandbox.get("calls", endpoint=endpoint, limit=2000)["calls"]
    return [c for c in calls if c.get("errcode") not in TOKEN_ERRORS]


def corp_tags_create(group: str, names: list[str]) -> dict[str, str]:
    """Tags made in WeCom (not yet pulled): name → WeCom tag id."""
    answer = wecom_call("externalcontact/add_corp_tag", data={"group_name": group, "tag": [{"name": n} for n in names]})
    return {t["name"]: t["id"] for t in answer["tag_group"]["tag"]}


def snapshot() -> dict:
    """What a user sees of customers and relationships (synced_at is bookkeeping, left out)."""
    customers = {c.external_userid: (c.name, c.unionid, c.staff_id, c.store_id, c.region_id, c.franchisee_id,
                                     c.active, tuple(c.tag_ids), c.first_added_at, c.stage)
                 for c in Customer.objects.all()}
    relationships = {(r.staff.userid, r.customer.external_userid): (
        r.status, r.added_at, r.ended_at, r.remark, r.description, r.state, r.add_way, tuple(r.tag_ids), r.store_id)
        for r in Relationship.objects.select_related("staff", "customer")}
    return {"customers": customers, "relationships": relationships}


def callbacks_settled(sandbox, *, at_least: int = 1, timeout: float = 60.0) -> None:
    """Every callback delivered and processed by the worker (none pending, none failed)."""
    drained = sandbox.drain(timeout=timeout)
    assert drained["drained"] and not drained["held"], drained

    def settled():
        events = CallbackEvent.objects.filter(event="change_external_contact")
        open_ = events.filter(status__in=["pending", "processing"]).count()
        return events.count() >= at_least and not open_

    eventually(settled, timeout=timeout)
    failed = list(CallbackEvent.objects.filter(status="failed").values_list("change_type", "last_error"))
    assert not failed, failed
