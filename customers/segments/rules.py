"""Segments (分层/人群): a rule stored as JSON in ``Segment.rule``, compiled to ONE query on customers.

The rule language
-----------------
A rule is a JSON object; every condition present must hold (AND). Inside a list, any value
matches (OR). Every condition is optional, but a rule needs at least one::

    {
      "tags":        {"any": [3, 7], "all": [12], "none": [40]},   # Tag ids on the customer row
      "regions":     [2],             # region ids, each including its sub-regions (the customer's region)
      "franchisees": [5],             # the customer's franchisee (of its primary store)
      "stores":      [101, 102],      # the customer's primary store
      "staff":       [900],           # the customer's primary staff member
      "channels":    [4],             # the channel the customer first came through
      "stages":      ["interested", "lead"],                       # lifecycle stages (Stage values)
      "first_added": {"from": "2026-01-01", "to": "2026-03-31"},   # local dates, both inclusive
      "last_touch":  {"after": 30, "before": "2026-11-01"},        # see below
      "active":      true,            # true: still a friend of some staff; false: deleted by everyone
      "member":      true,            # true: linked to a member record; false: not a member
      "member_levels": ["gold"],      # member conditions match members only
      "spend":       {"min": "100", "max": "5000.00"},             # lifetime spend (CNY), inclusive
      "rfm":         {"r": {"min": 4}, "f": {"min": 2, "max": 5}, "m": {"max": 3}}   # scores, inclusive
    }

- A date is ``"YYYY-MM-DD"`` (a day in Asia/Shanghai) or an integer N: N days before the day the
  segment is evaluated ("30 天内未触达" is ``{"last_touch": {"before": 30}}``), so a saved segment
  keeps meaning the same thing tomorrow.
- ``last_touch.after`` D: last touched on D or later. ``last_touch.before`` D: last touched before
  D, or never touched. ``first_added`` ignores customers without a first-add date.
- The organisation conditions (regions, franchisees, stores, staff) are ANDed with each other.
- Member conditions (levels, spend, RFM) only match customers linked to a member; customers
  without the value (no RFM score yet) do not match a bound on it.

Compilation
-----------
``segment_queryset(rule=, viewer=)`` is one SELECT on ``customers_customer``, always intersected with
``Customer.objects.for_user(by)``. Tags use the GIN-indexed ``tag_ids`` array (``&&`` for any,
``@>`` for all, ``NOT &&`` for none), member conditions one join to ``customers_member``; nothing
joins through relationships. Regions are expanded to their sub-regions first (one small query on
the region tree), so the customers query carries literal region ids the planner can estimate.
``segment_matches(rule, row)`` is the same rule in plain Python (for the property test and the
benchmark's baseline); the two must always agree.

How it is fast at 10 M customers (bench/segments.py measures each alternative)
-------------------------------------------------------------------------------
A typical rule (three tag conditions, a region, two stages, a spend floor) matches ~0.1 % of the
customers, but no single condition is selective: each tag condition keeps ~20 %, the stages ~30 %, the
region ~25 %. ANDing bitmaps from the tag GIN, stage and region indexes meant reading ~10 M TIDs in one
process (0.8–1.6 s). Instead the covering index ``customer_segment_cover`` — (stage, region_id)
INCLUDE (member_id, store_id, id, active, tag_ids) — lets the planner read only the entries of the
wanted (stage, region) pairs (~1 M) and test the tags on the index tuple, in a parallel index-only
scan, then join the few thousand survivors to their members by primary key. A store-scoped viewer's
``store_id IN (…)`` and ``active`` are tested in the index too, and a snapshot's INSERT … SELECT reads
``id`` from it. Rules without a stage or region still use the tag GIN / other indexes (planner's choice).
An index-only scan skips the table only on pages the visibility map marks all-visible: migration 0005
has autovacuum keep it fresh (vacuum after 1 % of the customers changed, analyze after 0.5 %); right
before such a vacuum the count costs about what the bitmap plan did (bench variant after_churn_1pct).
Each statement runs with ``segment_statement()`` settings (see there).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Channel, Stage, Tag
from portal.errors import DomainError
from stores.access.scoping import region_ids_with_descendants
from stores.models import Franchisee, Region, Staff, Store

ID_LIST_KEYS = ("regions", "franchisees", "stores", "staff", "channels")
TAG_MODES = ("any", "all", "none")
RFM_KEYS = ("r", "f", "m")
RULE_KEYS = ("tags", *ID_LIST_KEYS, "stages", "first_added", "last_touch", "active", "member", "member_levels",
             "spend", "rfm")
MEMBER_KEYS = ("member_levels", "spend", "rfm")
MAX_IDS = 1000  # a rule is written by a person in a form, not a customer list
MAX_RFM = 32767

ID_MODELS = {"regions": Region, "franchisees": Franchisee, "stores": Store, "staff": Staff, "channels": Channel}


class SegmentRuleError(DomainError):
    """A rule that cannot be compiled; ``messages`` are for the person who wrote it."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("；".join(messages))


