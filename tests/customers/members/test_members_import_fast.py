"""The fast path's write step, branch by branch: a file mixing new and existing members (new ones
inserted, changed ones updated, unchanged ones left alone), what the unification is asked to look
at, the typed binary COPY at the columns' limits, and the two races with the API (a member created,
or changed, by someone else while a file is being imported)."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from django.db import OperationalError, connection

from customers.members import imports as members_import
from customers.members.services import mobile_hash
from customers.models import Member, MemberImport
from tests.customers.members.test_members_import import HEADER, csv_bytes, generated_rows, run
from tests.factories import CustomerFactory


def row(no: str, mobile: str = "", *, unionid: str = "", name: str = "", level: str = "", points: str = "",
        spend: str = "", orders: str = "", last: str = "", store: str = "") -> list[str]:
    return [no, mobile, unionid, name, level, points, spend, orders, last, store]


def _versions() -> dict[str, tuple[str, str]]:
    """Each member's row version and locker: an UPDATE moves the row (ctid), a lock sets xmax."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT member_no, ctid::text, xmax::text FROM customers_member")
        return {no: (ctid, xmax) for no, ctid, xmax in cursor.fetchall()}


def test_a_file_mixing_new_changed_and_unchanged_members_writes_only_what_differs(org):
    first = run(csv_bytes([row("M1", "13800000001", name="王芳", level="金卡", points="10", store="A001"),
                           row("M2", "13800000002", name="李雷", points="20"),
                           row("M3", "13800000003", name="韩梅梅", points="30")]))
    assert (first.rows_created, first.rows_updated) == (3, 0)
    before = _versions()

    # M1 unchanged (blanks keep), M2 changed, M3 absent, M4 and M5 new.
    job = run(csv_bytes([row("M1", "", name="王芳", points="10"),
                         row("M4", "13800000004", name="新会员", store="B001"),
                         row("M2", "13800000002", name="李雷", points="21"),
                         row("M5")]))
    assert (job.status, job.rows_done, job.rows_created, job.rows_updated) == (MemberImport.Status.DONE, 4, 2, 1)
    members = {m.member_no: m for m in Member.objects.all()}
    after = _versions()
    assert after["M1"] == before["M1"] and after["M3"] == before["M3"]  # neither written nor locked
    assert after["M2"] != before["M2"] and members["M2"].points == 21
    assert (members["M1"].level, members["M1"].home_store, members["M1"].mobile_masked) == (
        "金卡", org.store_a, "138****0001")  # blank cells kept the stored values
    assert (members["M4"].home_store, members["M4"].mobile_hash) == (org.store_b, mobile_hash("13800000004"))
    assert (members["M5"].name, members["M5"].points, members["M5"].lifetime_spend, members["M5"].home_store,
            members["M5"].last_purchase_on) == ("", 0, 0, None, None)  # a new member's blanks are the defaults


def test_a_file_without_an_optional_column_keeps_that_column(org):
    run(csv_bytes([row("M1", "13800000001", level="金卡", store="A001", points="5")]))
    header = [h for h in HEADER if h not in ("等级", "归属门店编码")]
    job = run(csv_bytes([["M1", "13800000001", "", "王芳", "6", "", "", ""]], header=header))
    assert (job.rows_created, job.rows_updated) == (0, 1)
    member = Member.objects.get()
    assert (member.name, member.points, member.level, member.home_store) == ("王芳", 6, "金卡", org.store_a)


def test_only_new_members_and_changed_identities_are_unified_again(org, monkeypatch):
    run(csv_bytes([row("M1", "13800000001", points="1"), row("M2", "13800000002", unionid="oOLD")]))
    customer = CustomerFactory(staff=org.guide_a, unionid="oNEW")
    scopes = []
    unify = members_import.members_unify_scope_table

    def spy(*, table):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {table}")
            scopes.append({pk for (pk,) in cursor.fetchall()})
        return unify(table=table)

    monkeypatch.setattr(members_import, "members_unify_scope_table", spy)
    job = run(csv_bytes([row("M1", "13800000001", points="2"),  # points only: who M1 is did not change
                         row("M2", "13800000002", unionid="oNEW"),
                         row("M3", "13800000003")]))
    assert (job.rows_created, job.rows_updated) == (1, 2)
    ids = dict(Member.objects.values_list("member_no", "pk"))
    assert scopes == [{ids["M2"], ids["M3"]}]
    customer.refresh_from_db()
    assert customer.member_id == ids["M2"]  # linked by the unionid the file brought

    scopes.clear()
    again = run(csv_bytes([row("M1", "13800000001", points="3")]))
    assert again.rows_updated == 1 and scopes == []  # nothing to unify: no unification run at all


