"""The platform: migrations, login throttling, schedules, demo data.

Production settings (check --deploy, the refusal of public defaults): tests/portal/test_production_checks.py.
"""

from __future__ import annotations

from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from stores.models import Staff, Store


def test_migrations_are_committed(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_admin_login_locks_after_repeated_failures(client, hq_operator):
    url = reverse("admin:login")
    for _ in range(5):
        client.post(url, {"username": "hq_operator", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
    response = client.post(url, {"username": "hq_operator", "password": "pw-for-tests-2026"}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 429
    # the same user from another address is not locked out (lockout is per user and IP)
    response = client.post(url, {"username": "hq_operator", "password": "pw-for-tests-2026"}, REMOTE_ADDR="10.0.0.8")
    assert response.status_code == 302


def test_setup_schedules_is_idempotent_and_keeps_operator_choices(db):
    call_command("setup_schedules", verbosity=0)
    task = PeriodicTask.objects.get(name="platform.beat_heartbeat")
    task.enabled = False
    task.save()
    call_command("setup_schedules", verbosity=0)
    assert PeriodicTask.objects.filter(name="platform.beat_heartbeat").count() == 1
    assert PeriodicTask.objects.get(name="platform.beat_heartbeat").enabled is False


def test_seed_demo_twice_changes_nothing(db):
    call_command("seed_demo", verbosity=0)
    counts = (Store.objects.count(), Staff.objects.count())
    assert counts == (30, 150)
    call_command("seed_demo", verbosity=0)
    assert (Store.objects.count(), Staff.objects.count()) == counts


def test_demo_personas_log_in_and_see_their_scope(db, client):
    call_command("seed_demo", verbosity=0)
    response = client.post(reverse("admin:login"), {"username": "manager_s0001", "password": "xiaoer-demo-2026"})
    assert response.status_code == 302
    response = client.get(reverse("admin:stores_store_changelist"))
    assert [s.code for s in response.context["cl"].result_list] == ["S0001"]