def _labels() -> dict[str, str]:
    return {"tags": _("标签"), "regions": _("区域"), "franchisees": _("加盟商"), "stores": _("门店"),
            "staff": _("跟进员工"), "channels": _("来源渠道"), "stages": _("阶段"), "first_added": _("首次添加"),
            "last_touch": _("最近触达"), "active": _("好友状态"), "member": _("是否会员"),
            "member_levels": _("会员等级"), "spend": _("累计消费"), "rfm": _("RFM"),
            "any": _("标签含任一"), "all": _("标签含全部"), "none": _("标签不含")}


# -- normalising (no database) -----------------------------------------------------------------------

def _ids(value, label: str, errors: list[str]) -> list[int]:
    if not isinstance(value, list) or not value:
        errors.append(_("%(label)s条件为空：请至少选择一项，或去掉这个条件") % {"label": label})
        return []
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value):
        errors.append(_("%(label)s条件只能包含正整数编号") % {"label": label})
        return []
    if len(value) > MAX_IDS:
        errors.append(_("%(label)s条件最多 %(n)d 项") % {"label": label, "n": MAX_IDS})
        return []
    return sorted(set(value))


def _date_bound(value, label: str, errors: list[str]):
    """An ISO date string or a non-negative number of days before today; returned as given (normalised)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        if 0 <= value <= 36500:
            return value
    elif isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    errors.append(_("%(label)s的日期无效：%(value)s（应为 YYYY-MM-DD 或天数）") % {"label": label, "value": value})
    return None


def _range(value, keys: tuple[str, str], label: str, errors: list[str], parse) -> dict:
    if not isinstance(value, dict) or not value:
        errors.append(_("%(label)s条件为空：请至少填写一端，或去掉这个条件") % {"label": label})
        return {}
    unknown = set(value) - set(keys)
    if unknown:
        errors.append(_("%(label)s条件含未知的键：%(keys)s") % {"label": label, "keys": "、".join(sorted(unknown))})
        return {}
    out = {}
    for key in keys:
        if value.get(key) is not None:
            parsed = parse(value[key], label, errors)
            if parsed is not None:
                out[key] = parsed
    return out


def _money(value, label: str, errors: list[str]) -> str | None:
    try:
        amount = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        errors.append(_("%(label)s金额无效：%(value)s") % {"label": label, "value": value})
        return None
    return str(amount.quantize(Decimal("0.01")))


def _score(value, label: str, errors: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RFM:
        errors.append(_("%(label)s分值无效：%(value)s") % {"label": label, "value": value})
        return None
    return value


def day_of(bound, *, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=bound) if isinstance(bound, int) else dt.date.fromisoformat(bound)


def day_start(day: dt.date) -> dt.datetime:
    """Midnight at the start of a local (Asia/Shanghai) day, as an aware datetime."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_default_timezone())


