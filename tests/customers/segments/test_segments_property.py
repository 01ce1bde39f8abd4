"""The compiled SQL of a segment selects exactly the customers the plain-Python reading of the rule
selects — for random customers, random rules and every kind of viewer (Hypothesis)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Customer, Member, Stage
from customers.segments.rules import segment_matches
from customers.segments.selectors import segment_queryset
from tests.customers.segments.helpers import SH, tags
from tests.factories import ChannelFactory, StaffFactory

DAYS = 10  # customers' dates and the rules' bounds fall within the last 10 days, so they often meet
LEVELS = ["金卡", "银卡", ""]
SPENDS = [Decimal(v) for v in ("0", "50", "99.99", "100", "100.01", "500")]
TIMES = [time(0, 0), time(12, 0), time(23, 59)]  # a day's edges in Shanghai


@pytest.fixture
def world(org, hq_operator, region_manager_east, store_manager_of_a, staff_of_a):
    staff = [org.guide_a, org.manager_a, org.guide_b, StaffFactory(store=org.store_a2), StaffFactory(store=org.store_c)]
    parents = {r.pk: r.parent_id for r in (org.east, org.east_sh, org.east_hz, org.south, org.south_gz)}

    def lineage(region_id):
        while region_id:
            yield region_id
            region_id = parents[region_id]

    east_stores = {org.store_a.pk, org.store_a2.pk}
    return SimpleNamespace(
        staff=staff, tag_ids=[t.pk for t in tags(*(f"属性{i}" for i in range(6)))],
        channel_ids=[ChannelFactory().pk, ChannelFactory().pk], lineage=lineage,
        regions=list(parents), stores=[org.store_a.pk, org.store_a2.pk, org.store_b.pk, org.store_c.pk],
        franchisees=[org.franchisee_one.pk, org.franchisee_two.pk],
        # each viewer with the Python reading of their scope
        viewers=[(hq_operator, lambda c: True),
                 (region_manager_east, lambda c: c["store_id"] in east_stores),
                 (store_manager_of_a, lambda c: c["store_id"] == org.store_a.pk),
                 (staff_of_a, lambda c: c["staff_id"] == org.guide_a.pk)],
    )


def moment(days_ago: int, at: time) -> datetime:
    return datetime.combine(timezone.localdate() - timedelta(days=days_ago), at, tzinfo=SH)


def when():
    return st.none() | st.builds(moment, st.integers(0, DAYS), st.sampled_from(TIMES))


def a_member():
    score = st.none() | st.integers(1, 5)
    return st.none() | st.fixed_dictionaries({"level": st.sampled_from(LEVELS),
                                              "lifetime_spend": st.sampled_from(SPENDS),
                                              "rfm_r": score, "rfm_f": score, "rfm_m": score})


def a_customer(w):
    return st.fixed_dictionaries({
        "staff": st.none() | st.sampled_from(w.staff), "tag_ids": st.lists(st.sampled_from(w.tag_ids), unique=True,
                                                                            max_size=4),
        "stage": st.sampled_from(Stage.values), "channel_id": st.none() | st.sampled_from(w.channel_ids),
        "active": st.booleans(), "first_added_at": when(), "last_touch_at": when(), "member": a_member(),
    })


def bounds(values, low_key, high_key):
    """A min/max pair with either end possibly missing, never inverted."""
    def build(pair):
        low, high = sorted(pair) if None not in pair else pair
        return {key: v for key, v in ((low_key, low), (high_key, high)) if v is not None}
    return st.tuples(st.none() | values, st.none() | values).filter(lambda p: p != (None, None)).map(build)


KEYS = ["tags", "regions", "franchisees", "stores", "staff", "channels", "stages", "first_added", "last_touch",
        "active", "member", "member_levels", "spend", "rfm"]


@st.composite
def conditions(draw, w) -> dict:
    """One random condition of every kind."""
    ids = lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)  # noqa: E731
    shuffled = draw(st.permutations(w.tag_ids))
    want = {mode: draw(st.integers(0, 2)) for mode in ("any", "all", "none")}
    picked, start = {}, 0
    for mode, n in want.items():  # disjoint, so "any"/"all" never clash with "none"
        if n:
            picked[mode], start = shuffled[start:start + n], start + n
    out = {"tags": picked or {"any": shuffled[:1]}}
    for key, pool in (("regions", w.regions), ("franchisees", w.franchisees), ("stores", w.stores),
                      ("staff", [s.pk for s in w.staff]), ("channels", w.channel_ids)):
        out[key] = draw(ids(pool))
    out["stages"] = draw(st.lists(st.sampled_from(Stage.values), min_size=1, max_size=3, unique=True))
    out["first_added"] = _date_range(draw, "from", "to", strict=False)
    out["last_touch"] = _date_range(draw, "after", "before", strict=True)
    out["active"], out["member"] = draw(st.booleans()), draw(st.booleans())
    out["member_levels"] = draw(st.lists(st.sampled_from(["金卡", "银卡"]), min_size=1, unique=True))
    out["spend"] = {k: str(v) for k, v in draw(bounds(st.sampled_from(SPENDS), "min", "max")).items()}
    out["rfm"] = draw(st.dictionaries(st.sampled_from("rfm"), bounds(st.integers(1, 5), "min", "max"), min_size=1))
    return out


def combined(draw, each: dict) -> dict:
    """Two to four of the conditions together."""
    rule = {key: each[key] for key in draw(st.sets(st.sampled_from(KEYS), min_size=2, max_size=4))}
    if rule.get("member") is False:  # "not a member" with member conditions is refused as contradictory
        for key in ("member_levels", "spend", "rfm"):
            rule.pop(key, None)
    return rule


def _date_range(draw, low_key, high_key, *, strict):
    """Days-ago bounds: the older day is the low end; a strict range needs two different days."""
    first, second = draw(st.integers(0, DAYS)), draw(st.integers(0, DAYS))
    older, newer = max(first, second), min(first, second)
    if strict and older == newer:
        older += 1
    as_bound = lambda n: draw(st.sampled_from([n, (timezone.localdate() - timedelta(days=n)).isoformat()]))  # noqa: E731
    side = draw(st.sampled_from(["both", "low", "high"]))
    out = {}
    if side in ("both", "low"):
        out[low_key] = as_bound(older)
    if side in ("both", "high"):
        out[high_key] = as_bound(newer)
    return out


def _insert(specs: list[dict]) -> list[dict]:
    """bulk_create the customers (and members); return each as the row the Python evaluator reads."""
    members = Member.objects.bulk_create([Member(member_no=f"P{i:04d}", **spec["member"])
                                          for i, spec in enumerate(specs) if spec["member"]])
    member_of = iter(members)
    customers, rows = [], []
    for i, spec in enumerate(specs):
        staff = spec["staff"]
        store = staff.store if staff else None
        row = {**spec, "staff_id": staff.pk if staff else None, "store_id": store.pk if store else None,
               "franchisee_id": store.franchisee_id if store else None}
        customers.append(Customer(
            external_userid=f"wmPROP{i:04d}", name=f"p{i}", staff=staff, store=store,
            region_id=store.region_id if store else None, franchisee_id=row["franchisee_id"],
            channel_id=spec["channel_id"], stage=spec["stage"], tag_ids=spec["tag_ids"], active=spec["active"],
            first_added_at=spec["first_added_at"], last_touch_at=spec["last_touch_at"],
            member=next(member_of) if spec["member"] else None))
        rows.append(row)
    for customer, row in zip(Customer.objects.bulk_create(customers), rows, strict=True):
        row["pk"] = customer.pk
    return rows


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_sql_selects_what_the_python_reading_selects(world, data):
    specs = data.draw(st.lists(a_customer(world), min_size=10, max_size=30), label="customers")
    each = data.draw(conditions(world), label="conditions")
    rule = combined(data.draw, each)
    # Every kind of condition alone (HQ), and a combination of them for every viewer.
    checks = [({key: value}, world.viewers[0]) for key, value in each.items()]
    checks += [(rule, viewer) for viewer in world.viewers]
    mismatches = []
    with transaction.atomic():
        rows = _insert(specs)
        for row in rows:
            row["region_lineage"] = list(world.lineage(row["staff"].store.region_id)) if row["staff"] else []
        for check, (viewer, sees) in checks:
            expected = {row["pk"] for row in rows if sees(row) and segment_matches(check, row)}
            compiled = set(segment_queryset(rule=check, viewer=viewer).values_list("pk", flat=True))
            if compiled != expected:
                mismatches.append((check, viewer.username, sorted(compiled - expected), sorted(expected - compiled)))
        transaction.set_rollback(True)
    assert not mismatches
