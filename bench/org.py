"""Organisation at chain scale: 4,000 stores / 13,000 staff / a login per store manager.

    python -m bench org --scale 4000          # build: set-based vs per-row save()
    python -m bench scoped_lists --scale 4000 # store-manager staff changelist + API list p95
"""

from __future__ import annotations

from bench.harness import p95, result_line, tables_truncate, timed

ORG_TABLES = ("stores_access_regions", "stores_access", "stores_apitoken", "stores_staff", "stores_store",
              "stores_franchisee", "stores_region", "portal_user_groups", "portal_user", "portal_auditevent")


def _size(scale: int):
    from stores.demo import OrgSize

    return OrgSize(areas=4, franchisees=max(2, scale // 20), stores=scale, staff=scale * 13 // 4,
                   store_manager_users=True)


def _build_per_row(size) -> None:
    """The naive way: one save() per row, the way a loop over a spreadsheet would do it."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from portal.models import User
    from stores.access.roles import ROLE_GROUP_NAMES
    from stores.demo import AREAS
    from stores.models import Access, Franchisee, Region, Role, Staff, Store

    password = make_password("bench")
    cities = []
    for code, name, area_cities in AREAS[: size.areas]:
        area = Region.objects.create(code=code, name=name)
        cities += [Region.objects.create(code=f"{code}-{c}", name=n, level="city", parent=area) for c, n in area_cities]
    franchisees = [Franchisee.objects.create(code=f"FR{i:03d}", name=f"加盟{i}") for i in range(size.franchisees)]
    group = Group.objects.get(name=ROLE_GROUP_NAMES[Role.STORE_MANAGER])
    base, extra = divmod(size.staff, size.stores)  # the same spread as org_build
    for i in range(size.stores):
        per_store = max(1, base + (1 if i < extra else 0))
        franchised = i % 3 == 0
        store = Store.objects.create(code=f"S{i:04d}", name=f"门店{i}", region=cities[i % len(cities)],
                                     kind="franchise" if franchised else "direct",
                                     franchisee=franchisees[i % len(franchisees)] if franchised else None)
        manager = None
        for k in range(per_store):
            member = Staff.objects.create(userid=f"s{i:04d}-{k}", name=f"员工{k}", store=store,
                                          position="store_manager" if k == 0 else "guide")
            manager = manager or member
        user = User.objects.create(username=f"manager_s{i:04d}", password=password, is_staff=True)
        user.groups.add(group)
        Access.objects.create(user=user, role=Role.STORE_MANAGER, store=store, staff=manager)


def bench_org(*, scale: int) -> str:
    from stores.access.services import role_groups_sync
    from stores.demo import org_build
    from stores.models import Staff, Store

    size = _size(scale)
    role_groups_sync()
    tables_truncate(*ORG_TABLES)
    with timed() as set_based:
        built = org_build(size=size)
    tables_truncate(*ORG_TABLES)
    with timed() as per_row:
        _build_per_row(size)
    assert Store.objects.count() == built.stores and Staff.objects.count() == built.staff
    tables_truncate(*ORG_TABLES)
    org_build(size=size)  # leave the set-based organisation for scoped_lists
    print(f"stores={built.stores} staff={built.staff} users={built.users} "
          f"set_based={set_based.seconds:.2f}s per_row={per_row.seconds:.2f}s")
    return result_line(bench="org", value=set_based.seconds, unit="s", baseline=per_row.seconds)


def _p95_ms(client, url: str, repeat: int) -> float:
    samples = []
    client.get(url)  # warm-up
    for _ in range(repeat):
        with timed() as t:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        samples.append(t.seconds * 1000)
    return p95(samples)


def bench_scoped_lists(*, scale: int, repeat: int = 30) -> str:
    from django.db import connection
    from django.test import Client

    from portal.models import User
    from stores.models import Store
    from stores.org.admin import StaffAdmin

    if Store.objects.count() < scale:
        tables_truncate(*ORG_TABLES)
        from stores.demo import org_build

        org_build(size=_size(scale))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    manager = User.objects.get(username="manager_s0001")
    hq = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench_admin", "", "x")
    client = Client()
    results = {}
    for who, user in (("store_manager", manager), ("hq", hq)):
        client.force_login(user)
        results[f"{who}_changelist"] = _p95_ms(client, "/admin/stores/staff/", repeat)
        results[f"{who}_api"] = _p95_ms(client, "/api/v1/staff/", repeat)
    # Baseline: the stock admin settings (a COUNT(*) for the page and another for the full count).
    from django.core.paginator import Paginator

    StaffAdmin.paginator, StaffAdmin.show_full_result_count = Paginator, True
    client.force_login(hq)
    baseline = _p95_ms(client, "/admin/stores/staff/", repeat)
    print(" ".join(f"{k}_p95={v:.1f}ms" for k, v in results.items()) + f" stock_admin_hq_p95={baseline:.1f}ms")
    # Like for like: the HQ changelist (the widest list) with our settings vs the stock admin's.
    return result_line(bench="scoped_lists", value=results["hq_changelist"], unit="ms", baseline=baseline)