def _check_inverted(rule: dict, today: dt.date, errors: list[str]) -> None:
    first = rule.get("first_added", {})
    if "from" in first and "to" in first and day_of(first["from"], today=today) > day_of(first["to"], today=today):
        errors.append(_("首次添加的日期范围颠倒：开始日期晚于结束日期"))
    touch = rule.get("last_touch", {})
    if "after" in touch and "before" in touch and \
            day_of(touch["after"], today=today) >= day_of(touch["before"], today=today):
        errors.append(_("最近触达的范围颠倒：“不早于”的日期必须早于“早于”的日期"))
    spend = rule.get("spend", {})
    if "min" in spend and "max" in spend and Decimal(spend["min"]) > Decimal(spend["max"]):
        errors.append(_("累计消费的范围颠倒：最低金额大于最高金额"))
    for key, bounds in rule.get("rfm", {}).items():
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            errors.append(_("RFM 的 %(key)s 分值范围颠倒：最低分大于最高分") % {"key": key.upper()})


def _tags_clean(value, labels: dict, errors: list[str]) -> dict:
    if not isinstance(value, dict) or not value:
        errors.append(_("标签条件为空：请至少选择一个标签，或去掉这个条件"))
        return {}
    unknown = set(value) - set(TAG_MODES)
    if unknown:
        errors.append(_("标签条件只能是 any / all / none：%(keys)s") % {"keys": "、".join(sorted(unknown))})
        return {}
    tags = {mode: _ids(value[mode], labels[mode], errors) for mode in TAG_MODES if mode in value}
    clash = (set(tags.get("any", ())) | set(tags.get("all", ()))) & set(tags.get("none", ()))
    if clash:
        ids = "、".join(f"#{i}" for i in sorted(clash))
        errors.append(_("同一标签不能既要求含有又要求不含：%(ids)s") % {"ids": ids})
    return tags


def _rfm_clean(value, errors: list[str]) -> dict:
    if not isinstance(value, dict) or not value or set(value) - set(RFM_KEYS):
        errors.append(_("RFM 条件应为 r / f / m 的分值范围"))
        return {}
    return {key: _range(value[key], ("min", "max"), f"RFM {key.upper()}", errors, _score)
            for key in RFM_KEYS if key in value}


def segment_rule_normalize(*, rule, today: dt.date | None = None) -> dict:
    """Check a rule's shape and return it normalised (sorted ids, decimals as strings). No queries."""
    labels = _labels()
    errors: list[str] = []
    if not isinstance(rule, dict):
        raise SegmentRuleError([_("规则必须是一个 JSON 对象")])
    unknown = set(rule) - set(RULE_KEYS)
    if unknown:
        errors.append(_("未知的条件：%(keys)s") % {"keys": "、".join(sorted(unknown))})
    out: dict = {}
    if "tags" in rule:
        out["tags"] = _tags_clean(rule["tags"], labels, errors)
    for key in ID_LIST_KEYS:
        if key in rule:
            out[key] = _ids(rule[key], labels[key], errors)
    if "stages" in rule:
        stages = rule["stages"]
        if not isinstance(stages, list) or not stages:
            errors.append(_("阶段条件为空：请至少选择一个阶段，或去掉这个条件"))
        elif not set(stages) <= set(Stage.values):
            errors.append(_("未知的阶段：%(s)s") % {"s": "、".join(sorted(map(str, set(stages) - set(Stage.values))))})
        else:
            out["stages"] = [s for s in Stage.values if s in stages]
    if "first_added" in rule:
        out["first_added"] = _range(rule["first_added"], ("from", "to"), labels["first_added"], errors, _date_bound)
    if "last_touch" in rule:
        out["last_touch"] = _range(rule["last_touch"], ("after", "before"), labels["last_touch"], errors,
                                   _date_bound)
    for key in ("active", "member"):
        if key in rule:
            if not isinstance(rule[key], bool):
                errors.append(_("%(label)s条件应为“是”或“否”") % {"label": labels[key]})
            else:
                out[key] = rule[key]
    if "member_levels" in rule:
        levels = rule["member_levels"]
        if not isinstance(levels, list) or not levels or not all(isinstance(v, str) and v.strip() for v in levels):
            errors.append(_("会员等级条件为空：请至少填写一个等级，或去掉这个条件"))
        else:
            out["member_levels"] = sorted({v.strip() for v in levels})
    if "spend" in rule:
        out["spend"] = _range(rule["spend"], ("min", "max"), labels["spend"], errors, _money)
    if "rfm" in rule:
        out["rfm"] = _rfm_clean(rule["rfm"], errors)
    if out.get("member") is False and any(key in out for key in MEMBER_KEYS):
        errors.append(_("条件矛盾：要求“不是会员”，又设置了会员等级、消费或 RFM 条件"))
    if not errors:
        _check_inverted(out, today or timezone.localdate(), errors)
    if not errors and not out:
        errors.append(_("规则为空：请至少设置一个条件"))
    if errors:
        raise SegmentRuleError(errors)
    return out


