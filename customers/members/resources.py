"""Members in and out of the admin by Excel/CSV (django-import-export), for files up to 20,000 rows.

The house way (stores/org/resources.py): a preview first, every bad row reported with its line and a
Chinese reason, nothing written while any row is bad. Mobiles become hash + mask on the way in and
leave only masked; a blank cell keeps the stored value (as on the fast path). Bigger files go
through the fast path (MemberImport, customers/members/imports.py): the web import says so.

Kept fast for 10,000 rows (each row is validated, but nothing is done per row that the preview
does not need): no deepcopy + HTML diff per row (``skip_diff``; unchanged rows are found by
comparing a tuple of the written columns), a preview of only the first ``PREVIEW_ROWS`` valid rows,
existing members and stores looked up once per file, and the workbook read as values.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import tablib
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export import fields, widgets
from import_export.instance_loaders import BaseInstanceLoader
from import_export.results import RowResult

from customers.members.imports import cell_text
from customers.members.services import members_unify, mobile_hash, mobile_masked
from customers.models import Member
from portal.admin_base import scoped
from portal.audit import audit_record
from portal.field_policy import concrete_field
from portal.parsers import ValueInvalid, amount_parse, date_parse, int_parse, mobile_normalize, text_check
from portal.spreadsheets import SafeCSV, SafeXLSX, csv_decode
from portal.xlsx import XlsxRowLimit
from stores.access.scoping import user_scope
from stores.models import Store
from stores.org.resources import ScopedForeignKeyWidget, ScopedResource

WEB_IMPORT_MAX_ROWS = 20_000  # above this the web import asks for the fast path (会员导入任务)
PREVIEW_ROWS = 100  # valid rows shown in a preview (the totals count them all)

# The model columns an import writes: a row whose values equal the stored ones is skipped.
WRITTEN = ("mobile_hash", "mobile_masked", "unionid", "name", "level", "points", "lifetime_spend", "order_count",
           "last_purchase_on", "home_store_id")


class _TextWidget(widgets.Widget):
    """A cell as stripped text; blank → None (keeps the stored value). Subclasses parse it.

    The widgets check everything the model would (lengths here; ranges and digits in int_parse and
    amount_parse), so rows are not full_clean()ed too: that was a fifth of a 10,000-row preview."""

    def __init__(self, *, label="", max_length: int | None = None):
        super().__init__()
        self.label = label
        self.max_length = max_length

    def clean(self, value, row=None, **kwargs):
        text = cell_text(value).strip()
        if not text:
            return None
        try:
            return self.parse(text)
        except ValueInvalid as exc:
            raise ValueError(str(exc)) from exc

    def parse(self, text: str):
        return text if self.max_length is None else text_check(text, label=str(self.label), max_length=self.max_length)

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
        self.assign(instance, self.clean(row, **kwargs))

    def assign(self, instance, mobile) -> None:
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


def _max_length(name: str) -> int:
    max_length = concrete_field(Member, name).max_length
    assert max_length is not None, name  # a text column with a limit
    return max_length


def _numbers_in(numbers) -> RawSQL:
    """member_no IN (…) as one array parameter: 10,000 placeholders cost more to bind than to run."""
    return RawSQL("SELECT unnest(%s::varchar[])", [list(numbers)])


# -- reading the file -------------------------------------------------------------------------------

class MemberFileTooLarge(ValueError):
    """More rows than a web import takes; the admin points to 会员导入任务 instead."""

    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


class MemberFileEmpty(ValueError):
    pass


def _size_check(rows: int) -> None:
    if rows > WEB_IMPORT_MAX_ROWS:
        raise MemberFileTooLarge(rows)


class MemberCSV(SafeCSV):
    max_rows = 2 * WEB_IMPORT_MAX_ROWS

    def create_dataset(self, in_stream, **kwargs):
        text = csv_decode(in_stream, self.encoding)
        if text.count("\n") > 2 * WEB_IMPORT_MAX_ROWS:  # clearly too large: refused before parsing
            raise MemberFileTooLarge(text.count("\n"))
        dataset = super().create_dataset(text, **kwargs)
        _size_check(len(dataset))
        return dataset


class MemberXLSX(SafeXLSX):
    """The active sheet as values (portal/xlsx.py, within its limits; openpyxl for what it does not read):
    numbers stay numbers and dates dates — the widgets read them with cell_text, as the fast path does.
    Reading stops once a file is known to be too large; blank rows after the last value are not rows."""

    def create_dataset(self, in_stream):
        try:
            rows = self.read_rows(in_stream, limit=WEB_IMPORT_MAX_ROWS + 1)  # + the header
        except XlsxRowLimit as exc:
            raise MemberFileTooLarge(exc.rows - 1) from exc
        while rows and all(v is None or v == "" for v in rows[-1]):
            rows.pop()
        if not rows:
            raise MemberFileEmpty()
        _size_check(len(rows) - 1)
        return tablib.Dataset(*rows[1:], headers=list(rows[0]))


class MemberLoader(BaseInstanceLoader):
    """The file's existing members in one query, keyed by member number as a row reads it."""

    def __init__(self, resource, dataset=None):
        super().__init__(resource, dataset)
        self.column = resource.fields["member_no"].column_name
        numbers = set(getattr(resource, "_first_row", {})) - {""}
        queryset = Member.objects.filter(member_no__in=_numbers_in(numbers)).select_related("home_store")
        self.members = {m.member_no: m for m in queryset} if numbers else {}

    def get_instance(self, row):
        return self.members.get(cell_text(row.get(self.column)).strip())


