"""Who may change the fields that decide identity and scope (DESIGN, principle 8). Declared here, once.

- WeCom owns a member's identity: their userid and the address book's name and mobile change only through the
  address-book sync (stores/org/addressbook.py, stores/org/handlers.py), for everyone, HQ included.
- HQ owns scope and roles: a member's store and position, a store's region, franchisee, kind and WeCom
  department (the sync assigns members to stores by it), and every field of an Access. Only the HQ editing
  roles (HQ admin and HQ operator; HQ finance reads) change them, besides the sync for a member's store and
  position (department membership and job title in WeCom).
- Rows of these models are created by the sync or by HQ editors only: a new row sets all of the above.

The admin, the API and the Excel imports apply this through portal/field_policy.py, and every change of one of
these fields is audited (``guarded_fields.change``, or the sync's and services' own audit actions).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext as _

from portal.field_policy import concrete_field, field_policy_register
from stores.access.scoping import user_scope
from stores.models import Access, Role, Staff, Store

WECOM_OWNED_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Staff: ("userid", "name", "mobile"),
}
HQ_OWNED_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Staff: ("store", "position"),
    Store: ("region", "franchisee", "kind", "wecom_department_id"),
    Access: ("user", "role", "regions", "franchisee", "store", "staff"),
}
HQ_EDITOR_ROLES = frozenset({Role.HQ_ADMIN, Role.HQ_OPERATOR})


def user_edits_for_hq(user) -> bool:
    """Is ``user`` an active HQ admin or HQ operator (or a superuser), with a scope still in force?"""
    if user is None or not getattr(user, "is_authenticated", False) or not user_scope(user).is_hq:
        return False
    return bool(user.is_superuser or Access.objects.filter(user=user, role__in=HQ_EDITOR_ROLES).exists())


def _label(model: type[models.Model], name: str) -> str:
    return str(concrete_field(model, name).verbose_name)


@dataclass(frozen=True)
class OwnedFields:
    """The policy of one model: fields WeCom owns and fields HQ owns."""

    model: type[models.Model]
    wecom: tuple[str, ...] = ()
    hq: tuple[str, ...] = ()

    @property
    def guarded(self) -> frozenset[str]:
        return frozenset(self.wecom) | frozenset(self.hq)

    def locked(self, *, user, creating: bool) -> dict[str, str]:
        hq_editor = user_edits_for_hq(user)
        if creating:
            return {} if hq_editor else {name: self.hq_reason(name) for name in (*self.wecom, *self.hq)}
        reasons = {name: self.wecom_reason(name) for name in self.wecom}
        if not hq_editor:
            reasons.update({name: self.hq_reason(name) for name in self.hq})
        return reasons

    def create_refusal(self, *, user) -> str | None:
        if user_edits_for_hq(user):
            return None
        return _("只有总部可以新建%(model)s") % {"model": self.model._meta.verbose_name}

    def wecom_reason(self, name: str) -> str:
        return _("“%(field)s”由企业微信通讯录同步维护，请在企业微信中修改") % {"field": _label(self.model, name)}

    def hq_reason(self, name: str) -> str:
        return _("“%(field)s”决定权限范围，只有总部可以修改") % {"field": _label(self.model, name)}


def field_policies_register() -> None:
    for model in {*WECOM_OWNED_FIELDS, *HQ_OWNED_FIELDS}:
        field_policy_register(model=model, policy=OwnedFields(
            model=model, wecom=WECOM_OWNED_FIELDS.get(model, ()), hq=HQ_OWNED_FIELDS.get(model, ())))