def segment_rule_validate(*, rule) -> dict:
    """Everything ``segment_rule_normalize`` checks, plus: every id names an existing row (a few queries)."""
    clean = segment_rule_normalize(rule=rule)
    errors: list[str] = []
    tag_ids = sorted({i for ids in clean.get("tags", {}).values() for i in ids})
    if tag_ids:
        known = set(Tag.objects.filter(pk__in=tag_ids, deleted=False).values_list("pk", flat=True))
        missing = [i for i in tag_ids if i not in known]
        if missing:
            errors.append(_("标签不存在或已删除：%(ids)s") % {"ids": "、".join(f"#{i}" for i in missing)})
    labels = _labels()
    for key, model in ID_MODELS.items():
        ids = clean.get(key)
        if ids:
            known = set(model._default_manager.filter(pk__in=ids).values_list("pk", flat=True))
            missing = [i for i in ids if i not in known]
            if missing:
                errors.append(_("%(label)s不存在：%(ids)s") % {"label": labels[key],
                                                              "ids": "、".join(f"#{i}" for i in missing)})
    if errors:
        raise SegmentRuleError(errors)
    return clean


# -- compiling to SQL --------------------------------------------------------------------------------

def _range_q(field: str, bounds: dict, low: str = "min", high: str = "max") -> Q:
    q = Q()
    if low in bounds:
        q &= Q(**{f"{field}__gte": bounds[low]})
    if high in bounds:
        q &= Q(**{f"{field}__lte": bounds[high]})
    return q


def _dates_q(rule: dict, today: dt.date) -> Q:
    q = Q()
    first = rule.get("first_added", {})
    if "from" in first:
        q &= Q(first_added_at__gte=day_start(day_of(first["from"], today=today)))
    if "to" in first:
        q &= Q(first_added_at__lt=day_start(day_of(first["to"], today=today) + dt.timedelta(days=1)))
    touch = rule.get("last_touch", {})
    if "after" in touch:
        q &= Q(last_touch_at__gte=day_start(day_of(touch["after"], today=today)))
    if "before" in touch:
        q &= Q(last_touch_at__lt=day_start(day_of(touch["before"], today=today))) | Q(last_touch_at__isnull=True)
    return q


def segment_rule_q(*, rule: dict, today: dt.date | None = None) -> Q:
    """The WHERE clause of a normalised rule, on Customer (reads the region tree if the rule has regions)."""
    today = today or timezone.localdate()
    tags = rule.get("tags", {})
    q = Q()
    if "any" in tags:
        q &= Q(tag_ids__overlap=tags["any"])  # tag_ids && ARRAY[...]
    if "all" in tags:
        q &= Q(tag_ids__contains=tags["all"])  # tag_ids @> ARRAY[...]
    if "none" in tags:
        q &= ~Q(tag_ids__overlap=tags["none"])  # NOT (tag_ids && ARRAY[...]); tag_ids is NOT NULL
    if "regions" in rule:
        # Literal ids, not a tree-walking subquery: the planner then adds the region to the bitmap scan with a
        # real estimate (measured in bench/segments.py: 114 → 65 ms at 1 M customers).
        q &= Q(region_id__in=sorted(region_ids_with_descendants(region_ids=rule["regions"])))
    for key, field in (("franchisees", "franchisee_id"), ("stores", "store_id"), ("staff", "staff_id"),
                       ("channels", "channel_id")):
        if key in rule:
            q &= Q(**{f"{field}__in": rule[key]})
    if "stages" in rule:
        q &= Q(stage__in=rule["stages"])
    q &= _dates_q(rule, today)
    if "active" in rule:
        q &= Q(active=rule["active"])
    if "member" in rule:
        q &= Q(member__isnull=not rule["member"])
    # All member conditions sit in one AND: Django joins customers_member once (INNER JOIN).
    if "member_levels" in rule:
        q &= Q(member__level__in=rule["member_levels"])
    q &= _range_q("member__lifetime_spend", rule.get("spend", {}))
    for key, bounds in rule.get("rfm", {}).items():
        q &= _range_q(f"member__rfm_{key}", bounds)
    return q


