"""Login lockouts see the real client behind trusted proxies, ignore forged headers, and stop password sprays.

5 failures lock a username+address pair; 20 failures from one address, over any usernames, lock the address
(portal/login_throttle.py). Lockouts answer 429.
"""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.conftest import PASSWORD

PROXY = "10.0.0.2"


def login(client, username: str, password: str, *, remote: str = PROXY, forwarded: str | None = None) -> int:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    response = client.post(reverse("admin:login"), {"username": username, "password": password},
                           REMOTE_ADDR=remote, **extra)
    client.logout()
    return response.status_code


@override_settings(XIAOER_TRUSTED_PROXY_COUNT=1)
def test_five_bad_logins_from_one_client_behind_the_proxy_do_not_lock_another_client_out(client, hq_operator):
    for _ in range(5):
        login(client, "hq_operator", "wrong", forwarded="203.0.113.10")
    assert login(client, "hq_operator", PASSWORD, forwarded="203.0.113.11") == 302
    assert login(client, "hq_operator", PASSWORD, forwarded="203.0.113.10") == 429


@override_settings(XIAOER_TRUSTED_PROXY_COUNT=1)
def test_behind_the_proxy_a_forged_left_part_of_x_forwarded_for_does_not_dodge_the_lock(client, hq_operator):
    for n in range(5):
        login(client, "hq_operator", "wrong", forwarded=f"198.51.100.{n}, 203.0.113.10")
    assert login(client, "hq_operator", PASSWORD, forwarded="198.51.100.99, 203.0.113.10") == 429


def test_without_trusted_proxies_a_forged_x_forwarded_for_does_not_dodge_the_lock(client, hq_operator):
    for n in range(5):
        login(client, "hq_operator", "wrong", remote="203.0.113.20", forwarded=f"198.51.100.{n}")
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.20", forwarded="198.51.100.99") == 429
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.21") == 302


@override_settings(XIAOER_TRUSTED_PROXY_COUNT=1, XIAOER_TRUSTED_PROXY_NETWORKS=["10.0.0.0/24"])
def test_a_client_that_bypasses_the_trusted_proxy_cannot_choose_its_address(client, hq_operator):
    for n in range(5):
        login(client, "hq_operator", "wrong", remote="203.0.113.30", forwarded=f"198.51.100.{n}")
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.30", forwarded="198.51.100.99") == 429


@pytest.mark.parametrize("forwarded", ["not-an-ip", "", " , ", "999.1.1.1"])
@override_settings(XIAOER_TRUSTED_PROXY_COUNT=1)
def test_a_garbage_x_forwarded_for_counts_as_the_proxy_itself(client, hq_operator, forwarded):
    for _ in range(5):
        login(client, "hq_operator", "wrong", forwarded=forwarded)
    assert login(client, "hq_operator", PASSWORD) == 429


def test_many_usernames_from_one_address_lock_the_address(client, hq_operator):
    for n in range(20):
        login(client, f"guess{n}", "Password1", remote="203.0.113.40")
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.40") == 429
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.41") == 302


def test_nineteen_failures_over_many_usernames_leave_the_address_open(client, hq_operator):
    for n in range(19):
        login(client, f"guess{n}", "Password1", remote="203.0.113.50")
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.50") == 302


def test_a_successful_login_does_not_reset_the_address_count(client, hq_operator):
    for n in range(19):
        login(client, f"guess{n}", "Password1", remote="203.0.113.60")
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.60") == 302  # the sprayer's own account
    login(client, "guess-last", "Password1", remote="203.0.113.60")
    assert login(client, "hq_operator", PASSWORD, remote="203.0.113.60") == 429
