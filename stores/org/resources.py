"""Excel/CSV import and export of stores and staff (django-import-export).

Rows are validated with the models' own constraints (``clean_model_instances``); a bad row is
reported with its line and reason and nothing is written. References (region, franchisee,
store) are looked up by code *inside the importing user's scope*: another store's code is a
row error, not a silent write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import NON_FIELD_ERRORS
from django.utils.translation import gettext_lazy as _
from import_export import fields, widgets

from portal.admin_base import scoped
from portal.field_policy import field_policy_for, guarded_changes_audit, guarded_values, guarded_values_stored
from portal.spreadsheets import SafeExportResource
from stores.models import Franchisee, Region, Staff, Store

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def column(attribute: str, label, widget) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=label, widget=widget)


class ScopedForeignKeyWidget(widgets.ForeignKeyWidget):
    """Looks a reference up by a natural key among the rows the importing user may see."""

    def __init__(self, model, field, *, user=None, label: StrOrPromise = "", **kwargs):
        super().__init__(model, field, **kwargs)
        self.user = user
        self.label = label

    def get_queryset(self, value, row, *args, **kwargs):
        queryset = self.model._default_manager.all()
        return scoped(queryset, self.user) if self.user is not None else queryset

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist as exc:
            raise ValueError(_("%(label)s“%(value)s”不存在或不在您的权限范围内") % {
                "label": self.label, "value": value}) from exc


class ChoiceWidget(widgets.Widget):
    """Accepts a choice's code or its Chinese label; exports the label."""

    def __init__(self, choices, *, label: StrOrPromise):
        super().__init__()
        self.by_key = {str(k): k for k, _v in choices}
        self.by_label = {str(v): k for k, v in choices}
        self.labels = {k: str(v) for k, v in choices}
        self.label = label

    def clean(self, value, row=None, **kwargs):
        text = "" if value is None else str(value).strip()
        if text in self.by_key:
            return self.by_key[text]
        if text in self.by_label:
            return self.by_label[text]
        allowed = "、".join(self.labels.values())
        raise ValueError(_("%(label)s“%(value)s”无效，可选：%(allowed)s") % {
            "label": self.label, "value": text, "allowed": allowed})

    def render(self, value, obj=None, **kwargs):
        return self.labels.get(value, value or "")


class ScopedResource(SafeExportResource):  # exported cells never run as formulas
    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        for field in self.fields.values():
            if isinstance(field.widget, ScopedForeignKeyWidget):
                field.widget.user = user

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        if instance.pk and self.user is not None:
            if not scoped(type(instance)._default_manager.filter(pk=instance.pk), self.user).exists():
                errors[NON_FIELD_ERRORS] = [_("该记录不在您的权限范围内，不能修改")]
        policy = field_policy_for(type(instance))
        if policy is not None:
            before = guarded_values_stored(policy=policy, instance=instance)
            instance._guarded_before = before  # for the audit after the save
            if self.user is not None:
                errors.update(self._locked_fields_errors(policy=policy, instance=instance, before=before))
        super().validate_instance(instance, errors, validate_unique)

    def _locked_fields_errors(self, *, policy, instance, before) -> dict[str, list[str]]:
        """A new row the user may not create, or a change to a field they may not change, is a row error."""
        if before is None:
            refusal = policy.create_refusal(user=self.user)
            if refusal:
                return {NON_FIELD_ERRORS: [refusal]}
        after = guarded_values(policy=policy, instance=instance)
        locked = policy.locked(user=self.user, creating=before is None)
        return {name: [reason] for name, reason in locked.items()
                if name in after and (before is None or before.get(name) != after[name])}

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        if field_policy_for(type(instance)) is not None and not self._is_dry_run(kwargs):
            guarded_changes_audit(instance=instance, before=getattr(instance, "_guarded_before", None),
                                  by=self.user, via="import")


class StoreResource(ScopedResource):
    code = column("code", _("门店编码"), widgets.CharWidget())
    name = column("name", _("门店名称"), widgets.CharWidget())
    city = column("city", _("城市"), widgets.CharWidget())
    address = column("address", _("地址"), widgets.CharWidget())
    latitude = column("latitude", _("纬度"), widgets.DecimalWidget())
    longitude = column("longitude", _("经度"), widgets.DecimalWidget())
    kind = column("kind", _("类型"), ChoiceWidget(Store.Kind.choices, label=_("类型")))
    region = column("region", _("区域编码"), ScopedForeignKeyWidget(Region, "code", label=_("区域编码")))
    franchisee = column("franchisee", _("加盟商编码"),
                        ScopedForeignKeyWidget(Franchisee, "code", label=_("加盟商编码")))
    wecom_department_id = column("wecom_department_id", _("企业微信部门ID"), widgets.IntegerWidget())
    status = column("status", _("状态"), ChoiceWidget(Store.Status.choices, label=_("状态")))
    opened_on = column("opened_on", _("开业日期"), widgets.DateWidget())

    class Meta:
        model = Store
        import_id_fields = ("code",)
        fields = ("code", "name", "city", "address", "latitude", "longitude", "kind", "region", "franchisee",
                  "wecom_department_id", "status", "opened_on")
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = False
        use_bulk = False


class StaffResource(ScopedResource):
    userid = column("userid", _("企业微信账号"), widgets.CharWidget())
    name = column("name", _("姓名"), widgets.CharWidget())
    mobile = column("mobile", _("手机号"), widgets.CharWidget())
    store = column("store", _("门店编码"), ScopedForeignKeyWidget(Store, "code", label=_("门店编码")))
    position = column("position", _("岗位"), ChoiceWidget(Staff.Position.choices, label=_("岗位")))
    joined_on = column("joined_on", _("入职日期"), widgets.DateWidget())

    class Meta:
        model = Staff
        import_id_fields = ("userid",)
        fields = ("userid", "name", "mobile", "store", "position", "joined_on")
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = False
