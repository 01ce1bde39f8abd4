"""Production fails closed: public defaults and the sandbox's published values refuse to start.

Production mode is the default (no XIAOER_DEMO, no DEBUG). The checks are run in-process with
production settings for each bad value, and in subprocesses for what an operator runs: manage.py
check --deploy, the WSGI application (gunicorn), the Celery worker and beat, and make serve.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from portal import dev_defaults, run
from portal.checks import production_refuse, production_settings_check

BASE = Path(__file__).resolve().parents[2]
SANDBOX = dev_defaults.wecom_sandbox_settings()
STRONG_SECRET_KEY = "Zq8-" + "kV3rT9wLm2XpA7sD4fG6hJ1nB5cE0yU8iO3pQ7rW2tY6uI9oP4aS1dF5gH8jK0lZ"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # 43 characters, like WeCom's

PRODUCTION_SETTINGS = {
    "XIAOER_DEMO": False, "DEBUG": False, "WECOM_SANDBOX": False,
    "SECRET_KEY": STRONG_SECRET_KEY, "MEMBER_MOBILE_HASH_KEY": "m" + "7Hq2Lx9Vd4Kp1Ws8Zc3Nb6Rt0Yf5Gj2E",
    "ALLOWED_HOSTS": ["xiaoer.example.com"], "XIAOER_PUBLIC_URL": "https://xiaoer.example.com",
    "WECOM_CORP_ID": "ww0123456789abcdef", "WECOM_SECRET": "real-app-secret-0123456789",
    "WECOM_CONTACT_SECRET": "real-contact-secret-0123456789", "WECOM_AGENT_ID": "1000005",
    "WECOM_TOKEN": "RealCallbackToken2026", "WECOM_AES_KEY": AES_KEY,
    "WECOM_BASE_URL": "https://qyapi.weixin.qq.com/cgi-bin/",
}
# The same, as the environment an operator gives (production mode is what you get without XIAOER_DEMO).
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": STRONG_SECRET_KEY, "MEMBER_MOBILE_HASH_KEY": PRODUCTION_SETTINGS["MEMBER_MOBILE_HASH_KEY"],
    "DJANGO_ALLOWED_HOSTS": "xiaoer.example.com", "XIAOER_PUBLIC_URL": "https://xiaoer.example.com",
    "DATABASE_URL": "postgresql://xiaoer@db.example.invalid/xiaoer",
    "REDIS_URL": "redis://redis.example.invalid:6379/0",
    **{name: PRODUCTION_SETTINGS[name] for name in ("WECOM_CORP_ID", "WECOM_SECRET", "WECOM_CONTACT_SECRET",
                                                    "WECOM_AGENT_ID", "WECOM_TOKEN", "WECOM_AES_KEY")},
}
# Everything a fresh download publishes: the dev defaults and the sandbox's credentials.
PUBLIC_VALUES_ENV = {
    **PRODUCTION_ENV, "DJANGO_SECRET_KEY": dev_defaults.SECRET_KEY,
    "MEMBER_MOBILE_HASH_KEY": dev_defaults.MEMBER_MOBILE_HASH_KEY,
    **{name: SANDBOX[name] for name in ("WECOM_SECRET", "WECOM_CONTACT_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY",
                                        "WECOM_BASE_URL")},
}


def production_env(**values: str | None) -> dict[str, str]:
    """os.environ without the suite's demo mode, sandbox and test shortcuts, plus the given values."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("XIAOER_", "WECOM_", "DJANGO_", "MEMBER_", "SANDBOX_", "DATABASE_", "REDIS_",
                                   "CELERY_", "CACHE_"))}
    env.update({name: value for name, value in values.items() if value is not None})
    return env


def _run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=BASE, env=env, capture_output=True, text=True, timeout=timeout)


def _ids(**overrides) -> set[str]:
    with override_settings(**{**PRODUCTION_SETTINGS, **overrides}):
        return {message.id for message in production_settings_check()}


# ---------------------------------------------------------------- the checks, in-process


def test_a_complete_production_configuration_passes_every_check():
    assert _ids() == set()


def test_the_test_suite_itself_runs_in_demo_mode_against_the_sandbox(settings):
    assert settings.XIAOER_DEMO and settings.WECOM_SANDBOX and production_settings_check() == []