# -- the same rule in Python (property test, benchmark baseline) -------------------------------------

def _in_range(value, bounds: dict, low: str = "min", high: str = "max") -> bool:
    if not bounds:
        return True
    if value is None:
        return False
    return (low not in bounds or value >= bounds[low]) and (high not in bounds or value <= bounds[high])


def _dates_match(rule: dict, row: dict, today: dt.date) -> bool:
    first, added = rule.get("first_added", {}), row.get("first_added_at")
    if first:
        if added is None:
            return False
        if "from" in first and added < day_start(day_of(first["from"], today=today)):
            return False
        if "to" in first and added >= day_start(day_of(first["to"], today=today) + dt.timedelta(days=1)):
            return False
    touch, touched = rule.get("last_touch", {}), row.get("last_touch_at")
    if "after" in touch and (touched is None or touched < day_start(day_of(touch["after"], today=today))):
        return False
    return not ("before" in touch and touched is not None
                and touched >= day_start(day_of(touch["before"], today=today)))


def _member_match(rule: dict, member: dict | None) -> bool:
    if "member" in rule and (member is not None) != rule["member"]:
        return False
    if not any(rule.get(key) for key in MEMBER_KEYS):
        return True
    if member is None:
        return False
    if "member_levels" in rule and member.get("level") not in rule["member_levels"]:
        return False
    spend = {k: Decimal(v) for k, v in rule.get("spend", {}).items()}
    if not _in_range(Decimal(member["lifetime_spend"]) if member.get("lifetime_spend") is not None else None, spend):
        return False
    return all(_in_range(member.get(f"rfm_{key}"), bounds) for key, bounds in rule.get("rfm", {}).items())


def segment_matches(rule: dict, customer_row: dict, *, today: dt.date | None = None) -> bool:
    """Does one customer match? ``customer_row`` holds the customer's columns (tag_ids, stage, store_id,
    staff_id, franchisee_id, channel_id, active, first_added_at, last_touch_at), ``region_lineage`` (its
    region id and every ancestor's) and ``member`` (None, or a dict of level, lifetime_spend, rfm_r/f/m)."""
    return _matches(segment_rule_normalize(rule=rule, today=today), customer_row, today or timezone.localdate())


def segment_matches_count(rule: dict, rows: Iterable[dict], *, today: dt.date | None = None) -> int:
    """How many rows match (the benchmark's baseline): the rule is normalised once."""
    today = today or timezone.localdate()
    clean = segment_rule_normalize(rule=rule, today=today)
    return sum(1 for row in rows if _matches(clean, row, today))


def _matches(rule: dict, row: dict, today: dt.date) -> bool:
    tags = set(row.get("tag_ids") or ())
    wanted = rule.get("tags", {})
    if "any" in wanted and not tags & set(wanted["any"]):
        return False
    if "all" in wanted and not set(wanted["all"]) <= tags:
        return False
    if "none" in wanted and tags & set(wanted["none"]):
        return False
    if "regions" in rule and not set(row.get("region_lineage") or ()) & set(rule["regions"]):
        return False
    for key, field in (("franchisees", "franchisee_id"), ("stores", "store_id"), ("staff", "staff_id"),
                       ("channels", "channel_id")):
        if key in rule and row.get(field) not in rule[key]:
            return False
    if "stages" in rule and row.get("stage") not in rule["stages"]:
        return False
    if "active" in rule and bool(row.get("active")) != rule["active"]:
        return False
    return _dates_match(rule, row, today) and _member_match(rule, row.get("member"))