def test_values_at_the_columns_limits_travel_through_the_binary_copy(org):
    job = run(csv_bytes([row("M" * 32, "+86 138-0000-0001", unionid="o" * 64, name="名" * 64, level="等" * 16,
                             points="-2147483647", spend="999999999999.99", orders="2147483647", last="2100-12-31",
                             store="C001")]))
    assert job.status == MemberImport.Status.DONE and job.rows_created == 1, job.errors
    member = Member.objects.get()
    assert (member.member_no, member.unionid, member.name, member.level) == ("M" * 32, "o" * 64, "名" * 64, "等" * 16)
    assert (member.points, member.order_count, member.lifetime_spend, member.last_purchase_on) == (
        -2147483647, 2147483647, Decimal("999999999999.99"), date(2100, 12, 31))
    assert member.home_store.code == "C001"


def test_a_nul_character_deep_in_a_file_is_a_row_error_not_a_failed_file(org):
    rows, _bad = generated_rows(3000)  # past the sniffed head (a NUL there means "not a CSV")
    job = run(csv_bytes([*rows, row("M1", name="王\0芳"), row("M2", name="李雷")]))
    assert job.status == MemberImport.Status.DONE and job.rows_created == 3001
    assert job.errors[0]["line"] == 3002 and "空字符" in job.errors[0]["message"]


# -- races with the API: another connection holds a member's row, commits while the import waits ----

def _other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(dbname=settings["NAME"], host=settings["HOST"] or None, port=settings["PORT"] or None,
                           user=settings["USER"] or None, password=settings["PASSWORD"] or None)


def _commit_later(other: psycopg.Connection, seconds: float = 1.0) -> threading.Thread:
    def commit():
        time.sleep(seconds)
        other.commit()

    thread = threading.Thread(target=commit)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_pos_update_during_the_import_survives_in_the_columns_the_file_leaves_blank(org):
    run(csv_bytes([row("M1", "13800000001", name="王芳", points="10")]))
    with _other_connection() as pos:
        pos.execute("UPDATE customers_member SET points = 99, updated_at = now() WHERE member_no = 'M1'")
        committer = _commit_later(pos)  # the import reads points=10, then waits for this row
        job = run(csv_bytes([row("M1", "", name="王芳芳")]))  # points blank: keep what is stored
        committer.join()
    member = Member.objects.get()
    assert (job.rows_updated, member.name, member.points) == (1, "王芳芳", 99)


@pytest.mark.django_db(transaction=True)
def test_a_member_the_api_creates_during_the_import_is_updated_not_a_failed_import(org):
    with _other_connection() as pos:
        pos.execute("INSERT INTO customers_member (member_no, mobile_hash, mobile_masked, unionid, name, level, points,"
                    " lifetime_spend, order_count, updated_at) VALUES ('M1', '', '', '', '', '', 7, 0, 0, now())")
        committer = _commit_later(pos)  # the import sees no M1, inserts it, waits, then collides
        job = run(csv_bytes([row("M1", name="王芳"), row("M2", name="李雷")]))
        committer.join()
    assert (job.status, job.rows_created, job.rows_updated) == (MemberImport.Status.DONE, 1, 1)
    assert dict(Member.objects.values_list("member_no", "points")) == {"M1": 7, "M2": 0}
    assert Member.objects.get(member_no="M1").name == "王芳"


def test_an_import_that_deadlocks_with_another_import_runs_again_and_one_that_fails_otherwise_does_not(
        org, monkeypatch):
    real, calls = members_import._import, []

    def deadlocks_once(job, progress, timings):
        calls.append(job.pk)
        if len(calls) == 1:  # two imports creating the same new members, in opposite orders
            error = OperationalError("deadlock detected")
            error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
            raise error
        return real(job, progress, timings)

    monkeypatch.setattr(members_import, "_import", deadlocks_once)
    job = run(csv_bytes([row("M1", name="王芳")]))
    assert (job.status, job.rows_created, len(calls)) == (MemberImport.Status.DONE, 1, 2)

    def breaks(job, progress, timings):
        calls.append(job.pk)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(members_import, "_import", breaks)
    calls.clear()
    with pytest.raises(OperationalError):
        run(csv_bytes([row("M2")]))
    failed = MemberImport.objects.latest("pk")
    assert (failed.status, len(calls)) == (MemberImport.Status.FAILED, 1)
    assert "导入失败，未写入任何数据" in failed.errors[0]["message"]
