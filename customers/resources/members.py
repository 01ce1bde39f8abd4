"""Members in and out of the admin by Excel/CSV (django-import-export), for files up to ~10,000 rows.

The house way (stores/resources.py): a preview first, every bad row reported with its line and a
Chinese reason, nothing written while any row is bad. Mobiles become hash + mask on the way in and
leave only masked; a blank cell keeps the stored value (as on the fast path). Bigger files go
through the fast path (MemberImport, customers/services/members_import.py).
"""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _
from import_export import fields, widgets
from import_export.instance_loaders import CachedInstanceLoader

from customers.models import Member
from customers.services.members import (
    MemberDataError,
    amount_parse,
    date_parse,
    int_parse,
    members_unify,
    mobile_hash,
    mobile_masked,
    mobile_normalize,
)
from customers.services.members_import import cell_text
from portal.admin_base import scoped
from stores.models import Store
from stores.resources import ScopedForeignKeyWidget, ScopedResource
from stores.scoping import user_scope


class _TextWidget(widgets.Widget):
    """A cell as stripped text; blank → None (keeps the stored value). Subclasses parse it."""

    def __init__(self, *, label=""):
        super().__init__()
        self.label = label

    def clean(self, value, row=None, **kwargs):
        text = cell_text(value).strip()
        if not text:
            return None
        try:
            return self.parse(text)
        except MemberDataError as exc:
            raise ValueError(str(exc)) from exc

    def parse(self, text: str):
        return text

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class IntegerCellWidget(_TextWidget):
    def __init__(self, *, label, minimum: int = 0):
        super().__init__(label=label)
        self.minimum = minimum

    def parse(self, text):
        return int_parse(text, label=str(self.label), minimum=self.minimum)


class AmountCellWidget(_TextWidget):
    def parse(self, text):
        from decimal import Decimal

        return Decimal(amount_parse(text, label=str(self.label)))


class DateCellWidget(_TextWidget):
    def parse(self, text):
        return date_parse(text, label=str(self.label))

    def render(self, value, obj=None, **kwargs):
        return value.isoformat() if value else ""


class MobileCellWidget(_TextWidget):
    def parse(self, text):
        return mobile_normalize(text)


class MobileField(fields.Field):
    """手机号: imported as hash + mask (the plain number is never set on the model), exported masked."""

    def save(self, instance, row, is_m2m=False, **kwargs):
        mobile = self.clean(row, **kwargs)
        if mobile:
            instance.mobile_hash, instance.mobile_masked = mobile_hash(mobile), mobile_masked(mobile)


class CachedStoreWidget(ScopedForeignKeyWidget):
    """Store codes looked up once per file, not once per row."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cache: dict[str, Store] = {}

    def clean(self, value, row=None, **kwargs):
        key = cell_text(value).strip()
        if not key:
            return None
        if key not in self._cache:
            self._cache[key] = super().clean(key, row, **kwargs)
        return self._cache[key]


def _column(attribute, label, widget, field_class=fields.Field) -> fields.Field:
    return field_class(attribute=attribute, column_name=label, widget=widget, saves_null_values=False)


class MemberResource(ScopedResource):
    member_no = fields.Field(attribute="member_no", column_name=_("会员号"), widget=widgets.CharWidget())
    mobile = _column("mobile_masked", _("手机号"), MobileCellWidget(label=_("手机号")), MobileField)
    unionid = _column("unionid", "unionid", _TextWidget(label="unionid"))
    name = _column("name", _("姓名"), _TextWidget(label=_("姓名")))
    level = _column("level", _("等级"), _TextWidget(label=_("等级")))
    points = _column("points", _("积分"), IntegerCellWidget(label=_("积分"), minimum=-2_147_483_647))
    lifetime_spend = _column("lifetime_spend", _("累计消费"), AmountCellWidget(label=_("累计消费")))
    order_count = _column("order_count", _("消费次数"), IntegerCellWidget(label=_("消费次数")))
    last_purchase_on = _column("last_purchase_on", _("最近消费日"), DateCellWidget(label=_("最近消费日")))
    home_store = _column("home_store", _("归属门店编码"), CachedStoreWidget(Store, "code", label=_("归属门店编码")))

    class Meta:
        model = Member
        import_id_fields = ("member_no",)
        fields = ("member_no", "mobile", "unionid", "name", "level", "points", "lifetime_spend", "order_count",
                  "last_purchase_on", "home_store")
        instance_loader_class = CachedInstanceLoader  # one query for the file's existing members
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = False
        # Rows are validated one by one (errors per row), then written 1,000 at a time: 10,000 rows
        # preview in seconds, not minutes. Nothing is written while any row is invalid.
        use_bulk = True
        batch_size = 1000

    def __init__(self, user=None, **kwargs):
        super().__init__(user=user, **kwargs)
        # Column names and labels translated once: lazy strings would be evaluated per cell.
        for field in self.fields.values():
            field.column_name = str(field.column_name)
            if hasattr(field.widget, "label"):
                field.widget.label = str(field.widget.label)

    def before_import(self, dataset, **kwargs):
        # First row of each member number, to report a repeated number as an error on its later rows.
        label = str(self.fields["member_no"].column_name)
        self._first_row: dict[str, int] = {}
        if label in (dataset.headers or []):
            for number, value in enumerate(dataset[label], start=1):
                self._first_row.setdefault(cell_text(value).strip(), number)
        self._imported: list[int] = []

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        member_no = cell_text(row.get(self.fields["member_no"].column_name)).strip()
        first = getattr(self, "_first_row", {}).get(member_no)
        if not member_no:
            errors["member_no"] = ValidationError(_("会员号不能为空"))
        elif first is not None and first < kwargs.get("row_number", first):
            message = _("会员号“%(no)s”与第 %(row)d 行重复") % {"no": member_no, "row": first}
            errors["member_no"] = ValidationError(message)
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """ScopedResource's checks without a query per row: member_no uniqueness is the lookup itself
        (repeats are caught above), the home store was resolved in scope by its widget, and HQ may
        change any member."""
        errors = dict(import_validation_errors or {})
        if instance.pk and self.user is not None and not user_scope(self.user).is_hq:
            if not scoped(Member.objects.filter(pk=instance.pk), self.user).exists():
                errors[NON_FIELD_ERRORS] = [_("该记录不在您的权限范围内，不能修改")]
        try:
            instance.full_clean(exclude=[*errors, "home_store"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def after_save_instance(self, instance, row, **kwargs):
        if hasattr(self, "_imported"):
            self._imported.append(instance.member_no)  # bulk mode: no pk yet

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if not kwargs.get("dry_run") and not result.has_errors() and not result.has_validation_errors():
            numbers = getattr(self, "_imported", None)
            if numbers:
                ids = list(Member.objects.filter(member_no__in=numbers).values_list("pk", flat=True))
                members_unify(member_ids=ids)
