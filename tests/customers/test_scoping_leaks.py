"""Scoping fails closed, and the reads that used to go around it now go through it.

* ``scoped()`` shows nothing of a model that declared no scope; every model the admin shows has declared
  one, and the decision for each model that belongs to no store is written in the registry and holds per
  persona.
* The customer page, the channel list's counts, segment descriptions and member-import errors say nothing
  about another scope (store_b is outside every non-HQ persona: SOUTH, franchisee two).
"""

from __future__ import annotations

import csv
import io

import pytest
import tablib
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.urls import reverse

from customers.members.imports import member_import_run
from customers.members.resources import MemberResource
from customers.members.services import MemberRecord, members_upsert_scoped
from customers.models import (
    Channel,
    Customer,
    Member,
    MemberImport,
    Segment,
    SegmentSnapshot,
    SegmentSnapshotMember,
    Tag,
    TagGroup,
    WelcomeMessage,
)
from customers.segments.selectors import segment_describe
from portal.admin_base import ScopedAdmin, scope_declared, scoped
from stores.access.roles import ROLE_PERMISSIONS
from stores.access.scoping import GlobalQuerySet, scope_global_declaration
from stores.models import Access, Role
from tests.conftest import PERSONAS
from tests.factories import ChannelFactory, CustomerFactory, StaffFactory, TagFactory, UserFactory
from tests.scoping_registry import GLOBAL

HQ_ROLES = {Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.HQ_FINANCE}
DECISION_WORDS = {GlobalQuerySet.HQ_ONLY: "HQ only:", GlobalQuerySet.EVERY_SCOPE: "every scope reads:"}


def _label(model) -> str:
    return model._meta.label


def _declared_readers(model) -> str | None:
    declared = scope_global_declaration(model)
    if declared is not None:
        return declared[0]
    return GlobalQuerySet.HQ_ONLY if scope_declared(model) is not None else None


# -- the mechanism ------------------------------------------------------------------------------------------
def test_scoped_shows_nothing_of_a_model_that_declared_no_scope_even_to_hq(hq_operator):
    assert ContentType.objects.exists()
    assert not hasattr(ContentType.objects, "for_user") and scope_declared(ContentType) is None
    assert list(scoped(ContentType.objects.all(), hq_operator)) == []


def test_every_model_the_admin_shows_or_offers_in_a_form_has_a_declared_scope():
    undeclared = set()
    for model, model_admin in admin.site._registry.items():
        targets = [model]
        if isinstance(model_admin, ScopedAdmin):
            targets += [f.related_model for f in model._meta.get_fields()
                        if f.is_relation and f.concrete and (f.many_to_one or f.many_to_many)]
        for target in targets:
            if not hasattr(target._default_manager, "for_user") and scope_declared(target) is None:
                undeclared.add(_label(target))
    assert not undeclared, f"no declared scope (scoped() shows them nothing): {sorted(undeclared)}"


def test_each_declared_global_model_has_the_same_decision_in_the_registry():
    declared = {_label(m): _declared_readers(m) for m in apps.get_models() if _declared_readers(m)}
    ours = {label for label in GLOBAL}
    assert ours <= set(declared), f"in GLOBAL but not declared in code: {sorted(ours - set(declared))}"
    wrong = {label: GLOBAL[label] for label in ours if not GLOBAL[label].startswith(DECISION_WORDS[declared[label]])}
    assert not wrong, wrong


def test_no_role_below_hq_holds_a_permission_on_an_hq_only_model_or_may_change_a_brand_wide_one():
    hq_only = {m for m in apps.get_models() if _declared_readers(m) == GlobalQuerySet.HQ_ONLY}
    brand_wide = {m for m in apps.get_models() if _declared_readers(m) == GlobalQuerySet.EVERY_SCOPE}
    granted = []
    for role, permissions in ROLE_PERMISSIONS.items():
        if role in HQ_ROLES:
            continue
        for permission in permissions:
            app_label, codename = permission.split(".")
            action, model_name = codename.split("_", 1)
            model = apps.get_model(app_label, model_name)
            if model in hq_only or (model in brand_wide and action != "view"):
                granted.append(f"{role}: {permission}")
    assert not granted, granted


# -- who sees each global model, per persona ----------------------------------------------------------------
def _one_of_each() -> dict[type, object]:
    tag = TagFactory()
    segment = Segment.objects.create(name="高意向", rule={"stages": ["interested"]})
    snapshot = SegmentSnapshot.objects.create(segment=segment, rule=segment.rule)
    job = MemberImport.objects.create(file=ContentFile(b"x", name="m.csv"))
    return {Channel: ChannelFactory(), WelcomeMessage: WelcomeMessage.objects.create(name="欢迎", text="你好"),
            TagGroup: tag.group, Tag: tag, Segment: segment, SegmentSnapshot: snapshot,
            SegmentSnapshotMember: SegmentSnapshotMember.objects.create(
                snapshot=snapshot, customer=CustomerFactory(staff=StaffFactory())), MemberImport: job}


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_reads_brand_wide_rows_and_only_hq_reads_hq_only_rows(persona, request, org):
    user = request.getfixturevalue(persona)
    rows = _one_of_each()
    for model, row in rows.items():
        visible = model.objects.for_user(user).filter(pk=row.pk).exists()
        expected = persona == "hq_operator" or _declared_readers(model) == GlobalQuerySet.EVERY_SCOPE
        assert visible == expected, (persona, model.__name__)


