"""Lifecycle stages (客户阶段): 粉丝 → 意向 → 线索 → 到店 → 成交 → 转介绍, with their history.

Every move goes through ``customer_stage_set``: one statement that updates the customers' stage and
inserts one ``StageChange`` per customer actually moved, whatever the number of customers.

- Automatic causes (first add, tagged, deal, referral) only ever move a customer forward: a
  customer who already bought is not sent back to 意向 by an intent tag.
- ``StageChange.Cause.MANUAL`` is staff correcting a stage by hand: any direction, ``by`` (who, recorded)
  required; with ``viewer``, limited to the customers ``viewer`` may see.

Callers: the sync (``stage_on_first_add``), the tags area (``customer_stage_set(cause=TAGGED)`` for a
tag's ``advances_to``), deals (``stage_on_deal``), and the customer admin's "set stage" action
(``customer_stage_set(customers=queryset, stage=…, cause=StageChange.Cause.MANUAL, viewer=request.user,
by=request.user)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from customers.models import STAGE_ORDER, Customer, Stage, StageChange
from portal.errors import DomainError

if TYPE_CHECKING:
    from portal.models import User


class LifecycleError(DomainError):
    pass


# The old stage is read (and the rows locked) in the first CTE: RETURNING of an UPDATE only sees new
# values before PostgreSQL 18, and DATABASE_URL may point at an older server. FOR UPDATE re-checks
# the stage after waiting for a concurrent move, so two events never record the same move twice.
STAGE_SET_SQL = """
WITH old AS (
    SELECT c.id, c.stage FROM customers_customer c
    WHERE c.id IN ({customers}) AND c.stage = ANY(%s)
    FOR UPDATE OF c
), moved AS (
    UPDATE customers_customer c SET stage = %s, updated_at = now()
    FROM old WHERE c.id = old.id
    RETURNING c.id, old.stage AS from_stage
)
INSERT INTO customers_stagechange (customer_id, from_stage, to_stage, cause, by_id, at)
SELECT moved.id, moved.from_stage, %s, %s, %s, now() FROM moved
"""

FIRST_ADD_SQL = """
INSERT INTO customers_stagechange (customer_id, from_stage, to_stage, cause, by_id, at)
SELECT c.id, '', %s, %s, NULL, now() FROM customers_customer c
WHERE c.id = ANY(%s) AND c.stage = %s
ON CONFLICT DO NOTHING
"""


def _stages_moving_to(*, stage: str, cause: str) -> list[str]:
    """The stages a customer may be in to be moved to ``stage`` by ``cause``."""
    if cause == StageChange.Cause.MANUAL:
        return [s for s in STAGE_ORDER if s != stage]
    return STAGE_ORDER[: STAGE_ORDER.index(stage)]  # forward only


def customer_stage_set(*, customers: QuerySet[Customer], stage: str, cause: str, viewer: User | None = None,
                       by: User | None = None) -> int:
    """Move ``customers`` to ``stage`` and record why (and ``by`` whom). Returns how many customers moved.

    Customers already there (or, for an automatic cause, already further along) are left alone and
    get no history row. With ``viewer``, only the customers ``viewer`` may see are moved.
    """
    if stage not in STAGE_ORDER:
        raise LifecycleError(_("未知的客户阶段：%(s)s") % {"s": stage})
    if cause not in StageChange.Cause.values:
        raise LifecycleError(_("未知的阶段变更原因：%(c)s") % {"c": cause})
    if cause == StageChange.Cause.MANUAL and by is None:
        raise LifecycleError(_("手动调整阶段必须记录操作人"))
    from_stages = _stages_moving_to(stage=stage, cause=cause)
    if not from_stages:
        return 0
    if viewer is not None:
        customers = Customer.objects.for_user(viewer).filter(pk__in=customers.order_by().values("pk"))
    ids_sql, ids_params = customers.order_by().values("pk").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(STAGE_SET_SQL.format(customers=ids_sql),
                       [*ids_params, from_stages, stage, stage, cause, by.pk if by is not None else None])
        return cursor.rowcount


def stage_on_first_add(*, customer_ids: Sequence[int]) -> int:
    """Record "first add → 粉丝" for new customers (the sync calls it after inserting them).

    Customers are created as 粉丝; this writes their first history row. Idempotent: a customer
    has at most one first-add row (a unique index), and a customer already moved on is skipped.
    """
    if not customer_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(FIRST_ADD_SQL, [Stage.FAN, StageChange.Cause.FIRST_ADD, list(customer_ids), Stage.FAN])
        return cursor.rowcount


@dataclass(frozen=True)
class DealMoves:
    customers: int  # moved to 成交
    referrers: int  # moved to 转介绍


def stage_on_deal(*, customer_ids: Sequence[int], referrer_ids: Sequence[int] = ()) -> DealMoves:
    """A deal makes its customer 成交; the deal of a referred customer makes the referrer 转介绍."""
    with transaction.atomic():
        moved = customer_stage_set(customers=Customer.objects.filter(pk__in=list(customer_ids)),
                                   stage=Stage.CUSTOMER, cause=StageChange.Cause.DEAL) if customer_ids else 0
        referred = customer_stage_set(customers=Customer.objects.filter(pk__in=list(referrer_ids)),
                                      stage=Stage.REFERRER, cause=StageChange.Cause.REFERRAL) if referrer_ids else 0
    return DealMoves(customers=moved, referrers=referred)
