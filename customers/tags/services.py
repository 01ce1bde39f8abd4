"""Corp tags (企业标签), synced both ways with WeCom, and tagging customers.

* Pull: ``get_corp_tag_list`` applied set-based (one upsert for groups, one for tags). A full pull marks
  what WeCom no longer lists as deleted; ``change_external_tag`` callbacks pull just the changed group or tag.
* Push: creating, renaming, reordering and deleting call WeCom *first* and write our rows from WeCom's
  answer (or a pull of the group right after), so our rows never claim what WeCom refused. Names
  (≤ 30 characters) and the corp limit (3,000 tags) are checked with clear errors *before* any call.
* Tagging: WeCom marks tags per relationship (``mark_tag`` with userid + external_userid), so tagging a
  set of customers is a job (SyncRun kind ``customers.tagging``) that walks the customers in batches,
  calls WeCom within the gateway's rate limit, records each refused relationship without stopping, and
  updates relationship.tag_ids and customer.tag_ids set-based per batch. Re-running it is harmless:
  WeCom ignores a tag already there, and the job continues from its cursor. The job stores which customers
  as data (ticked ids or the list's filters, customers/contacts/selection.py) plus the acting user's id, never
  a query object; the worker rebuilds ``Customer.objects.for_user(user)`` from them each time it runs.
* Deleted tags leave relationships and customers (a task strips them, batch by batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.contacts.selection import CustomerSelection, CustomerSelectionError, customers_selected
from customers.contacts.services import customers_refresh
from customers.models import Relationship, Stage, Tag, TagGroup
from customers.tags.tasks import customers_tagging_task, tags_purge_task
from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import TextLock, session_lock_try
from portal.pagination import capped_count
from portal.tasks import enqueue_after_commit
from portal.wecom.gateway import WeComError, WeComRateLimited, WeComUnavailable, wecom_call
from portal.wecom.models import SyncRun

if TYPE_CHECKING:
    from portal.models import User

NAME_MAX = 30
TAGS_MAX = 3000
TAGGING_KIND = "customers.tagging"
TAGGING_BATCH = 100  # customers per batch (≈ 100–150 mark_tag calls)
TAGGING_INLINE_MAX = 20  # a handful of customers is tagged at once, in the request
ERROR_SAMPLES = 20
PURGE_BATCH = 5000


class TagError(DomainError):
    """Bad input or a refusal from WeCom, in words an operator can act on."""


# -- validation, before any call -------------------------------------------------------------------
def _name_clean(name, *, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise TagError(_("请填写%(what)s名称") % {"what": what})
    if len(name) > NAME_MAX:
        raise TagError(_("%(what)s名称最多 %(max)d 个字，“%(name)s”有 %(n)d 个字") % {
            "what": what, "max": NAME_MAX, "name": name, "n": len(name)})
    return name


def tag_names_validate(*, names: list[str], group: TagGroup | None = None, exclude: Tag | None = None) -> list[str]:
    """Clean new tag names for ``group`` (None: a new group): lengths, duplicates, the 3,000-tag limit."""
    cleaned = [_name_clean(n, what=_("标签")) for n in names]
    if not cleaned:
        raise TagError(_("请至少填写一个标签"))
    seen: set[str] = set()
    for name in cleaned:
        if name in seen:
            raise TagError(_("标签“%(name)s”重复填写了") % {"name": name})
        seen.add(name)
    if group is not None and group.pk:
        siblings = Tag.objects.filter(group=group, deleted=False, name__in=cleaned)
        if exclude is not None:
            siblings = siblings.exclude(pk=exclude.pk)
        taken = siblings.values_list("name", flat=True).first()
        if taken:
            raise TagError(_("标签组“%(group)s”中已有标签“%(name)s”") % {"group": group.name, "name": taken})
    if exclude is None:
        live = Tag.objects.filter(deleted=False).count()
        if live + len(cleaned) > TAGS_MAX:
            message = _("企业标签最多 %(max)s 个：现有 %(live)s 个，再加 %(n)d 个会超出上限，请先删除不用的标签")
            raise TagError(message % {"max": f"{TAGS_MAX:,}", "live": f"{live:,}", "n": len(cleaned)})
    return cleaned


def tag_group_name_validate(*, name: str, exclude: TagGroup | None = None) -> str:
    name = _name_clean(name, what=_("标签组"))
    others = TagGroup.objects.filter(deleted=False, name=name)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if others.exists():
        raise TagError(_("已有名为“%(name)s”的标签组") % {"name": name})
    return name


def _wecom(endpoint: str, data: dict) -> dict:
    try:
        return wecom_call(endpoint, data=data, caller="customers.tags")
    except (WeComRateLimited, WeComUnavailable):
        raise
    except WeComError as exc:
        raise TagError(_("企业微信拒绝了这次修改（错误码 %(code)s：%(msg)s），本地未做任何更改") % {
            "code": exc.errcode, "msg": exc.errmsg}) from exc


# -- pull ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagPull:
    groups: int
    tags: int
    deleted_tag_ids: list[int]


def _groups_apply(groups: list[dict]) -> None:
    rows = [TagGroup(wecom_group_id=g["group_id"], name=g["group_name"][:NAME_MAX], order=int(g.get("order") or 0),
                     deleted=bool(g.get("deleted"))) for g in groups]
    if rows:
        TagGroup.objects.bulk_create(rows, update_conflicts=True, unique_fields=["wecom_group_id"],
                                     update_fields=["name", "order", "deleted"])
    group_pks = dict(TagGroup.objects.filter(wecom_group_id__in=[g["group_id"] for g in groups])
                     .values_list("wecom_group_id", "pk"))
    tags = [Tag(wecom_tag_id=t["id"], group_id=group_pks[g["group_id"]], name=t["name"][:NAME_MAX],
                order=int(t.get("order") or 0), deleted=bool(t.get("deleted") or g.get("deleted")))
            for g in groups for t in g.get("tag") or []]
    if tags:  # advances_to is ours alone: never overwritten by a pull
        Tag.objects.bulk_create(tags, update_conflicts=True, unique_fields=["wecom_tag_id"],
                                update_fields=["group", "name", "order", "deleted"])


def tags_pull(*, group_ids: list[str] | None = None, tag_ids: list[str] | None = None) -> TagPull:
    """Bring our groups and tags in line with WeCom: all of them, or just the given WeCom ids."""
    data = {**({"group_id": list(group_ids)} if group_ids else {}), **({"tag_id": list(tag_ids)} if tag_ids else {})}
    groups = wecom_call("externalcontact/get_corp_tag_list", data=data, caller="customers.tags").get("tag_group", [])
    listed_groups = {g["group_id"] for g in groups}
    listed_tags = {t["id"] for g in groups for t in g.get("tag") or []}
    with transaction.atomic():
        live_before = set(Tag.objects.filter(deleted=False).values_list("pk", flat=True))
        # What WeCom no longer shows is deleted first, so a new tag may reuse a deleted one's name.
        if not data:
            TagGroup.objects.filter(deleted=False).exclude(wecom_group_id__in=listed_groups).update(deleted=True)
            Tag.objects.filter(deleted=False).exclude(wecom_tag_id__in=listed_tags).update(deleted=True)
        else:
            gone_groups = set(group_ids or []) - listed_groups
            TagGroup.objects.filter(wecom_group_id__in=gone_groups).update(deleted=True)
            Tag.objects.filter(group__wecom_group_id__in=gone_groups).update(deleted=True)
            Tag.objects.filter(wecom_tag_id__in=set(tag_ids or []) - listed_tags).update(deleted=True)
        _groups_apply(groups)
        deleted = sorted(live_before - set(Tag.objects.filter(deleted=False).values_list("pk", flat=True)))
        if deleted:
            enqueue_after_commit(tags_purge_task, tag_ids=deleted)
    return TagPull(groups=len(groups), tags=len(listed_tags), deleted_tag_ids=deleted)


def tag_event_apply(*, fields: dict) -> str:
    """change_external_tag: pull the group or tag that changed in WeCom (created, renamed or deleted)."""
    item_id = fields.get("Id") or ""
    if not item_id:
        return "ignored: no Id"
    if fields.get("TagType") == "tag_group":
        tags_pull(group_ids=[item_id])
    else:
        tags_pull(tag_ids=[item_id])
    return "pulled"


PURGE_SQL = """
WITH batch AS (
    SELECT id FROM customers_customer
    WHERE tag_ids && %(tags)s::integer[] AND id > %(after)s ORDER BY id LIMIT %(limit)s
), stripped AS (
    UPDATE customers_relationship r
    SET tag_ids = ARRAY(SELECT x FROM unnest(r.tag_ids) x WHERE NOT (x = ANY(%(tags)s::integer[])) ORDER BY x)
    FROM batch WHERE r.customer_id = batch.id AND r.tag_ids && %(tags)s::integer[]
)
SELECT id FROM batch
"""


def tag_ids_purge(*, tag_ids: list[int]) -> int:
    """Strip deleted tags from relationships and customers, PURGE_BATCH customers at a time (GIN on tag_ids)."""
    after, total = 0, 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PURGE_SQL, {"tags": list(tag_ids), "after": after, "limit": PURGE_BATCH})
            ids = [row[0] for row in cursor.fetchall()]
            customers_refresh(customer_ids=ids)
        if not ids:
            return total
        total, after = total + len(ids), max(ids)


# -- push: admin edits call WeCom first ------------------------------------------------------------
def tag_group_create(*, name: str, tag_names: list[str], order: int = 0, by: User | None = None) -> TagGroup:
    """A new group with its first tags (WeCom creates groups only together with a tag)."""
    name = tag_group_name_validate(name=name)
    names = tag_names_validate(names=tag_names)
    answer = _wecom("externalcontact/add_corp_tag", {"group_name": name, "order": order,
                                                    "tag": [{"name": n} for n in names]})
    _groups_apply([answer["tag_group"]])
    group = TagGroup.objects.get(wecom_group_id=answer["tag_group"]["group_id"])
    audit_record(action="customers.tag_group.create", target_type="customers.taggroup", target_ids=[group.pk], by=by,
                 detail={"name": name, "tags": names})
    return group


def tag_create(*, group: TagGroup, name: str, order: int = 0, advances_to: str = "", by: User | None = None) -> Tag:
    if group.deleted or not group.wecom_group_id:
        raise TagError(_("标签组“%(group)s”已删除或尚未同步到企业微信") % {"group": group.name})
    (name,) = tag_names_validate(names=[name], group=group)
    answer = _wecom("externalcontact/add_corp_tag", {"group_id": group.wecom_group_id,
                                                    "tag": [{"name": name, "order": order}]})
    _groups_apply([answer["tag_group"]])
    tag = Tag.objects.get(wecom_tag_id=answer["tag_group"]["tag"][0]["id"])
    if advances_to:
        Tag.objects.filter(pk=tag.pk).update(advances_to=advances_to)
        tag.advances_to = advances_to
    audit_record(action="customers.tag.create", target_type="customers.tag", target_ids=[tag.pk], by=by,
                 detail={"group": group.name, "name": name})
    return tag


def tag_group_update(*, group: TagGroup, name: str, order: int, by: User | None = None) -> TagGroup:
    name = tag_group_name_validate(name=name, exclude=group)
    if (name, order) != (group.name, group.order):
        if not group.wecom_group_id:  # WeCom would refuse the edit: say it in our words, as tag_create does
            raise TagError(_("标签组“%(group)s”已删除或尚未同步到企业微信") % {"group": group.name})
        _wecom("externalcontact/edit_corp_tag", {"id": group.wecom_group_id, "name": name, "order": order})
        tags_pull(group_ids=[group.wecom_group_id])
        audit_record(action="customers.tag_group.update", target_type="customers.taggroup", target_ids=[group.pk],
                     by=by, detail={"name": name, "order": order})
    group.refresh_from_db()
    return group


def tag_update(*, tag: Tag, name: str, order: int, by: User | None = None) -> Tag:
    (name,) = tag_names_validate(names=[name], group=tag.group, exclude=tag)
    if (name, order) != (tag.name, tag.order):
        if not tag.wecom_tag_id:  # WeCom would refuse the edit: say it in our words
            raise TagError(_("标签“%(tag)s”已删除或尚未同步到企业微信，不能使用") % {"tag": tag})
        _wecom("externalcontact/edit_corp_tag", {"id": tag.wecom_tag_id, "name": name, "order": order})
        tags_pull(tag_ids=[tag.wecom_tag_id])
        audit_record(action="customers.tag.update", target_type="customers.tag", target_ids=[tag.pk], by=by,
                     detail={"name": name, "order": order})
    tag.refresh_from_db()
    return tag


def tag_advance_set(*, tag: Tag, advances_to: str, by: User | None = None) -> Tag:
    """The stage a tag moves its customers forward to ("" for none). Ours alone: WeCom is not asked. Customers
    already carrying the tag advance when they are next refreshed (sync, callback, tagging), never back."""
    if advances_to and advances_to not in Stage.values:
        raise TagError(_("未知的客户阶段：%(stage)s") % {"stage": advances_to})
    if advances_to != tag.advances_to:
        previous = tag.advances_to
        Tag.objects.filter(pk=tag.pk).update(advances_to=advances_to)
        tag.advances_to = advances_to
        audit_record(action="customers.tag.advance_set", target_type="customers.tag", target_ids=[tag.pk], by=by,
                     detail={"name": tag.name, "from": previous, "to": advances_to})
    return tag


def tags_delete(*, tags=(), groups=(), by: User | None = None) -> TagPull | None:
    """Delete tags and/or whole groups in WeCom, then pull them (WeCom also drops a group left empty)."""
    tag_ids = [t.wecom_tag_id for t in tags if t.wecom_tag_id and not t.deleted]
    group_ids = [g.wecom_group_id for g in groups if g.wecom_group_id and not g.deleted]
    if not tag_ids and not group_ids:
        return None
    _wecom("externalcontact/del_corp_tag", {**({"tag_id": tag_ids} if tag_ids else {}),
                                           **({"group_id": group_ids} if group_ids else {})})
    tag_groups = Tag.objects.filter(pk__in=[t.pk for t in tags]).values_list("group__wecom_group_id", flat=True)
    touched_groups = sorted(set(group_ids) | {g for g in tag_groups if g})
    pulled = tags_pull(group_ids=touched_groups)
    audit_record(action="customers.tag.delete", target_type="customers.tag", target_ids=pulled.deleted_tag_ids,
                 by=by, detail={"tags": tag_ids, "groups": group_ids})
    return pulled


# -- tagging customers ----------------------------------------------------------------------------
def _markable(tags: list[Tag]) -> list[Tag]:
    for tag in tags:
        if tag.deleted or not tag.wecom_tag_id:
            raise TagError(_("标签“%(tag)s”已删除或尚未同步到企业微信，不能使用") % {"tag": tag})
    return tags


def customers_tag(*, selection: CustomerSelection, add: list[Tag], remove: list[Tag], viewer: User,
                  by: User | None) -> SyncRun:
    """Add and/or remove corp tags on every active relationship of the selected customers that ``viewer`` may
    see, recorded as ``by``'s. Returns the job's run; a few customers are tagged at once, more by a Celery job
    whose progress shows in 同步记录. The job stores the selection (ids or the list's filters, as JSON) and
    both users' ids, and the worker rebuilds ``Customer.objects.for_user(viewer)`` from them: the scope
    applied is ``viewer``'s when it runs."""
    add, remove = _markable(list(add)), _markable(list(remove))
    if not add and not remove:
        raise TagError(_("请选择要添加或移除的标签"))
    both = {t.pk for t in add} & {t.pk for t in remove}
    if both:
        raise TagError(_("同一个标签不能既添加又移除：%(tags)s") % {
            "tags": "、".join(str(t) for t in add if t.pk in both)})
    estimate = capped_count(customers_selected(viewer=viewer, selection=selection))
    run = SyncRun.objects.create(kind=TAGGING_KIND, progress={
        "add": [t.pk for t in add], "remove": [t.pk for t in remove], "add_names": [str(t) for t in add],
        "remove_names": [str(t) for t in remove], "viewer": viewer.pk, "by": by.pk if by is not None else None,
        "customers_estimate": estimate,
        "cursor": 0, "batches": 0, "customers_done": 0, "relationships_done": 0, "relationships_failed": 0,
        "errors": [], "selection": selection.as_json()})
    audit_record(action="customers.tag", target_type="wecom.syncrun", target_ids=[run.pk], by=by,
                 detail={"add": run.progress["add_names"], "remove": run.progress["remove_names"],
                         "customers_estimate": estimate})
    if estimate <= TAGGING_INLINE_MAX:
        return customers_tagging_run(run_id=run.pk)
    enqueue_after_commit(customers_tagging_task, run_id=run.pk)
    return run


TAG_IDS_MARK_SQL = """
UPDATE customers_relationship
SET tag_ids = ARRAY(SELECT DISTINCT x FROM unnest(tag_ids || %(add)s::integer[]) x
                    WHERE NOT (x = ANY(%(remove)s::integer[])) ORDER BY x)
WHERE id = ANY(%(ids)s::bigint[])
"""


def _mark(rows: list[tuple], add: list[str], remove: list[str], progress: dict) -> list[int]:
    """mark_tag per relationship; a refusal is recorded and the rest go on. Returns the relationships marked."""
    marked = []
    for pk, userid, external_userid in rows:
        data = {"userid": userid, "external_userid": external_userid,
                **({"add_tag": add} if add else {}), **({"remove_tag": remove} if remove else {})}
        try:
            wecom_call("externalcontact/mark_tag", data=data, caller=TAGGING_KIND)
            marked.append(pk)
        except (WeComRateLimited, WeComUnavailable):
            raise  # the task retries later, from the last finished batch
        except WeComError as exc:
            progress["relationships_failed"] += 1
            if len(progress["errors"]) < ERROR_SAMPLES:
                progress["errors"].append({"userid": userid, "external_userid": external_userid,
                                           "errcode": exc.errcode, "errmsg": exc.errmsg[:120]})
    return marked


def customers_tagging_run(*, run_id: int) -> SyncRun:
    """Run (or continue) a tagging job. Safe to call twice: a finished job does nothing."""
    from portal.models import User

    with session_lock_try(TextLock.CUSTOMERS_TAGGING, run_id) as locked:
        run = SyncRun.objects.get(pk=run_id)
        if not locked or run.status != SyncRun.Status.RUNNING:
            return run
        progress = run.progress
        by_id = progress.get("by")
        by = User.objects.filter(pk=by_id).first() if type(by_id) is int else None
        viewer_id = progress.get("viewer", by_id)  # a job queued before "viewer" was stored: by's scope
        viewer = User.objects.filter(pk=viewer_id).first() if type(viewer_id) is int else None
        try:
            selection = CustomerSelection.from_json(progress.get("selection"))
        except CustomerSelectionError as exc:  # an old job (a stored query object) or a tampered payload
            return _tagging_refuse(run, str(exc))
        queryset = customers_selected(viewer=viewer, selection=selection)  # nothing if no scope (any more)
        wecom_ids = {pk: wecom_id for pk, wecom_id in Tag.objects.filter(pk__in=progress["add"] + progress["remove"])
                     .values_list("pk", "wecom_tag_id") if wecom_id}  # a tag not (or no longer) in WeCom: none
        add = [wecom_ids[pk] for pk in progress["add"] if pk in wecom_ids]
        remove = [wecom_ids[pk] for pk in progress["remove"] if pk in wecom_ids]
        while True:
            batch = list(queryset.filter(pk__gt=progress["cursor"]).order_by("pk")
                         .values_list("pk", flat=True)[:TAGGING_BATCH])
            if not batch:
                break
            # Only the relationships in viewer's scope: a customer shared with another store keeps that store's tags.
            rows = list(Relationship.objects.for_user(viewer).filter(customer_id__in=batch,
                                                                  status=Relationship.Status.ACTIVE)
                        .order_by("pk").values_list("pk", "staff__userid", "customer__external_userid"))
            marked = _mark(rows, add, remove, progress)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(TAG_IDS_MARK_SQL, {"add": progress["add"], "remove": progress["remove"],
                                                      "ids": marked})
                customers_refresh(customer_ids=batch, viewer=viewer, by=by)
                progress.update(cursor=max(batch), batches=progress["batches"] + 1,
                                customers_done=progress["customers_done"] + len(batch),
                                relationships_done=progress["relationships_done"] + len(marked))
                run.save(update_fields=["progress"])
        run.status, run.finished_at = SyncRun.Status.DONE, timezone.now()
        run.save(update_fields=["status", "finished_at"])
        return run


def _tagging_refuse(run: SyncRun, reason: str) -> SyncRun:
    run.status, run.finished_at, run.error = SyncRun.Status.FAILED, timezone.now(), reason
    run.save(update_fields=["status", "finished_at", "error"])
    return run