def test_a_login_without_a_role_reads_no_global_row(org):
    nobody = UserFactory(username="nobody")
    for model, row in _one_of_each().items():
        assert not model.objects.for_user(nobody).filter(pk=row.pk).exists(), model.__name__


def test_a_region_manager_reads_the_channel_inventory_but_cannot_change_it(region_manager_east, client, org):
    channel = ChannelFactory(name="门店海报")
    client.force_login(region_manager_east)
    assert client.get(reverse("admin:customers_channel_changelist")).status_code == 200
    change = reverse("admin:customers_channel_change", args=[channel.pk])
    assert client.get(change).status_code == 200
    response = client.post(change, {"code": channel.code, "name": "改名", "kind": "poster", "goal": 1})
    assert response.status_code == 403
    channel.refresh_from_db()
    assert channel.name == "门店海报"


@pytest.mark.parametrize("url", ["admin:customers_segmentsnapshot_changelist",
                                 "admin:customers_memberimport_changelist", "admin:portal_user_changelist",
                                 "admin:django_celery_beat_periodictask_changelist", "admin:auth_group_changelist",
                                 "admin:axes_accessattempt_changelist"])
def test_a_region_manager_is_refused_every_hq_only_page(url, region_manager_east, client):
    client.force_login(region_manager_east)
    assert client.get(reverse(url)).status_code == 403


def test_a_store_manager_is_refused_the_channel_and_segment_pages(store_manager_of_a, client):
    client.force_login(store_manager_of_a)
    for url in ("admin:customers_channel_changelist", "admin:customers_segment_changelist"):
        assert client.get(reverse(url)).status_code == 403, url


# -- the customer page's member section ---------------------------------------------------------------------
@pytest.fixture
def customer_of_a_with_a_member_of_b(org):
    member = Member.objects.create(member_no="MB-0001", name="王会员", home_store=org.store_b, level="金卡",
                                   mobile_masked="139****2222")
    customer = CustomerFactory(staff=org.guide_a, name="共享客户")
    customer.member = member
    customer.save(update_fields=["member"])
    return customer