# -- the resource -----------------------------------------------------------------------------------

class MemberResource(ScopedResource):
    member_no = _column("member_no", _("会员号"), _TextWidget(label=_("会员号"), max_length=_max_length("member_no")))
    mobile = _column("mobile_masked", _("手机号"), MobileCellWidget(label=_("手机号")), MobileField)
    unionid = _column("unionid", "unionid", _TextWidget(label="unionid", max_length=_max_length("unionid")))
    name = _column("name", _("姓名"), _TextWidget(label=_("姓名"), max_length=_max_length("name")))
    level = _column("level", _("等级"), _TextWidget(label=_("等级"), max_length=_max_length("level")))
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
        instance_loader_class = MemberLoader  # one query for the file's existing members
        clean_model_instances = False  # the widgets validate (see _TextWidget); scope in validate_instance
        # No copy + HTML diff of every row (a third of a 10,000-row preview): skip_row compares the
        # written columns itself, and the preview renders its first rows in after_import_row.
        skip_diff = True
        skip_unchanged = True
        report_skipped = False
        # Rows are validated one by one (errors per row), then written together by COPY (Django's
        # bulk_update of 10,000 members took a minute). Nothing is written while any row is invalid.
        use_bulk = True
        batch_size = WEB_IMPORT_MAX_ROWS  # written once, at the end (a preview writes nothing)

    def __init__(self, user=None, **kwargs):
        super().__init__(user=user, **kwargs)
        # Column names and labels translated once: lazy strings would be evaluated per cell.
        for field in self.fields.values():
            field.column_name = str(field.column_name)
            if hasattr(field.widget, "label"):
                field.widget.label = str(field.widget.label)

    def bulk_create(self, using_transactions, dry_run, raise_errors, batch_size=None, result=None):
        self._write(members_copy_insert, self.create_instances, dry_run, raise_errors, result)

    def bulk_update(self, using_transactions, dry_run, raise_errors, batch_size=None, result=None):
        self._write(members_copy_update, self.update_instances, dry_run, raise_errors, result)

    def _write(self, write, instances: list[Member], dry_run, raise_errors, result) -> None:
        """A preview writes nothing (the rows were validated one by one); the confirm writes them by
        COPY, inside the import's transaction: any failure is an error and nothing is written."""
        batch = list(instances)
        instances.clear()
        if dry_run or not batch:
            return
        try:
            with transaction.atomic():
                write(batch)
        except DatabaseError as exc:
            self.handle_import_error(result, exc, raise_errors)

    def before_import(self, dataset, **kwargs):
        headers = [cell_text(h).strip() for h in dataset.headers or []]
        if headers:
            dataset.headers = headers  # " 会员号 " is 会员号
        self._columns = [f for f in self.get_import_fields() if f.column_name in headers]
        self._imported: list[str] = []
        self._in_scope: set[int] | _Everything | None = None
        self._shown = 0
        # First row of each member number, to report a repeated number as an error on its later rows.
        label = self.fields["member_no"].column_name
        self._first_row: dict[str, int] = {}
        if label not in headers:
            raise ValueError(gettext("文件表头不正确：缺少“%(column)s”列。应为：%(expected)s") % {
                "column": label, "expected": "、".join(f.column_name for f in self.get_import_fields())})
        for number, value in enumerate(dataset[label], start=1):
            self._first_row.setdefault(cell_text(value).strip(), number)

    def after_init_instance(self, instance, new, row, **kwargs):
        self._row_instance = instance
        self._row_before = None if new else tuple(getattr(instance, name) for name in WRITTEN)
        self._row_shown_before = None
        if not new and kwargs.get("dry_run") and self._shown < PREVIEW_ROWS:
            self._row_shown_before = self._cells(instance)

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        member_no = cell_text(row.get(self.fields["member_no"].column_name)).strip()
        first = self._first_row.get(member_no)
        if not member_no:
            errors["member_no"] = ValidationError(_("会员号不能为空"))
        elif first is not None and first < kwargs.get("row_number", first):
            message = _("会员号“%(no)s”与第 %(row)d 行重复") % {"no": member_no, "row": first + 1}
            errors["member_no"] = ValidationError(message)
        # Field.save() without its per-cell overhead: the file's columns, blank cells keep the value.
        for field in self._columns:
            try:
                value = field.widget.clean(row[field.column_name])
            except ValueError as exc:
                errors[field.attribute] = ValidationError(str(exc), code="invalid")
                continue
            if value is not None:
                if isinstance(field, MobileField):
                    field.assign(instance, value)
                else:
                    setattr(instance, field.attribute, value)
        if errors:
            raise ValidationError(errors)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        """Unchanged = every written column equal to the stored one (hash included: two mobiles can
        share a mask)."""
        if not self._meta.skip_unchanged or import_validation_errors or self._row_before is None:
            return False
        return self._row_before == tuple(getattr(instance, name) for name in WRITTEN)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """ScopedResource's checks without a query per row: member_no uniqueness is the lookup itself
        (repeats are caught above), the home store was resolved in scope by its widget, and HQ may
        change any member."""
        errors = dict(import_validation_errors or {})
        if instance.pk and self.user is not None and instance.pk not in self._members_in_scope():
            errors[NON_FIELD_ERRORS] = [_("该记录不在您的权限范围内，不能修改")]
        if errors:
            raise ValidationError(errors)

    def _members_in_scope(self) -> set[int] | _Everything:
        if self._in_scope is None:
            if user_scope(self.user).is_hq:
                self._in_scope = _Everything()
            else:  # one query for the file's existing members, not one per row
                numbers = [n for n in self._first_row if n]
                self._in_scope = set(scoped(Member.objects.filter(member_no__in=_numbers_in(numbers)), self.user)
                                     .values_list("pk", flat=True))
        return self._in_scope

    def after_save_instance(self, instance, row, **kwargs):
        self._imported.append(instance.member_no)  # bulk mode: no pk yet

    def after_import_row(self, row, row_result, **kwargs):
        """A preview shows its first PREVIEW_ROWS valid rows: their cells (changes marked) are built
        here, for those rows only."""
        if (kwargs.get("dry_run") and self._shown < PREVIEW_ROWS
                and row_result.import_type in (RowResult.IMPORT_TYPE_NEW, RowResult.IMPORT_TYPE_UPDATE)):
            self._shown += 1
            after = self._cells(self._row_instance)
            before = self._row_shown_before or after
            row_result.diff = [new if old == new else format_html("<del>{}</del> → <ins>{}</ins>", old, new)
                               for old, new in zip(before, after, strict=True)]

    def _cells(self, instance) -> list[str]:
        return [field.export(instance) for field in self.get_import_fields()]

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if not kwargs.get("dry_run") and not result.has_errors() and not result.has_validation_errors():
            ids = []
            if self._imported:
                written = Member.objects.filter(member_no__in=_numbers_in(self._imported))
                ids = list(written.values_list("pk", flat=True))
                members_unify(member_ids=ids)
            # One audit event for the file (the admin's per-row LogEntry is off: 10,000 of them took
            # longer than writing the members).
            audit_record(action="customers.member.import", target_type="customers.member", target_ids=ids,
                         by=self.user, detail={"file": kwargs.get("file_name") or "", "rows": result.total_rows,
                                               **{key: result.totals[key] for key in ("new", "update", "skip")}})