@pytest.mark.parametrize("value", ["", dev_defaults.SECRET_KEY, "short-but-random-Q9",
                                   "django-insecure-" + "k" * 10 + STRONG_SECRET_KEY, "ab" * 40])
def test_production_refuses_a_missing_public_or_weak_secret_key(value):
    assert "xiaoer.E001" in _ids(SECRET_KEY=value)


@pytest.mark.parametrize("value", ["", dev_defaults.MEMBER_MOBILE_HASH_KEY, "guessable-key"])
def test_production_refuses_a_member_mobile_hash_key_anyone_could_brute_force_with(value):
    assert "xiaoer.E002" in _ids(MEMBER_MOBILE_HASH_KEY=value)


def test_production_refuses_debug():
    assert "xiaoer.E003" in _ids(DEBUG=True)


@pytest.mark.parametrize("hosts", [[], ["127.0.0.1", "localhost", "testserver"], ["[::1]"]])
def test_production_refuses_allowed_hosts_without_a_real_host_name(hosts):
    assert "xiaoer.E004" in _ids(ALLOWED_HOSTS=hosts)


@pytest.mark.parametrize("url", ["", "http://xiaoer.example.com", "https://127.0.0.1:8000", "https://localhost"])
def test_production_refuses_app_message_links_that_phones_cannot_open_safely(url):
    assert "xiaoer.E006" in _ids(XIAOER_PUBLIC_URL=url)


@pytest.mark.parametrize(("name", "check_id"), [("WECOM_CORP_ID", "xiaoer.E010"), ("WECOM_SECRET", "xiaoer.E011"),
                                                ("WECOM_TOKEN", "xiaoer.E013"), ("WECOM_AES_KEY", "xiaoer.E014")])
@pytest.mark.parametrize("source", ["missing", "the sandbox's published value"])
def test_production_refuses_a_wecom_credential_that_is_missing_or_the_sandboxs(name, check_id, source):
    assert check_id in _ids(**{name: "" if source == "missing" else SANDBOX[name]})


def test_production_refuses_the_sandboxs_contact_secret_but_may_fall_back_to_the_app_secret():
    assert "xiaoer.E012" in _ids(WECOM_CONTACT_SECRET=SANDBOX["WECOM_CONTACT_SECRET"])
    assert _ids(WECOM_CONTACT_SECRET="") == set()  # the gateway then uses WECOM_SECRET, as documented


@pytest.mark.parametrize("key", ["too-short", "!" * 43, AES_KEY + "A", AES_KEY[:42]])
def test_a_callback_aes_key_that_is_not_an_encoding_aes_key_is_refused(key):
    assert "xiaoer.E015" in _ids(WECOM_AES_KEY=key)


@pytest.mark.parametrize("url", [SANDBOX["WECOM_BASE_URL"], "http://localhost:8900/cgi-bin/",
                                 "http://[::1]:8900/cgi-bin/", "http://0.0.0.0:8900/", "ftp://qyapi.weixin.qq.com/"])
def test_production_refuses_a_wecom_base_url_on_this_machine(url):
    assert "xiaoer.E016" in _ids(WECOM_BASE_URL=url)


@pytest.mark.parametrize("agent_id", ["", "app"])
def test_production_refuses_a_missing_agent_id(agent_id):
    assert "xiaoer.E017" in _ids(WECOM_AGENT_ID=agent_id)


def test_a_real_corp_with_the_sandboxs_callback_token_is_refused_even_in_demo_mode():
    # The finding's exploit: WECOM_CORP_ID given, the token and key left to the sandbox's published values,
    # so anyone can sign a delete_user callback for every member.
    ids = _ids(XIAOER_DEMO=True, DEBUG=True, WECOM_TOKEN=SANDBOX["WECOM_TOKEN"],
               WECOM_AES_KEY=SANDBOX["WECOM_AES_KEY"])
    assert {"xiaoer.E013", "xiaoer.E014"} <= ids


def test_demo_mode_may_use_the_development_secrets():
    assert _ids(XIAOER_DEMO=True, SECRET_KEY=dev_defaults.SECRET_KEY,
                MEMBER_MOBILE_HASH_KEY=dev_defaults.MEMBER_MOBILE_HASH_KEY, ALLOWED_HOSTS=["localhost"]) == set()


