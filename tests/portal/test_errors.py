"""A refused business rule is one error type (portal.errors.DomainError), said in one place per surface:
the admin shows its reason on the page it came from, the API answers 400 with it; nothing half-done."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

from django.contrib.messages import get_messages
from django.urls import reverse

from customers.members import api as members_api
from customers.tags.services import TagError
from portal.errors import DomainError
from stores.models import Staff
from stores.org import admin as org_admin
from stores.org.services import OrgError
from tests.customers.members.test_members_api import bearer, writer_token

# Errors that are not a refused business rule, and why.
NOT_DOMAIN = {
    "AddressBookSyncError": "the address-book sync stopped itself (safety check): an operations failure, logged",
    "FileRefused": "the upload guard (portal.uploads) answers it as a form error before any service runs",
    "WeComError": "WeCom unreachable, throttling or refusing a call: retried by tasks, redacted; a service that "
                  "tells a user why WeCom refused wraps it in its own DomainError (TagError, AcquisitionError)",
    "EnvError": "a setting read from the environment is malformed: the process refuses to start",
    "DemoSeedError": "a demo data step failed (make run): a developer's problem, never a user's input",
}


def _app_error_classes():
    """Every class named *Error defined in portal and the apps (found in the source, then imported)."""
    root = Path(__file__).resolve().parents[2]
    for package in ("portal", "stores", "materials", "customers", "campaigns"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts:
                continue
            names = [node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                     if isinstance(node, ast.ClassDef) and node.name.endswith("Error")]
            if names:
                module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
                yield from ((name, getattr(module, name)) for name in names)


def test_every_error_the_apps_raise_for_a_refused_rule_is_a_domain_error():
    found = dict(_app_error_classes())
    assert {"TagError", "OrgError", "MemberDataError", "SegmentRuleError", "WeComError", "EnvError"} <= set(found)
    assert all(issubclass(cls, Exception) for cls in found.values())
    strays = sorted(name for name, cls in found.items() if not issubclass(cls, DomainError) and name not in NOT_DOMAIN)
    assert not strays, f"error classes outside DomainError (derive it, or say why in NOT_DOMAIN): {strays}"


def test_a_refusal_during_an_admin_action_is_said_on_the_list_and_changes_nothing(client, hq_operator, org,
                                                                                    monkeypatch):
    def refuse(**kwargs):
        raise OrgError("该员工有未完成的客户继承，不能标记离职")

    monkeypatch.setattr(org_admin, "staff_depart", refuse)
    client.force_login(hq_operator)
    url = reverse("admin:stores_staff_changelist")
    response = client.post(url, {"action": "depart_selected", "_selected_action": [org.guide_a.pk]})
    assert response.status_code == 302 and response["Location"] == url
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["该员工有未完成的客户继承，不能标记离职"]
    assert Staff.objects.get(pk=org.guide_a.pk).status == Staff.Status.ACTIVE


def test_a_refusal_while_saving_in_the_admin_is_said_on_the_form_and_rolls_back(client, hq_operator, monkeypatch):
    from customers.tags import admin as tags_admin
    from customers.tags.models import TagGroup

    def refuse(**kwargs):
        raise TagError("企业微信拒绝：标签组名称已存在")

    monkeypatch.setattr(tags_admin, "tag_group_create", refuse)
    client.force_login(hq_operator)
    url = reverse("admin:customers_taggroup_add")
    response = client.post(url, {"name": "新标签组", "order": 0, "tag_names": "甲\n乙",
                                 "tags-TOTAL_FORMS": 0, "tags-INITIAL_FORMS": 0})
    assert response.status_code == 302 and response["Location"] == url
    assert "企业微信拒绝：标签组名称已存在" in [str(m) for m in get_messages(response.wsgi_request)]
    assert not TagGroup.objects.filter(name="新标签组").exists()


def test_a_refusal_in_the_api_is_a_400_with_its_reason(client, org, monkeypatch):
    def refuse(**kwargs):
        raise DomainError("会员数据暂时锁定，请稍后再试")

    monkeypatch.setattr(members_api, "members_upsert_scoped", refuse)
    key = writer_token("hq_operator", username="crm-refused")
    response = client.post("/api/v1/members/upsert/", json.dumps({"member_no": "M1", "name": "王"}),
                           content_type="application/json", **bearer(key))
    assert response.status_code == 400
    assert response.json() == {"detail": "会员数据暂时锁定，请稍后再试"}
