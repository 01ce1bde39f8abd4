"""What apps register at startup cannot be silently replaced: a second entry under a key is refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import dashboard, demo, schedules
from portal.wecom import events, syncs
from portal.wecom.events import event_handler, handler_for


@pytest.fixture
def clean_registries(monkeypatch):
    for module, name in ((events, "_HANDLERS"), (schedules, "_SCHEDULES"), (dashboard, "_PANELS"),
                         (demo, "_SEEDERS"), (syncs, "_KINDS")):
        monkeypatch.setattr(module, name, dict(getattr(module, name)))


def test_a_second_handler_for_a_wecom_event_already_handled_is_refused_naming_both(clean_registries):
    def another_add_handler(fields: dict) -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match="registered twice") as refused:
        event_handler("change_external_contact", "add_external_contact")(another_add_handler)
    assert "customers.contacts.handlers" in str(refused.value) and "another_add_handler" in str(refused.value)
    assert handler_for("change_external_contact", "add_external_contact").__module__ == "customers.contacts.handlers"


def test_registering_the_same_handler_again_is_harmless(clean_registries):
    current = handler_for("change_external_contact", "add_external_contact")
    event_handler("change_external_contact", "add_external_contact")(current)
    assert handler_for("change_external_contact", "add_external_contact") is current


def test_a_second_schedule_panel_seeder_or_sync_kind_under_a_taken_name_is_refused(clean_registries):
    taken = schedules.schedules_declared()[0]
    with pytest.raises(ImproperlyConfigured):
        schedules.schedule_register(schedules.Schedule(name=taken.name, task="elsewhere.task", every_seconds=60,
                                                       description="x"))
    with pytest.raises(ImproperlyConfigured):
        dashboard.panel_register(dashboard.Panel(key="org", title="x", order=1, build=lambda request: None))
    with pytest.raises(ImproperlyConfigured):
        demo.demo_seeder_register(name="customers", seed=lambda: "x")
    kind = syncs.sync_kinds()[0]
    with pytest.raises(ImproperlyConfigured):
        syncs.sync_kind_register(syncs.SyncKind(kind=kind.kind, label="x", task="elsewhere.task"))


def test_a_second_field_policy_for_a_model_is_refused(monkeypatch):
    from portal import field_policy
    from stores.models import Staff

    monkeypatch.setattr(field_policy, "_POLICIES", dict(field_policy._POLICIES))
    current = field_policy.field_policy_for(Staff)
    field_policy.field_policy_register(model=Staff, policy=current)  # the same again: harmless
    with pytest.raises(ImproperlyConfigured, match="field policy"):
        field_policy.field_policy_register(model=Staff, policy=object())
    assert field_policy.field_policy_for(Staff) is current


def test_a_roles_grants_on_a_model_come_from_one_module_and_only_add_up(monkeypatch):
    from stores.access import roles

    monkeypatch.setattr(roles, "ROLE_PERMISSIONS", roles.defaultdict(set, {k: set(v) for k, v in
                                                                          roles.ROLE_PERMISSIONS.items()}))
    monkeypatch.setattr(roles, "_DECLARED_IN", dict(roles._DECLARED_IN))

    def grant_from(module: str, actions: tuple[str, ...]) -> None:
        exec("extend(role='store_staff', app_label='customers', model='segment', actions=actions)",
             {"__name__": module, "extend": roles.role_permissions_extend, "actions": actions})

    assert "customers.view_segment" not in roles.ROLE_PERMISSIONS["store_staff"]
    grant_from("customers.segments.hooks", ("view",))
    grant_from("customers.segments.hooks", ("add",))  # the declaring module may grant more
    assert {"customers.view_segment", "customers.add_segment"} <= roles.ROLE_PERMISSIONS["store_staff"]
    with pytest.raises(ImproperlyConfigured, match="customers.segments.hooks and again by customers.tags.hooks"):
        grant_from("customers.tags.hooks", ("change",))
    assert "customers.change_segment" not in roles.ROLE_PERMISSIONS["store_staff"]