# -- writing: COPY, not bulk_create/bulk_update ---------------------------------------------------------

_PLAIN = (str, int, Decimal, date, datetime, bool, type(None))  # psycopg adapts these as they are


def _row(member: Member, fields, now) -> tuple:
    values = []
    for field in fields:
        value = now if field.attname == "updated_at" else getattr(member, field.attname)
        values.append(value if isinstance(value, _PLAIN) else field.get_db_prep_save(value, connection))
    return tuple(values)


def members_copy_insert(members: list[Member]) -> None:
    """New members (validated, numbers not yet stored) in one COPY. A number stored meanwhile by
    someone else breaks the unique constraint: the import fails whole."""
    fields = [f for f in Member._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    with connection.cursor() as cursor:
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        with cursor.copy(f"COPY {connection.ops.quote_name(Member._meta.db_table)} ({columns}) FROM STDIN") as copy:
            for member in members:
                copy.write_row(_row(member, fields, now))


def members_copy_update(members: list[Member]) -> None:
    """Changed members: their written columns COPYed into a temp table, then one UPDATE … FROM."""
    fields = [concrete_field(Member, name) for name in ("id", *WRITTEN, "updated_at")]
    table, stage = connection.ops.quote_name(Member._meta.db_table), "member_web_import_stage"
    columns = [connection.ops.quote_name(f.column) for f in fields]
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage}")
        cursor.execute(f"CREATE TEMP TABLE {stage} AS SELECT {', '.join(columns)} FROM {table} WITH NO DATA")
        with cursor.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
            for member in members:
                copy.write_row(_row(member, fields, now))
        assignments = ", ".join(f"{c} = s.{c}" for c in columns[1:])
        cursor.execute(f"UPDATE {table} m SET {assignments} FROM {stage} s WHERE m.id = s.id")
        cursor.execute(f"DROP TABLE {stage}")


class _Everything:
    def __contains__(self, item) -> bool:
        return True


def too_large_message(rows: int) -> str:
    return gettext("文件约有 %(rows)s 行数据，超过网页导入上限 %(max)s 行：请改用“会员导入任务”上传（后台导入，"
                   "支持数百万行，同样逐行报告错误）") % {"rows": f"{rows:,}", "max": f"{WEB_IMPORT_MAX_ROWS:,}"}
