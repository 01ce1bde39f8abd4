"""Which customers a bulk action means, as plain data: explicit ids, or the customer list's own filters.

A job (bulk tagging) stores a ``CustomerSelection`` as JSON with the acting user's id, never a query
object: the worker rebuilds ``Customer.objects.for_user(acting user)`` and applies the selection, so
it sees exactly the scope the user has *when the job runs*, and a stored payload is data that can only
ever select customers (it is validated again when read back; a tampered one is refused).

The filter vocabulary is the customer changelist's (customers/contacts/admin.py uses these same
functions for its filters and search box), so a selection reproduces what the list showed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from customers.models import Customer, Stage
from portal.errors import DomainError
from stores.access.scoping import region_ids_with_descendants

if TYPE_CHECKING:
    from portal.models import User

EXTERNAL_USERID = re.compile(r"^w[mo][A-Za-z0-9_-]{6,}$")  # WeChat (wm…) and WeCom (wo…) external contacts
UNIONID = re.compile(r"^o[A-Za-z0-9_-]{20,}$")
MOBILE = re.compile(r"^\+?(86)?1\d{10}$")
NAME_CONTAINS_MIN = 3  # a trigram index needs 3 characters; shorter terms use the prefix index only

# The changelist's filters and search box (the parameters its filters write into the URL).
FILTER_KEYS = ("stage__exact", "active__exact", "region__id__exact", "store__id__exact", "tag", "q")
ID_KEYS = ("region__id__exact", "store__id__exact", "tag")
# Parameters that change how the list is shown, not which customers it holds.
INERT_KEYS = ("o", "p", "all", "_facets")
BOOLEAN_VALUES = {"1": True, "True": True, "true": True, "0": False, "False": False, "false": False}
SEARCH_MAX = 200
IDS_MAX = 5000  # ticked rows (a page holds at most a few hundred); more is "select all" with filters
ID_MAX = 2**63 - 1


class CustomerSelectionError(DomainError):
    """A selection that cannot be stored or read back, in words an operator can act on."""


@dataclass(frozen=True)
class CustomerSelection:
    ids: tuple[int, ...] | None = None  # the ticked customers, or None: every customer the filters match
    filters: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"ids": list(self.ids)} if self.ids is not None else {"filters": dict(self.filters)}

    @classmethod
    def from_json(cls, data) -> CustomerSelection:
        """A stored selection, checked as strictly as a new one (a stored payload is never trusted)."""
        if not isinstance(data, dict) or len(data) != 1 or not ({"ids", "filters"} & set(data)):
            raise CustomerSelectionError(_("任务中保存的客户范围无效，未处理任何客户"))
        if "ids" in data:
            return customer_selection_of_ids(ids=data["ids"])
        if not isinstance(data["filters"], dict):
            raise CustomerSelectionError(_("任务中保存的客户范围无效，未处理任何客户"))
        return customer_selection_from_params(params=data["filters"])


def _id(value, *, label: str) -> int:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 0 < int(text) <= ID_MAX:
        raise CustomerSelectionError(_("筛选条件“%(label)s”的值无效：%(value)s") % {"label": label,
                                                                                  "value": str(value)[:40]})
    return int(text)


def customer_selection_of_ids(*, ids) -> CustomerSelection:
    if not isinstance(ids, list | tuple) or len(ids) > IDS_MAX:
        raise CustomerSelectionError(_("一次最多勾选 %(n)s 个客户；更多客户请先筛选，再选择全部") % {
            "n": f"{IDS_MAX:,}"})
    return CustomerSelection(ids=tuple(sorted({_id(pk, label="id") for pk in ids})))


def customer_selection_from_params(*, params: Mapping) -> CustomerSelection:
    """The customer list's filters from its URL parameters (a QueryDict or a plain dict). A parameter outside
    the list's own filters is refused, never ignored: ignoring it would select more than the list showed."""
    items = params.lists() if hasattr(params, "lists") else ((k, [v]) for k, v in params.items())
    filters: dict[str, str] = {}
    unknown: list[str] = []
    for key, values in items:
        if key in INERT_KEYS:
            continue
        if key not in FILTER_KEYS:
            unknown.append(str(key)[:40])
            continue
        if len(values) != 1 or not isinstance(values[0], str):
            raise CustomerSelectionError(_("筛选条件“%(key)s”只能有一个值") % {"key": key})
        filters[key] = values[0]
    if unknown:
        raise CustomerSelectionError(
            _("当前筛选条件（%(params)s）不能用于批量处理：请只用列表右侧的筛选和搜索框，或勾选具体客户") % {
                "params": "、".join(sorted(unknown))})
    for key in ID_KEYS:
        if key in filters:
            filters[key] = str(_id(filters[key], label=key))
    if "stage__exact" in filters and filters["stage__exact"] not in Stage.values:
        raise CustomerSelectionError(_("筛选条件“%(label)s”的值无效：%(value)s") % {
            "label": "stage", "value": filters["stage__exact"][:40]})
    if "active__exact" in filters and filters["active__exact"] not in BOOLEAN_VALUES:
        raise CustomerSelectionError(_("筛选条件“%(label)s”的值无效：%(value)s") % {
            "label": "active", "value": filters["active__exact"][:40]})
    if "q" in filters:
        filters["q"] = filters["q"].strip()[:SEARCH_MAX]
        if not filters["q"]:
            del filters["q"]
    return CustomerSelection(filters=filters)