def test_the_refusal_for_servers_names_every_problem():
    with override_settings(**{**PRODUCTION_SETTINGS, "SECRET_KEY": "", "WECOM_TOKEN": SANDBOX["WECOM_TOKEN"]}):
        with pytest.raises(Exception, match=r"xiaoer\.E001[\s\S]*xiaoer\.E013"):
            production_refuse()


# ---------------------------------------------------------------- settings: the sandbox only in demo mode


def test_production_settings_take_nothing_from_the_sandbox():
    code = ("import sys; from django.conf import settings; "
            "print(repr(settings.WECOM_TOKEN), repr(settings.WECOM_AES_KEY), settings.WECOM_SANDBOX, "
            "'wecom_sandbox' in sys.modules)")
    result = _run("-c", code, env=production_env(DJANGO_SETTINGS_MODULE="portal.settings", WECOM_CORP_ID="ww01"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "''", "False", "False"]


# What a production process loads before it serves: the settings, every app (models, admin, handlers,
# schedules) and the URLconf. None of it may import the sandbox; demo mode does, through its settings.
_SANDBOX_LOADED = ("import sys; import portal.settings; import django; django.setup(); import portal.urls; "
                   "print(sorted(name for name in sys.modules if name.split('.')[0] == 'wecom_sandbox'))")


def test_a_production_process_never_imports_the_sandbox():
    result = _run("-c", _SANDBOX_LOADED, env=production_env(DJANGO_SETTINGS_MODULE="portal.settings",
                                                            **PRODUCTION_ENV))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_demo_mode_reads_the_sandboxs_published_defaults_and_nothing_else_of_it():
    result = _run("-c", _SANDBOX_LOADED, env=production_env(DJANGO_SETTINGS_MODULE="portal.settings", XIAOER_DEMO="1",
                                                            DATABASE_URL=os.environ["DATABASE_URL"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['wecom_sandbox', 'wecom_sandbox.defaults']"


def test_debug_alone_is_demo_mode_and_without_a_corp_id_talks_to_the_sandbox():
    code = "from django.conf import settings; print(settings.XIAOER_DEMO, settings.WECOM_SANDBOX, settings.WECOM_TOKEN)"
    result = _run("-c", code, env=production_env(DJANGO_SETTINGS_MODULE="portal.settings", DJANGO_DEBUG="1",
                                                 DATABASE_URL=os.environ["DATABASE_URL"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", SANDBOX["WECOM_TOKEN"]]


# ---------------------------------------------------------------- what an operator starts


def test_check_deploy_is_clean_with_production_settings():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=production_env(**PRODUCTION_ENV))
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_only_commands_run_in_production_mode_with_nothing_configured_yet():
    result = _run("manage.py", "makemigrations", "--check", "--dry-run", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_only_commands_still_refuse_a_value_given_but_unsafe():
    result = _run("manage.py", "makemigrations", "--check", "--dry-run",
                  env=production_env(XIAOER_PUBLIC_URL="http://127.0.0.1:8000", DJANGO_ALLOWED_HOSTS="localhost"))
    assert result.returncode != 0
    assert "xiaoer.E006" in result.stderr and "xiaoer.E004" in result.stderr


def test_check_deploy_refuses_a_production_start_with_nothing_configured():
    result = _run("manage.py", "check", "--deploy", env=production_env())
    assert result.returncode != 0
    for check_id in ("E001", "E002", "E004", "E005", "E006", "E010", "E011", "E013", "E014", "E017"):
        assert f"xiaoer.{check_id}" in result.stderr, check_id


def test_check_deploy_refuses_the_published_defaults_and_sandbox_values():
    result = _run("manage.py", "check", "--deploy", env=production_env(**PUBLIC_VALUES_ENV))
    assert result.returncode != 0
    for check_id in ("E001", "E002", "E011", "E012", "E013", "E014", "E016"):
        assert f"xiaoer.{check_id}" in result.stderr, check_id


def test_check_deploy_warns_that_demo_mode_is_not_production():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING",
                  env=production_env(**PRODUCTION_ENV, XIAOER_DEMO="1"))
    assert result.returncode != 0 and "xiaoer.W001" in result.stderr


def test_management_commands_refuse_to_run_on_public_defaults():
    result = _run("manage.py", "setup_schedules", env=production_env(**PUBLIC_VALUES_ENV))
    assert result.returncode != 0 and "xiaoer.E013" in result.stderr


@pytest.mark.parametrize(("values", "loads"), [(PRODUCTION_ENV, True), (PUBLIC_VALUES_ENV, False)])
def test_the_wsgi_application_gunicorn_loads_refuses_public_defaults(values, loads):
    result = _run("-c", "import portal.wsgi", env=production_env(**values))
    assert (result.returncode == 0) is loads, result.stderr
    if not loads:
        assert "ImproperlyConfigured" in result.stderr and "xiaoer.E013" in result.stderr


@pytest.mark.parametrize("program", [["worker", "--pool", "solo", "--without-gossip", "--without-mingle"], ["beat"]])
def test_a_celery_worker_or_beat_refuses_public_defaults(program):
    result = _run("-m", "celery", "-A", "portal", *program, env=production_env(**PUBLIC_VALUES_ENV), timeout=90)
    assert result.returncode != 0
    assert "xiaoer.E013" in result.stdout + result.stderr


# ---------------------------------------------------------------- make serve and make run


def test_make_serve_checks_first_then_runs_gunicorn_a_worker_and_beat_without_demo_data_or_debug():
    plan = run.production_plan(production_env(**PRODUCTION_ENV))
    assert [step[2:4] for step in plan.steps] == [["check", "--deploy"], ["migrate", "--no-input"],
                                                  ["setup_schedules"], ["collectstatic", "--no-input"]]
    assert plan.processes["web"][1:4] == ["-m", "gunicorn", "portal.wsgi"]
    assert plan.processes["web"][plan.processes["web"].index("--bind") + 1] == "127.0.0.1:8000"
    assert plan.processes["worker"][3:6] == ["-A", "portal", "worker"]
    assert plan.processes["beat"][3:6] == ["-A", "portal", "beat"]
    everything = " ".join(" ".join(command) for command in [*plan.steps, *plan.processes.values()])
    assert "seed_demo" not in everything and "runserver" not in everything
    assert plan.env["XIAOER_DEMO"] == "0" and plan.env["DJANGO_DEBUG"] == "0"


@pytest.mark.parametrize("values", [{"XIAOER_DEMO": "1"}, {"DJANGO_DEBUG": "1"}, {"REDIS_URL": None}])
def test_make_serve_refuses_demo_mode_debug_or_no_redis(values):
    with pytest.raises(run.RunRefused):
        run.production_plan(production_env(**{**PRODUCTION_ENV, **values}))


def test_make_serve_refuses_to_start_anything_on_public_defaults():
    result = _run("-m", "portal.run", "--production", env=production_env(**PUBLIC_VALUES_ENV))
    assert result.returncode == 1
    assert "xiaoer.E001" in result.stderr and "nothing was started" in result.stderr
    assert "Listening at" not in result.stdout + result.stderr  # gunicorn never started


@pytest.mark.parametrize(("values", "refused"), [
    ({}, False),  # the embedded database: the demo as a new user gets it
    ({"DATABASE_URL": "postgresql://ops@db.example.com/xiaoer"}, True),
    ({"DATABASE_URL": "postgresql://ops@db.example.com/xiaoer", "XIAOER_DEMO": "1"}, False),  # said explicitly
    ({"XIAOER_DEMO": "0"}, True),
])
def test_make_run_seeds_demo_data_only_into_the_embedded_database_unless_told(values, refused):
    assert (run.demo_refusal(values) is not None) is refused


def test_make_run_refuses_before_starting_anything_against_another_database(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql://ops@db.example.com/xiaoer")
    monkeypatch.delenv("XIAOER_DEMO")
    assert run.demo() == 2
    assert "XIAOER_DEMO=1" in capsys.readouterr().err


def test_seed_demo_refuses_outside_demo_mode(db, settings):
    settings.XIAOER_DEMO = False
    with pytest.raises(CommandError, match="XIAOER_DEMO=1"):
        call_command("seed_demo", "--no-sandbox")
    assert not get_user_model().objects.filter(username="admin").exists()