@pytest.mark.parametrize("persona", ["region_manager_east", "store_manager_of_a"])
def test_the_customer_page_does_not_show_a_member_homed_in_another_scope(persona, request, client,
                                                                        customer_of_a_with_a_member_of_b):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(reverse("admin:customers_customer_change", args=[customer_of_a_with_a_member_of_b.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "member" not in response.context or response.context["member"] is None
    assert "MB-0001" not in page and "139****2222" not in page and "广州天河店" not in page


def test_hq_sees_the_member_on_the_customer_page(hq_operator, client, customer_of_a_with_a_member_of_b):
    client.force_login(hq_operator)
    response = client.get(reverse("admin:customers_customer_change", args=[customer_of_a_with_a_member_of_b.pk]))
    assert response.context["member"].member_no == "MB-0001" and "MB-0001" in response.content.decode()


# -- the channel list's counts ------------------------------------------------------------------------------
def _adds_shown(client, channel) -> int:
    response = client.get(reverse("admin:customers_channel_changelist"))
    assert response.status_code == 200
    return next(c.adds_so_far for c in response.context["cl"].result_list if c.pk == channel.pk)


def test_the_channel_list_counts_only_the_region_managers_own_adds(region_manager_east, hq_operator, client, org):
    channel = ChannelFactory(name="桌牌")
    for staff, n in ((org.guide_a, 2), (org.guide_b, 3)):
        for _ in range(n):
            CustomerFactory(staff=staff).relationships.update(channel=channel)
    client.force_login(region_manager_east)
    assert _adds_shown(client, channel) == 2
    client.force_login(hq_operator)
    assert _adds_shown(client, channel) == 5


# -- segment descriptions -----------------------------------------------------------------------------------
@pytest.fixture
def segment_naming_both_scopes(org):
    rule = {"stores": sorted([org.store_a.pk, org.store_b.pk]), "staff": sorted([org.guide_a.pk, org.guide_b.pk]),
            "franchisees": sorted([org.franchisee_one.pk, org.franchisee_two.pk]),
            "regions": sorted([org.east.pk, org.south.pk])}
    return Segment.objects.create(name="两地", rule=rule)


FOREIGN_NAMES = ("广州天河店", "王导购", "二号加盟公司", "华南大区")


@pytest.mark.parametrize("persona", ["region_manager_east", "store_manager_of_a"])
def test_a_segment_description_names_nothing_of_another_scope(persona, request, segment_naming_both_scopes):
    text = segment_describe(rule=segment_naming_both_scopes.rule, viewer=request.getfixturevalue(persona))
    assert "上海徐汇店" in text and "李导购" in text
    assert not [name for name in FOREIGN_NAMES if name in text], text
    assert "1 项不在你的可见范围内" in text


def test_another_scopes_row_reads_exactly_like_a_missing_one_in_a_description(region_manager_east, org):
    foreign = segment_describe(rule={"stores": [org.store_b.pk]}, viewer=region_manager_east)
    missing = segment_describe(rule={"stores": [org.store_b.pk + 1000]}, viewer=region_manager_east)
    assert foreign == missing == "门店：1 项不在你的可见范围内"


def test_hq_reads_every_name_in_a_description(hq_operator, segment_naming_both_scopes):
    text = segment_describe(rule=segment_naming_both_scopes.rule, viewer=hq_operator)
    assert all(name in text for name in FOREIGN_NAMES)


def test_a_region_managers_segment_page_names_nothing_of_another_scope_nor_lists_its_ids(
        region_manager_east, client, segment_naming_both_scopes, org):
    client.force_login(region_manager_east)
    response = client.get(reverse("admin:customers_segment_change", args=[segment_naming_both_scopes.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert not [name for name in FOREIGN_NAMES if name in page]
    assert "规则（JSON）" not in page and "上海徐汇店" in page


# -- import errors ------------------------------------------------------------------------------------------
IMPORT_HEADER = ["会员号", "手机号", "unionid", "姓名", "等级", "积分", "累计消费", "消费次数", "最近消费日",
                 "归属门店编码"]


def _unknown_and_foreign(messages: dict[str, str]) -> tuple[str, str]:
    return messages["Z999"].replace("Z999", "<code>"), messages["B001"].replace("B001", "<code>")


def test_the_web_import_words_another_scopes_store_code_as_an_unknown_one(region_manager_east, org):
    dataset = tablib.Dataset(["N-1", "", "", "", "", "", "", "", "", "B001"],
                             ["N-2", "", "", "", "", "", "", "", "", "Z999"], headers=IMPORT_HEADER)
    result = MemberResource(user=region_manager_east).import_data(dataset, dry_run=True)
    messages = {code: str(row.error_dict["home_store"][0])
                for code, row in zip(("B001", "Z999"), result.invalid_rows, strict=True)}
    unknown, foreign = _unknown_and_foreign(messages)
    assert unknown == foreign


def test_the_api_words_another_scopes_store_code_as_an_unknown_one(store_manager_of_a, org):
    written = members_upsert_scoped(records=[MemberRecord(member_no="N-1", store_code="B001"),
                                             MemberRecord(member_no="N-2", store_code="Z999")], user=store_manager_of_a)
    messages = {code: written.errors[no]["home_store_code"][0] for no, code in (("N-1", "B001"), ("N-2", "Z999"))}
    unknown, foreign = _unknown_and_foreign(messages)
    assert unknown == foreign and not Member.objects.exists()


def _import_job(rows: list[list[str]], *, by) -> MemberImport:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(IMPORT_HEADER)
    writer.writerows(rows)
    job = MemberImport(created_by=by)
    job.file.save("members.csv", ContentFile(buffer.getvalue().encode()), save=False)
    job.save()
    return job


def test_the_import_job_words_an_unknown_store_code_as_the_web_import_and_the_api_do(hq_operator, org):
    job = member_import_run(job=_import_job([["N-1", "", "", "", "", "", "", "", "", "Z999"],
                                             ["N-2", "", "", "", "", "", "", "", "", "A001"]], by=hq_operator))
    job.refresh_from_db()
    assert any(e["message"] == "归属门店编码“Z999”不存在或不在您的权限范围内" for e in job.errors), job.errors


def test_an_import_job_whose_uploader_has_no_hq_scope_imports_nothing(region_manager_east, org):
    job = member_import_run(job=_import_job([["N-1", "", "", "王芳", "", "", "", "", "", "B001"],
                                             ["N-2", "", "", "李雷", "", "", "", "", "", "A001"]],
                                            by=region_manager_east))
    job.refresh_from_db()
    assert job.status == MemberImport.Status.FAILED and "总部" in job.errors[0]["message"]
    assert not Member.objects.exists()


def test_an_import_job_whose_uploader_lost_hq_access_before_it_ran_imports_nothing(hq_operator, org):
    job = _import_job([["N-1", "", "", "王芳", "", "", "", "", "", "B001"]], by=hq_operator)
    Access.objects.filter(user=hq_operator).delete()
    job = member_import_run(job=MemberImport.objects.get(pk=job.pk))
    assert job.status == MemberImport.Status.FAILED and not Member.objects.exists()


def test_customers_of_another_scope_stay_out_of_the_customer_list_whatever_the_filter(region_manager_east, client,
                                                                                      org):
    """The list reads through the same filter functions a stored selection uses."""
    b = CustomerFactory(staff=org.guide_b)
    client.force_login(region_manager_east)
    for query in ({"store__id__exact": org.store_b.pk}, {"region__id__exact": org.south.pk}, {"q": b.external_userid}):
        response = client.get(reverse("admin:customers_customer_changelist"), query)
        assert b.pk not in {c.pk for c in response.context["cl"].result_list}
    assert Customer.objects.filter(pk=b.pk).exists()