# -- applying it (the admin's filters call these too) ---------------------------------------------------
def customers_in_region(*, queryset: QuerySet, region_id: int) -> QuerySet:
    """A region and all its sub-regions, over the customer's own (denormalised) region."""
    return queryset.filter(region_id__in=region_ids_with_descendants(region_ids=[region_id]))


def customers_search(*, queryset: QuerySet, term: str) -> QuerySet:
    """The list's search box: exact ids (external userid, unionid, a member's mobile) or the name's start
    (and, from 3 characters, any part of it, through the trigram index)."""
    from customers.members.services import mobile_hash
    from portal.parsers import ValueInvalid, mobile_normalize

    term = term.strip()
    if not term:
        return queryset
    if EXTERNAL_USERID.match(term):
        return queryset.filter(external_userid=term)
    if UNIONID.match(term):
        return queryset.filter(unionid=term)
    if MOBILE.match(term):
        try:
            return queryset.filter(member__mobile_hash=mobile_hash(mobile_normalize(term)))
        except ValueInvalid:
            return queryset.none()
    # UPPER(name) LIKE 'TERM%' uses the text_pattern_ops index; '%TERM%' the trigram index (3+ characters).
    match = Q(name__istartswith=term)
    if len(term) >= NAME_CONTAINS_MIN:
        match |= Q(name__icontains=term)
    return queryset.filter(match)


def customers_filter(*, queryset: QuerySet, filters: Mapping[str, str]) -> QuerySet:
    """Apply checked filters (``customer_selection_from_params``) to a customer queryset."""
    if "stage__exact" in filters:
        queryset = queryset.filter(stage=filters["stage__exact"])
    if "active__exact" in filters:
        queryset = queryset.filter(active=BOOLEAN_VALUES[filters["active__exact"]])
    if "region__id__exact" in filters:
        queryset = customers_in_region(queryset=queryset, region_id=int(filters["region__id__exact"]))
    if "store__id__exact" in filters:
        queryset = queryset.filter(store_id=int(filters["store__id__exact"]))
    if "tag" in filters:
        queryset = queryset.filter(tag_ids__contains=[int(filters["tag"])])
    if filters.get("q"):
        queryset = customers_search(queryset=queryset, term=filters["q"])
    return queryset


def customers_selected(*, viewer: User | None, selection: CustomerSelection) -> QuerySet[Customer]:
    """The customers of ``selection`` that ``viewer`` may see now (nothing if the viewer has no scope)."""
    queryset = Customer.objects.for_user(viewer)
    if selection.ids is not None:
        return queryset.filter(pk__in=list(selection.ids))
    return customers_filter(queryset=queryset, filters=selection.filters)
