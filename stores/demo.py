"""Building an organisation in bulk: the demo (``seed_demo``) and the scale benchmarks.

Set-based: a handful of INSERTs whatever the size, each ``ON CONFLICT DO NOTHING`` on a natural
key, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction

from stores.access.roles import ROLE_GROUP_NAMES
from stores.models import Access, Franchisee, Region, Role, Staff, Store

AREAS = [
    ("EAST", "华东大区", [("SH", "上海"), ("HZ", "杭州"), ("NJ", "南京")]),
    ("SOUTH", "华南大区", [("GZ", "广州"), ("SZ", "深圳")]),
    ("NORTH", "华北大区", [("BJ", "北京"), ("TJ", "天津")]),
    ("WEST", "西南大区", [("CD", "成都"), ("CQ", "重庆")]),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
DEMO_PASSWORD = "xiaoer-demo-2026"


@dataclass(frozen=True)
class OrgSize:
    areas: int = 3
    franchisees: int = 2
    stores: int = 30
    staff: int = 150
    store_manager_users: bool = False  # one login per store manager (benchmarks)


@dataclass(frozen=True)
class OrgBuilt:
    regions: int
    franchisees: int
    stores: int
    staff: int
    users: int


def _person_name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)] + GIVEN[(i * 7) % len(GIVEN)]


def _regions_build(areas: int) -> list[Region]:
    areas_chosen = AREAS[: max(1, min(areas, len(AREAS)))]
    Region.objects.bulk_create(
        [Region(code=code, name=name, level=Region.Level.AREA) for code, name, _cities in areas_chosen],
        ignore_conflicts=True,
    )
    area_ids = dict(Region.objects.filter(code__in=[a[0] for a in areas_chosen]).values_list("code", "pk"))
    Region.objects.bulk_create(
        [Region(code=f"{code}-{city_code}", name=city, level=Region.Level.CITY, parent_id=area_ids[code])
         for code, _name, cities in areas_chosen for city_code, city in cities],
        ignore_conflicts=True,
    )
    return list(Region.objects.filter(level=Region.Level.CITY, parent__code__in=area_ids).order_by("code"))


def _franchisees_build(count: int) -> list[Franchisee]:
    start = date(2024, 1, 1)
    Franchisee.objects.bulk_create(
        [Franchisee(code=f"FR{i:03d}", name=f"{_person_name(i)}餐饮管理有限公司", contact_name=_person_name(i + 50),
                    contact_phone=f"1380000{i:04d}", contract_start=start, contract_end=start + timedelta(days=3 * 365))
         for i in range(1, count + 1)],
        ignore_conflicts=True,
    )
    return list(Franchisee.objects.filter(code__startswith="FR").order_by("code")[:count])


def _stores_build(count: int, cities: list[Region], franchisees: list[Franchisee]) -> list[Store]:
    rows = []
    for i in range(1, count + 1):
        city = cities[i % len(cities)]
        franchised = bool(franchisees) and i % 3 == 0
        rows.append(Store(
            code=f"S{i:04d}", name=f"{city.name}{_person_name(i)[1:]}店", city=city.name,
            address=f"{city.name}市中心路{i}号", kind=Store.Kind.FRANCHISE if franchised else Store.Kind.DIRECT,
            franchisee=franchisees[i % len(franchisees)] if franchised else None, region=city,
            wecom_department_id=1000 + i, opened_on=date(2020, 1, 1) + timedelta(days=i % 1500),
        ))
    Store.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
    return list(Store.objects.filter(code__in=[r.code for r in rows]).order_by("code"))


def _staff_build(count: int, stores: list[Store]) -> int:
    base, extra = divmod(count, max(1, len(stores)))
    rows: list[Staff] = []
    for n, store in enumerate(stores):
        for k in range(max(1, base + (1 if n < extra else 0))):
            serial = len(rows)
            rows.append(Staff(
                userid=f"{store.code.lower()}{'m' if k == 0 else f'g{k:02d}'}",
                name=_person_name(serial), store=store,
                position=Staff.Position.STORE_MANAGER if k == 0 else Staff.Position.GUIDE,
                mobile=f"139{serial:08d}", joined_on=date(2023, 1, 1),
            ))
    Staff.objects.bulk_create(rows, ignore_conflicts=True, batch_size=5000)
    return len(rows)


def _users_grant(specs: list[tuple[str, str, str, dict]]) -> int:
    """specs: (username, display name, role, scope kwargs with ids). One INSERT per table."""
    user_model = get_user_model()
    password = make_password(DEMO_PASSWORD)  # hashed once: the same demo password for every login
    user_model.objects.bulk_create(
        [user_model(username=u, display_name=d, password=password, is_staff=role != Role.STORE_STAFF)
         for u, d, role, _kw in specs],
        ignore_conflicts=True, batch_size=2000,
    )
    ids = dict(user_model.objects.filter(username__in=[s[0] for s in specs]).values_list("username", "pk"))
    Access.objects.bulk_create(
        [Access(user_id=ids[u], role=role, franchisee_id=kw.get("franchisee_id"), store_id=kw.get("store_id"),
                staff_id=kw.get("staff_id")) for u, _d, role, kw in specs],
        ignore_conflicts=True, batch_size=2000,
    )
    access_ids = dict(Access.objects.filter(user_id__in=ids.values()).values_list("user_id", "pk"))
    Access.regions.through.objects.bulk_create(
        [Access.regions.through(access_id=access_ids[ids[u]], region_id=r)
         for u, _d, _role, kw in specs for r in kw.get("region_ids", [])],
        ignore_conflicts=True,
    )
    groups = dict(Group.objects.values_list("name", "pk"))
    user_model.groups.through.objects.bulk_create(
        [user_model.groups.through(user_id=ids[u], group_id=groups[ROLE_GROUP_NAMES[Role(role)]])
         for u, _d, role, _kw in specs if ROLE_GROUP_NAMES[Role(role)] in groups],
        ignore_conflicts=True, batch_size=5000,
    )
    return len(specs)


def _persona_specs(stores: list[Store], franchisees: list[Franchisee]) -> list[tuple[str, str, str, dict]]:
    east = Region.objects.filter(code="EAST").values_list("pk", flat=True).first()
    first = stores[0]
    manager = Staff.objects.filter(store=first, position=Staff.Position.STORE_MANAGER).first()
    guide = Staff.objects.filter(store=first, position=Staff.Position.GUIDE).first()
    specs: list[tuple[str, str, str, dict]] = [
        ("hq_operator", "总部运营·小周", Role.HQ_OPERATOR, {}),
        ("hq_finance", "总部财务·小钱", Role.HQ_FINANCE, {}),
        ("region_east", "华东区域经理·老陈", Role.REGION_MANAGER, {"region_ids": [east] if east else []}),
        (f"manager_{first.code.lower()}", f"{first.name}店长", Role.STORE_MANAGER,
         {"store_id": first.pk, "staff_id": manager.pk if manager else None}),
    ]
    if franchisees:
        specs.append(("franchisee_" + franchisees[0].code.lower(), franchisees[0].name, Role.FRANCHISEE_OWNER,
                      {"franchisee_id": franchisees[0].pk}))
    if guide:
        specs.append((f"staff_{first.code.lower()}", guide.name, Role.STORE_STAFF,
                      {"store_id": first.pk, "staff_id": guide.pk}))
    return specs


def _store_manager_specs(stores: list[Store]) -> list[tuple[str, str, str, dict]]:
    managers = dict(Staff.objects.filter(store__in=stores, position=Staff.Position.STORE_MANAGER)
                    .values_list("store_id", "pk"))
    return [(f"manager_{s.code.lower()}", f"{s.name}店长", Role.STORE_MANAGER,
             {"store_id": s.pk, "staff_id": managers.get(s.pk)}) for s in stores]


@transaction.atomic
def org_build(*, size: OrgSize) -> OrgBuilt:
    from stores.access.services import role_groups_sync

    role_groups_sync()
    cities = _regions_build(size.areas)
    franchisees = _franchisees_build(size.franchisees)
    stores = _stores_build(size.stores, cities, franchisees)
    staff = _staff_build(size.staff, stores)
    specs = _persona_specs(stores, franchisees)
    if size.store_manager_users:
        specs = [s for s in specs if s[2] != Role.STORE_MANAGER] + _store_manager_specs(stores)
    users = _users_grant(specs)
    return OrgBuilt(regions=Region.objects.count(), franchisees=len(franchisees), stores=len(stores), staff=staff,
                    users=users)


def sandbox_mirror_org(*, sandbox_url: str) -> dict:
    """Give the WeCom sandbox the same address book as the portal: a department per store, a member per staff.

    Idempotent (the sandbox upserts), quiet (no callbacks), so sandbox and portal agree from the start.
    """
    from wecom_sandbox.control import SandboxControl

    stores = Store.objects.exclude(wecom_department_id__isnull=True).values_list("wecom_department_id", "name")
    departments = [{"id": department, "name": name, "parentid": 1} for department, name in stores]
    positions: dict[str, str] = {Staff.Position.STORE_MANAGER: "店长", Staff.Position.SERVICE: "客服",
                                 Staff.Position.HQ: "总部"}
    members = [{"userid": userid, "name": name, "mobile": mobile, "department": [department or 1],
                "position": positions.get(position, "导购")}
               for userid, name, mobile, department, position in Staff.objects.active().values_list(
                   "userid", "name", "mobile", "store__wecom_department_id", "position")]
    return SandboxControl(sandbox_url).do("addressbook/load", departments=departments, members=members)
