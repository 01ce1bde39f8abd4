"""Every surface a user reaches, and how to attack it from another scope: the registry behind the matrix.

tests/test_scoping_matrix.py enumerates the surfaces that exist — every URL of the admin site beyond
Django's standard model views, every admin action, every custom list filter, every URL of the mobile
page and of the API — and fails when one is missing here. Each entry is a *probe*: how the surface is
called with another scope's ids or codes, and what "nothing leaks" means for it. A probe is a function of
a :class:`Ctx` (one persona, signed in, in the shared :class:`World`) that raises AssertionError on a leak.

"Nothing leaks" is, depending on the surface: the answer is a refusal (401/403/404/405/429 or the
sign-in page); the answer is indistinguishable from the one for an id that does not exist; no text of
another scope (its stores' codes and names, its regions, franchisees and people) appears in the page,
the JSON or the spreadsheet; the row another scope owns is unchanged; the figures are the same after
another scope gains rows of every kind.
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Max
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Task
from customers.models import (
    AcquisitionDaily,
    Channel,
    ContactWay,
    Customer,
    Member,
    Relationship,
    Segment,
    SegmentSnapshot,
    Tag,
    WelcomeDelivery,
    WelcomeMessage,
)
from materials.models import Material, MaterialUseDaily, RenderedPoster
from portal.wecom.models import SyncRun, WeComCall
from stores.access.services import access_grant, api_token_issue
from stores.models import Access, Franchisee, Region, Role, Staff, Store
from tests.conftest import NON_HQ_PERSONAS, PASSWORD
from tests.factories import ChannelFactory, StaffFactory, StoreFactory, TagFactory, UserFactory
from tests.scoping_registry import SCOPED

# -- the personas and what each may see ------------------------------------------------------------------
# The stores each persona's scope covers, written down (not computed by the mechanism under test).
SEES: dict[str, frozenset[str]] = {
    "region_manager_east": frozenset({"A001", "A002"}),
    "franchisee_owner": frozenset({"A001", "A002"}),
    "store_manager_of_a": frozenset({"A001"}),
    "staff_of_a": frozenset({"A001"}),
    "departed_staff_of_a": frozenset(),  # tests/conftest.py: a member of store A who left
    "revoked_access_of_a": frozenset(),  # built below: a store manager of A whose Access HQ removed
}
LOCKED_OUT = ("departed_staff_of_a", "revoked_access_of_a")
MATRIX_PERSONAS = [*NON_HQ_PERSONAS, *LOCKED_OUT]
assert set(MATRIX_PERSONAS) == set(SEES), "every persona of the matrix says which stores it sees"
ROW_STORES = ("A001", "A002", "B001")  # every scoped model gets a row in each of these stores
REFUSED = (401, 403, 404, 405, 429)


# -- the world: one organisation, every persona, a row of every scoped model in three stores ---------------
def conftest_fixture(name: str, known: dict):
    """Build ``name`` with tests/conftest.py's own fixture function (one definition of each persona),
    its arguments taken from what is already built."""
    import tests.conftest as conftest

    function = inspect.unwrap(getattr(conftest, name))
    missing = [p for p in inspect.signature(function).parameters if p not in known]
    if missing:
        raise LookupError(f"tests/conftest.py's {name} needs {missing}, which the matrix world does not build")
    value = function(**{p: known[p] for p in inspect.signature(function).parameters})
    return next(value) if inspect.isgenerator(value) else value


@dataclass
class World:
    org: object
    users: dict[str, object]
    rows: dict[type, dict[str, object]]  # model → store code → a row of that store
    keys: dict[str, list[str]] = field(default_factory=dict)  # persona → API keys it held (still or once)
    sessions: dict[str, str] = field(default_factory=dict)  # persona → its session (from before losing access)
    texts: dict[str, list[str]] = field(default_factory=dict)  # persona → the texts it must never see
    channel: Channel | None = None
    tag: Tag | None = None
    segment: Segment | None = None

    @property
    def stores(self) -> dict[str, Store]:
        org = self.org
        return {s.code: s for s in (org.store_a, org.store_a2, org.store_b, org.store_c)}

    def row(self, model, code: str):
        return self.rows[model][code]

    def grow_elsewhere(self) -> None:
        """Another scope (store B001 and a new store of region SOUTH, outside every non-HQ persona) gains rows
        of every kind that is counted: customers and adds by a channel, welcome messages sent, daily figures,
        members, staff who joined and left, stores opened and closed. A persona's figures must not move."""
        org, now, today = self.org, timezone.now(), timezone.localdate()
        opened = StoreFactory(code="S-GROW", name="新开南区店", region=org.south_gz)
        StoreFactory(code="S-SHUT", name="已关南区店", region=org.south_gz, status=Store.Status.CLOSED)
        for store in (org.store_b, opened):
            staff = StaffFactory(store=store, name=f"{store.code}的新员工")
            StaffFactory(store=store, name=f"{store.code}的离职员工", status=Staff.Status.DEPARTED, departed_at=now)
            customers = Customer.objects.bulk_create(
                Customer(external_userid=f"wmGROW{store.pk}x{n}", name=f"{store.code}的新客{n}", staff=staff,
                         store=store, region=store.region, franchisee=store.franchisee, first_added_at=now,
                         channel=self.channel) for n in range(3))
            relationships = Relationship.objects.bulk_create(
                Relationship(customer=c, staff=staff, store=store, added_at=now, channel=self.channel)
                for c in customers)
            WelcomeDelivery.objects.bulk_create(
                WelcomeDelivery(relationship=r, status=status, reason="", event_at=now, sent_at=now)
                for r, status in zip(relationships, (WelcomeDelivery.Status.SENT, WelcomeDelivery.Status.FAILED,
                                                     WelcomeDelivery.Status.SENT), strict=True))
            AcquisitionDaily.objects.bulk_create(
                AcquisitionDaily(day=today - timedelta(days=days), staff=staff, store=store, region=store.region,
                                 franchisee=store.franchisee, channel=self.channel, adds=700, deleted_by_customer=11)
                for days in (1, 2))
            Member.objects.create(member_no=f"MGROW{store.pk}", home_store=store, name=f"{store.code}的新会员",
                                  level="金卡", mobile_masked="138****0000")
            materials = self.rows.get(Material, {})
            if "B001" in materials:  # material use there (B001's own material): views and sends
                MaterialUseDaily.objects.bulk_create(
                    MaterialUseDaily(day=today - timedelta(days=days), material=materials["B001"], store=store,
                                     action=action, count=900) for days in (0, 1) for action in ("view", "send"))
        tasks = self.rows.get(_model("campaigns", "Task"), {})
        if "B001" in tasks:  # B001 finishes its task's work, and a new task reaches only the new southern store
            from tests.campaigns.tasks.helpers import task_in

            _model("campaigns", "Assignment").objects.filter(task=tasks["B001"]).update(
                status="done", done_at=now, confirmed_at=now)
            task_in(opened)


def _brand(obj, code: str) -> None:
    """A row's name says which store it belongs to, so any leak of it shows that store's code."""
    model = type(obj)
    if model in (Store, Region, Franchisee) or "name" not in {f.name for f in model._meta.concrete_fields}:
        return
    obj.name = f"{code}的{model._meta.verbose_name}{obj.pk}"
    model._base_manager.filter(pk=obj.pk).update(name=obj.name)


FACTORY_NAME = re.compile(r"^(员工|客户)\d+$")


def _brand_people() -> None:
    """Staff and customers made along the way (factory names 员工12, 客户7) get names saying their store."""
    for model in (Staff, Customer):
        for obj in model._base_manager.select_related("store").filter(name__regex=FACTORY_NAME.pattern):
            code = obj.store.code if obj.store_id else "无门店"
            model._base_manager.filter(pk=obj.pk).update(name=f"{code}的{model._meta.verbose_name}{obj.pk}")


def world_build() -> World:
    org = conftest_fixture("org", {"db": None})
    known: dict = {"db": None, "org": org}
    for name in ("hq_admin", "hq_operator", *NON_HQ_PERSONAS):
        known[name] = conftest_fixture(name, known)
    held: dict[str, list] = {"keys": [], "sessions": []}
    with _held_before_departure(held):
        known["departed_staff_of_a"] = conftest_fixture("departed_staff_of_a", known)
    users = {name: known[name] for name in ("hq_admin", "hq_operator", *NON_HQ_PERSONAS, "departed_staff_of_a")}
    world = World(org=org, users=users, rows={})
    world.keys["departed_staff_of_a"], world.sessions["departed_staff_of_a"] = held["keys"], held["sessions"][0]
    users["revoked_access_of_a"], world.keys["revoked_access_of_a"], world.sessions["revoked_access_of_a"] = \
        _revoked_access_of_a(org, users["hq_admin"])
    for name in ("hq_operator", *NON_HQ_PERSONAS):  # signed in once: each test reuses the session
        world.sessions[name] = _session_of(users[name])
    for model, case in SCOPED.items():
        world.rows[model] = {}
        for code in ROW_STORES:
            obj = case.make(world.stores[code])
            _brand(obj, code)
            world.rows[model][code] = obj
    for way in world.rows[ContactWay].values():  # generated in WeCom: a QR code to download
        ContactWay.objects.filter(pk=way.pk).update(config_id=f"cfg{way.pk}", qr_code=f"https://wework.test/q/{way.pk}")
    _brand_people()
    world.channel = ChannelFactory(code="QD01", name="门店海报")
    world.tag = TagFactory(name="高意向")
    WelcomeMessage.objects.create(name="通用欢迎语", text="你好，{客户昵称}")
    b = world.stores["B001"]
    world.segment = Segment.objects.create(
        name="南区重点客户", created_by=users["hq_operator"],
        rule={"stores": [b.pk], "staff": [org.guide_b.pk], "regions": [org.south.pk],
              "franchisees": [org.franchisee_two.pk]})
    return world


def _session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.session.session_key


@contextmanager
def _held_before_departure(held: dict):
    """While tests/conftest.py's departed_staff_of_a is built: just before the departure service runs, the
    member's login signs in (a session) and is issued an API token — what they still hold once they left."""
    import stores.org.services as org_services

    depart = org_services.staff_depart

    def staff_depart(*, staff, **kwargs):
        for access in Access.objects.filter(staff__in=staff).select_related("user"):
            held["keys"].append(api_token_issue(name="离职前的令牌", user=access.user).key)
            held["sessions"].append(_session_of(access.user))
        return depart(staff=staff, **kwargs)

    org_services.staff_depart = staff_depart
    try:
        yield
    finally:
        org_services.staff_depart = depart
    assert held["sessions"], "departed_staff_of_a no longer departs through stores.org.services.staff_depart"


def _revoked_access_of_a(org, hq_admin):
    """A store manager of A, signed in, with two API tokens; HQ revokes one token, then removes the Access,
    in the admin. Returns the login, the keys it held and its session from before."""
    user = UserFactory(username="revoked_a")
    staff = StaffFactory(userid="a-revoked", name="赵前店长", store=org.store_a, position=Staff.Position.STORE_MANAGER)
    access = access_grant(user=user, role=Role.STORE_MANAGER, store=org.store_a, staff=staff)
    kept = api_token_issue(name="门店A收银", user=user)
    revoked = api_token_issue(name="门店A小程序", user=user)
    session = _session_of(user)
    hq = Client()
    hq.force_login(hq_admin)
    hq.post(reverse("admin:stores_apitoken_changelist"),
            {"action": "revoke_selected", "_selected_action": [revoked.token.pk], "index": "0"})
    response = hq.post(reverse("admin:stores_access_delete", args=[access.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Access.objects.filter(pk=access.pk).exists(), \
        "HQ could not remove an Access in the admin"
    return get_user_model().objects.get(pk=user.pk), [kept.key, revoked.key], session


# -- what a persona must never see ---------------------------------------------------------------------------
def _ancestors(region) -> set[int]:
    seen = set()
    while region is not None and region.pk not in seen:
        seen.add(region.pk)
        region = region.parent
    return seen


@dataclass
class Ctx:
    """One persona, signed in with ``client``, probing the world."""

    persona: str
    client: Client
    world: World
    _missing: dict = field(default_factory=dict, repr=False)

    @property
    def user(self):
        return self.world.users[self.persona]

    @property
    def sees(self) -> frozenset[str]:
        return SEES[self.persona]

    # rows ------------------------------------------------------------------------------------------------
    def _hidden(self, model) -> list:
        rows = self.world.rows.get(model, {})
        visible = {obj.pk for code, obj in rows.items() if code in self.sees}
        unique = {}
        for code, obj in rows.items():
            if code not in self.sees and obj.pk not in visible:
                unique[obj.pk] = obj
        return list(unique.values())

    def hidden_rows(self, model) -> list:
        """Rows of ``model`` to aim at: made in stores this persona does not see (and not also made in one it
        sees). A login that lost its access sees no store: its former store's row is the one to try."""
        rows = self._hidden(model)
        if self.persona in LOCKED_OUT:
            home = self.world.rows.get(model, {}).get("A001")
            return [home] if home is not None else rows[:1]
        return rows

    def hidden_pks(self, model) -> set[int]:
        """Every row of ``model`` this persona must not see."""
        return {obj.pk for obj in self._hidden(model)}

    def home(self, model):
        """The persona's own row of ``model``: the one made in store A001, its home store."""
        return self.world.rows[model]["A001"]

    # texts -----------------------------------------------------------------------------------------------
    @property
    def hidden_texts(self) -> list[str]:
        """Texts naming what this persona must not see: other stores' codes and names, their people, and the
        regions and franchisees only those stores have (worked out once per persona)."""
        if self.persona not in self.world.texts:
            self.world.texts[self.persona] = self._hidden_texts()
        return self.world.texts[self.persona]

    def _hidden_texts(self) -> list[str]:
        stores = list(self.world.stores.values())
        seen = [s for s in stores if s.code in self.sees]
        unseen = [s for s in stores if s.code not in self.sees]
        open_regions = set().union(*(_ancestors(s.region) for s in seen)) if seen else set()
        texts = set()
        for store in unseen:
            texts |= {store.code, store.name}
            texts |= set(Staff.objects.filter(store=store).values_list("name", flat=True))
            texts |= {Region.objects.get(pk=pk).name for pk in _ancestors(store.region) - open_regions}
            if store.franchisee_id and store.franchisee_id not in {s.franchisee_id for s in seen}:
                texts |= {store.franchisee.code, store.franchisee.name}
        return sorted(t for t in texts if t)

    def leaks(self, response) -> list[str]:
        text = response_text(response)
        return [t for t in self.hidden_texts if t in text]

    def assert_clean(self, response, what: str) -> None:
        assert response.status_code != 500, f"{what}: 500"
        found = self.leaks(response)
        assert not found, f"{what} shows {self.persona} another scope's {found}"

    def refused(self, response) -> bool:
        if response.status_code in REFUSED:
            return True
        return response.status_code in (301, 302) and "/login/" in response.get("Location", "")

    def assert_refused_or_clean(self, response, what: str) -> None:
        if not self.refused(response):
            self.assert_clean(response, what)

    def assert_refused(self, response, what: str) -> None:
        assert self.refused(response), f"{what}: {self.persona} got {response.status_code}, not a refusal"

    def assert_like_missing(self, method: str, url_of: Callable[[object], str], obj, what: str,
                            data: dict | None = None, **extra) -> None:
        """Asking for ``obj`` (another scope's) answers exactly as asking for an id that does not exist."""
        missing = missing_pk(type(obj))
        call = getattr(self.client, method)
        theirs = call(url_of(obj.pk), data or {}, **extra)
        key = (method, url_of(missing), repr(sorted(extra.items())))
        if key not in self._missing:  # one answer for a missing id per URL: the same for every row compared
            self._missing[key] = call(url_of(missing), data or {}, **extra)
        nobodys = self._missing[key]
        assert theirs.status_code != 500, f"{what}: 500"
        assert self.refused(theirs), f"{what}: {self.persona} got {theirs.status_code} for another scope's id"
        assert theirs.status_code == nobodys.status_code, \
            f"{what}: {theirs.status_code} for another scope's id, {nobodys.status_code} for a missing one"
        assert _normal(response_text(theirs), obj.pk, missing) == _normal(response_text(nobodys), obj.pk, missing), \
            f"{what}: the answer for another scope's id differs from the one for a missing id"
        self.assert_clean(theirs, what)

    # API -------------------------------------------------------------------------------------------------
    def api_calls(self) -> list[dict]:
        """How this persona reaches the API: its session; and every API key it held, if it held any."""
        calls = [{}]
        calls += [{"HTTP_AUTHORIZATION": f"Bearer {key}"} for key in self.world.keys.get(self.persona, [])]
        return calls


def missing_pk(model) -> int:
    return (model._base_manager.aggregate(top=Max("pk"))["top"] or 0) + 100_000


# The admin's JSON says "csrfToken"; the mobile page's htmx headers "X-CSRFToken" (masked anew on each page).
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"|"(?:X-)?csrfToken": "[^"]*"', re.IGNORECASE)


def _normal(text: str, *ids) -> str:
    """The text with CSRF tokens removed and each of ``ids`` (standing alone) replaced by <id>."""
    text = CSRF.sub("", text)
    for pk in ids:
        text = re.sub(rf"(?<![0-9]){re.escape(str(pk))}(?![0-9])", "<id>", text)
    return text


def response_text(response) -> str:
    """All the text a response carries: HTML, JSON, CSV, or every cell of an .xlsx."""
    cached = getattr(response, "_matrix_text", None)
    if cached is not None:
        return cached
    content = b"".join(response.streaming_content) if response.streaming else response.content
    content_type = response.get("Content-Type", "")
    if content_type.startswith("image/"):
        text = ""
    elif "spreadsheetml" in content_type or content[:2] == b"PK":
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(content), read_only=True)
        text = "\n".join("\t".join("" if v is None else str(v) for v in row)
                         for sheet in book.worksheets for row in sheet.iter_rows(values_only=True))
    else:
        text = content.decode("utf-8-sig", errors="replace")
    response._matrix_text = text
    return text


def xlsx_rows(response) -> list[tuple]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(response.content), read_only=True)
    return [tuple(row) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)]


# -- "unchanged" -------------------------------------------------------------------------------------------
def row_state(obj) -> dict | None:
    model = type(obj)
    current = model._base_manager.filter(pk=obj.pk).first()
    if current is None:
        return None
    state = {f.attname: getattr(current, f.attname) for f in model._meta.concrete_fields}
    for m2m in model._meta.many_to_many:
        state[m2m.name] = sorted(getattr(current, m2m.name).values_list("pk", flat=True))
    return state


@contextmanager
def unchanged(objs, what: str):
    """The rows are exactly as they were (and still exist) after the block."""
    objs = list(objs)
    before = [row_state(o) for o in objs]
    yield
    for obj, was in zip(objs, before, strict=True):
        now = row_state(obj)
        assert now is not None, f"{what}: {type(obj).__name__} {obj.pk} of another scope was deleted"
        changed = {k: (was[k], now[k]) for k in was if was[k] != now[k]}
        assert not changed, f"{what}: {type(obj).__name__} {obj.pk} changed: {changed}"


@contextmanager
def nothing_new(*models, what: str):
    """No row of these models is created (or removed) by the block."""
    before = {m: m._base_manager.count() for m in models}
    yield
    after = {m: m._base_manager.count() for m in models}
    assert after == before, f"{what}: rows appeared or vanished: {before} → {after}"


# -- probes shared by many surfaces -----------------------------------------------------------------------
def probe_get_clean(name: str, **kwargs) -> Callable[[Ctx], None]:
    """A page holding no one's rows (sign-in, translations): nothing of another scope on it."""

    def probe(ctx: Ctx) -> None:
        ctx.assert_refused_or_clean(ctx.client.get(reverse(name, **kwargs)), name)

    return probe


@dataclass(frozen=True)
class Surface:
    probe: Callable[[Ctx], None]
    about: str  # how it is attacked and what "nothing leaks" means


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


# -- admin: the 工作台 and the site's own pages -------------------------------------------------------------
def panels_of(response) -> list:
    return [(p["key"], [(str(s["label"]), str(s["value"])) for s in p["stats"]], [str(n["text"]) for n in p["notes"]])
            for p in response.context["panels"]]


def probe_index(ctx: Ctx) -> None:
    url = reverse("admin:index")
    first = ctx.client.get(url)
    if ctx.refused(first):
        return
    ctx.assert_clean(first, "工作台")
    before = panels_of(first)
    ctx.world.grow_elsewhere()
    after = panels_of(ctx.client.get(url))
    assert after == before, f"工作台 figures moved when another scope gained rows: {before} → {after}"


def probe_app_list(ctx: Ctx) -> None:
    for app_label in sorted({m._meta.app_label for m in admin.site._registry}):
        ctx.assert_refused_or_clean(ctx.client.get(reverse("admin:app_list", args=[app_label])), f"app {app_label}")


def probe_view_on_site(ctx: Ctx) -> None:
    from django.contrib.contenttypes.models import ContentType

    for model in SCOPED:
        content_type = ContentType.objects.get_for_model(model)
        for obj in ctx.hidden_rows(model)[:1]:  # one mechanism (contenttypes' shortcut): a row of each model
            ctx.assert_like_missing("get", lambda pk, ct=content_type: reverse("admin:view_on_site", args=[ct.pk, pk]),
                                    obj, f"view on site of {model.__name__}")


def probe_logout(ctx: Ctx) -> None:
    ctx.assert_refused_or_clean(ctx.client.post(reverse("admin:logout")), "logout")


def probe_user_password(ctx: Ctx) -> None:
    """Setting another login's password (HQ's, or another store's) is refused and changes nothing."""
    others = [ctx.world.users["hq_admin"], *(a.user for a in ctx.hidden_rows(Access))]
    for other in others:
        url = reverse("admin:auth_user_password_change", args=[other.pk])
        ctx.assert_refused(ctx.client.get(url), "another login's password page")
        with unchanged([other], "another login's password"):
            response = ctx.client.post(url, {"password1": "Hijack-2026-x!", "password2": "Hijack-2026-x!",
                                             "usable_password": "true"})
        ctx.assert_refused(response, "setting another login's password")


# -- admin: codes, customers, dashboards -------------------------------------------------------------------
def probe_qr(ctx: Ctx) -> None:
    for way in ctx.hidden_rows(ContactWay):
        ctx.assert_like_missing("get", lambda pk: reverse("admin:customers_contactway_qr", args=[pk]), way,
                                "QR download")


def _material_url(name: str, version_id: int) -> Callable[[int], str]:
    """The URL of a material's custom admin view, for a material id (and, where it takes one, a version id)."""
    if name in ("thumbnail", "archive"):
        return lambda pk: reverse(f"admin:materials_material_{name}", args=[pk])
    return lambda pk: reverse(f"admin:materials_material_{name}", args=[pk, version_id])


def probe_material_get(name: str) -> Callable[[Ctx], None]:
    """Another scope's material (thumbnail, a version's file): answered as for a missing id."""

    def probe(ctx: Ctx) -> None:
        for material in ctx.hidden_rows(Material):
            ctx.assert_like_missing("get", _material_url(name, material.current_version_id or 0), material,
                                    f"material {name}")

    return probe


def probe_material_post(name: str) -> Callable[[Ctx], None]:
    """Restoring a version of, or archiving, another scope's material: as for a missing id, nothing changed."""

    def probe(ctx: Ctx) -> None:
        for material in ctx.hidden_rows(Material):
            with unchanged([material], f"material {name}"):
                ctx.assert_like_missing("post", _material_url(name, material.current_version_id or 0), material,
                                        f"material {name}")

    return probe


def probe_poster_image(ctx: Ctx) -> None:
    """Another scope's rendered poster in the admin: as for a missing id."""
    for poster in ctx.hidden_rows(RenderedPoster):
        ctx.assert_like_missing("get", lambda pk: reverse("admin:materials_renderedposter_image", args=[pk]), poster,
                                "rendered poster image")


def _hidden_regions(ctx: Ctx) -> list[Region]:
    return [*ctx.hidden_rows(Region), ctx.world.org.south]


def probe_create_for_region(ctx: Ctx) -> None:
    """Codes for every store of another scope's region: not offered, not accepted, nothing created."""
    url = reverse("admin:customers_contactway_create_for_region")
    page = ctx.client.get(url)
    ctx.assert_refused_or_clean(page, "codes for a region")
    if page.status_code == 200:
        offered = set(page.context["form"].fields["region"].queryset.values_list("pk", flat=True))
        assert not offered & {r.pk for r in _hidden_regions(ctx)}, "another scope's region is offered"
    for region in _hidden_regions(ctx):
        with nothing_new(ContactWay, SyncRun, what=f"codes for region {region.code}"):
            response = ctx.client.post(url, {"region": region.pk, "kind": ContactWay.Kind.STORE})
        ctx.assert_refused_or_clean(response, "codes for another scope's region")
        if response.status_code == 200:
            assert response.context["form"].errors, "another scope's region was accepted"


def _model(app_label: str, name: str):
    from django.apps import apps

    return apps.get_model(app_label, name)


def probe_export(model) -> Callable[[Ctx], None]:
    """The export holds nothing of another scope, also when the list is filtered by another scope's ids."""

    def probe(ctx: Ctx) -> None:
        url = _admin_url(model, "export")
        page = ctx.client.get(url)
        ctx.assert_refused_or_clean(page, f"{model.__name__} export page")
        if page.status_code != 200:
            with unchanged(ctx.hidden_rows(model), "export"):
                ctx.assert_refused(ctx.client.post(url, {"format": "0", "resource": "0"}), "export")
            return
        form = page.context["form"]
        data = {name: "on" for name, f in form.fields.items() if f.initial is True}
        queries = ["", *(f"?id__exact={obj.pk}" for obj in ctx.hidden_rows(model)[:1])]
        store_path = next((p for p in ("store", "home_store") if p in {f.name for f in model._meta.fields}), None)
        if store_path:
            queries += [f"?{store_path}__id__exact={s.pk}" for s in ctx.hidden_rows(Store)]
        for query in queries:
            response = ctx.client.post(url + query, {**data, "format": "0", "resource": "0"})
            ctx.assert_refused_or_clean(response, f"{model.__name__} export{query}")

    return probe


def probe_customer_sync(ctx: Ctx) -> None:
    for customer in ctx.hidden_rows(Customer):
        with unchanged([customer], "sync of another scope's customer"), nothing_new(WeComCall, what="customer sync"):
            ctx.assert_like_missing("post", lambda pk: reverse("admin:customers_customer_sync", args=[pk]), customer,
                                    "customer sync")


def _dashboard_queries(ctx: Ctx) -> list[dict]:
    queries = [{"store": s.pk} for s in ctx.hidden_rows(Store)]
    queries += [{"region": r.pk} for r in _hidden_regions(ctx)]
    queries += [{"franchisee": f.pk} for f in ctx.hidden_rows(Franchisee)]
    return queries


def _figures_of(response) -> tuple:
    context = response.context
    return tuple(repr(context.get(key)) for key in ("rows", "total_cells", "chart", "boards"))


def probe_dashboard(ctx: Ctx) -> None:
    """Another scope's ids are refused; the figures do not move when another scope gains rows."""
    url = reverse("admin:customers_acquisitiondaily_dashboard")
    for query in _dashboard_queries(ctx):
        response = ctx.client.get(url, query)
        ctx.assert_refused_or_clean(response, f"加粉看板 {query}")
        if response.status_code == 200:
            assert response.context.get("figures") is None, f"加粉看板 accepted another scope's {query}"
    first = ctx.client.get(url)
    if ctx.refused(first):
        return
    ctx.assert_clean(first, "加粉看板")
    before = _figures_of(first)
    ctx.world.grow_elsewhere()
    after = ctx.client.get(url)
    ctx.assert_clean(after, "加粉看板")
    assert _figures_of(after) == before, "加粉看板 figures moved when another scope gained rows"


def _cells(response) -> list[tuple]:
    return [row for row in xlsx_rows(response) if row and row[0] != "导出时间"]


def probe_dashboard_export(ctx: Ctx) -> None:
    url = reverse("admin:customers_acquisitiondaily_dashboard_export")
    for query in _dashboard_queries(ctx):
        response = ctx.client.get(url, query)
        ctx.assert_refused_or_clean(response, f"加粉看板导出 {query}")
        assert "spreadsheetml" not in response.get("Content-Type", ""), f"加粉看板导出 accepted another scope's {query}"
    first = ctx.client.get(url)
    if ctx.refused(first):
        return
    ctx.assert_clean(first, "加粉看板导出")
    before = _cells(first)
    ctx.world.grow_elsewhere()
    assert _cells(ctx.client.get(url)) == before, "加粉看板导出 figures moved when another scope gained rows"


def _usage_queries(ctx: Ctx) -> list[dict]:
    queries = [{"store": s.pk} for s in ctx.hidden_rows(Store)]
    return queries + [{"region": r.pk} for r in _hidden_regions(ctx)]


def _usage_figures_of(response) -> tuple:
    context = response.context
    return tuple(repr(context.get(key)) for key in ("day_rows", "region_rows", "store_rows", "top_rows",
                                                      "unused_rows"))


def probe_usage_analytics(ctx: Ctx) -> None:
    """素材使用分析: another scope's store or region refused; the figures unmoved when another scope uses more."""
    url = reverse("admin:materials_materialuse_analytics")
    for query in _usage_queries(ctx):
        response = ctx.client.get(url, query)
        ctx.assert_refused_or_clean(response, f"素材使用分析 {query}")
        if response.status_code == 200:
            assert response.context.get("figures") is None, f"素材使用分析 accepted another scope's {query}"
    first = ctx.client.get(url)
    if ctx.refused(first):
        return
    ctx.assert_clean(first, "素材使用分析")
    before = _usage_figures_of(first)
    ctx.world.grow_elsewhere()
    after = ctx.client.get(url)
    ctx.assert_clean(after, "素材使用分析")
    assert _usage_figures_of(after) == before, "素材使用分析 figures moved when another scope used materials"


def probe_usage_export(ctx: Ctx) -> None:
    url = reverse("admin:materials_materialuse_analytics_export")
    for query in _usage_queries(ctx):
        response = ctx.client.get(url, query)
        ctx.assert_refused_or_clean(response, f"素材使用分析导出 {query}")
        assert "spreadsheetml" not in response.get("Content-Type", ""), f"素材使用分析导出 accepted {query}"
    first = ctx.client.get(url)
    if ctx.refused(first):
        return
    ctx.assert_clean(first, "素材使用分析导出")
    before = _cells(first)
    ctx.world.grow_elsewhere()
    assert _cells(ctx.client.get(url)) == before, "素材使用分析导出 figures moved when another scope used materials"


def _rollup_queries(ctx: Ctx) -> list[dict]:
    home = {"task": ctx.home(_model("campaigns", "Task")).pk}
    queries = [{"task": t.pk} for t in ctx.hidden_rows(_model("campaigns", "Task"))]
    queries += [{"campaign": c.pk} for c in ctx.hidden_rows(_model("campaigns", "Campaign"))]
    queries += [{**home, "store": s.pk} for s in ctx.hidden_rows(Store)]
    queries += [{**home, "region": r.pk} for r in _hidden_regions(ctx)]
    return queries + [{**home, "franchisee": f.pk} for f in ctx.hidden_rows(Franchisee)]


def _rollup_figures_of(response) -> tuple:
    context = response.context
    return tuple(repr(context.get(key)) for key in ("total_cells", "tables", "store_board", "region_board",
                                                      "task_rows", "region_rows"))


def probe_rollup_page(name: str, home_query: bool) -> Callable[[Ctx], None]:
    """任务执行统计 / 任务看板: another scope's task, campaign, store, region or franchisee refused; the figures
    unmoved when another scope's work is done and new tasks reach it."""

    def probe(ctx: Ctx) -> None:
        url = reverse(f"admin:{name}")
        for query in _rollup_queries(ctx) if home_query else [{"region": r.pk} for r in _hidden_regions(ctx)] + \
                [{"campaign": c.pk} for c in ctx.hidden_rows(_model("campaigns", "Campaign"))]:
            response = ctx.client.get(url, query)
            ctx.assert_refused_or_clean(response, f"{name} {query}")
            if response.status_code == 200:
                assert response.context.get("figures") is None, f"{name} accepted another scope's {query}"
        query = {"task": ctx.home(_model("campaigns", "Task")).pk} if home_query else {}
        first = ctx.client.get(url, query)
        if ctx.refused(first):
            return
        ctx.assert_clean(first, name)
        before = _rollup_figures_of(first)
        ctx.world.grow_elsewhere()
        after = ctx.client.get(url, query)
        ctx.assert_clean(after, name)
        assert _rollup_figures_of(after) == before, f"{name} figures moved when another scope's work changed"

    return probe


def probe_rollup_export(name: str, home_query: bool) -> Callable[[Ctx], None]:
    def probe(ctx: Ctx) -> None:
        url = reverse(f"admin:{name}")
        for query in _rollup_queries(ctx) if home_query else [{"region": r.pk} for r in _hidden_regions(ctx)]:
            response = ctx.client.get(url, query)
            ctx.assert_refused_or_clean(response, f"{name} {query}")
            assert "spreadsheetml" not in response.get("Content-Type", ""), f"{name} accepted {query}"
        query = {"task": ctx.home(_model("campaigns", "Task")).pk} if home_query else {}
        first = ctx.client.get(url, query)
        if ctx.refused(first):
            return
        ctx.assert_clean(first, name)
        before = _cells(first)
        ctx.world.grow_elsewhere()
        assert _cells(ctx.client.get(url, query)) == before, f"{name} figures moved when another scope's work changed"

    return probe


# -- admin: imports -----------------------------------------------------------------------------------------
# A row that would write into another scope: (model, CSV text, how to find what it would have written).
IMPORT_ROWS = {
    Staff: ("企业微信账号,姓名,手机号,门店编码,岗位,入职日期\nmatrix-new,越界员工,,{code},导购,\n",
            lambda: Staff.objects.filter(userid="matrix-new")),
    Store: ("门店编码,门店名称,城市,地址,纬度,经度,类型,区域编码,加盟商编码,企业微信部门ID,状态,开业日期\n"
            "Z900,越界门店,,,,,直营,{region},,,营业中,\n", lambda: Store.objects.filter(code="Z900")),
    Member: ("会员号,手机号,unionid,姓名,等级,积分,累计消费,消费次数,最近消费日,归属门店编码\n"
             "MX900,,,越界会员,,,,,,{code}\n", lambda: Member.objects.filter(member_no="MX900")),
}


def _import_post(ctx: Ctx, model, url: str, code: str, region: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    text, _written = IMPORT_ROWS[model]
    upload = SimpleUploadedFile("matrix.csv", text.format(code=code, region=region).encode("utf-8"),
                                content_type="text/csv")
    return ctx.client.post(url, {"import_file": upload, "format": "0", "resource": "0"})


def probe_import(model) -> Callable[[Ctx], None]:
    """A file naming another scope's store (region) writes nothing, and its error reads as for a code
    that does not exist."""

    def probe(ctx: Ctx) -> None:
        url = _admin_url(model, "import")
        ctx.assert_refused_or_clean(ctx.client.get(url), f"{model.__name__} import page")
        _text, written = IMPORT_ROWS[model]
        for store in ctx.hidden_rows(Store):
            with nothing_new(model, what=f"{model.__name__} import"):
                theirs = _import_post(ctx, model, url, store.code, store.region.code)
                nobodys = _import_post(ctx, model, url, "Z999", "NOWHERE")
            assert not written().exists(), f"{model.__name__} import wrote a row into another scope"
            if ctx.refused(theirs):
                continue
            ctx.assert_clean(theirs, f"{model.__name__} import preview")
            assert _normal(response_text(theirs), store.code, "Z999").replace(store.region.code, "<r>") == \
                _normal(response_text(nobodys), store.code, "Z999").replace("NOWHERE", "<r>"), \
                f"{model.__name__} import: the error for another scope's code differs from a missing one's"

    return probe


def probe_process_import(model) -> Callable[[Ctx], None]:
    """Confirming an import by hand-made form data (a file name from elsewhere) writes nothing."""

    def probe(ctx: Ctx) -> None:
        url = _admin_url(model, "process_import")
        with nothing_new(model, what=f"{model.__name__} process_import"), unchanged(ctx.hidden_rows(model), "import"):
            response = ctx.client.post(url, {"import_file_name": "../matrix.csv", "original_file_name": "matrix.csv",
                                             "format": "0", "resource": "0"})
        ctx.assert_refused_or_clean(response, f"{model.__name__} process_import")

    return probe


# -- admin: HQ buttons --------------------------------------------------------------------------------------
def probe_materialize(ctx: Ctx) -> None:
    segment = ctx.world.segment
    with nothing_new(SegmentSnapshot, what="segment snapshot"):
        response = ctx.client.post(reverse("admin:customers_segment_materialize", args=[segment.pk]))
    ctx.assert_refused(response, "freezing a segment")


def probe_tag_pull(ctx: Ctx) -> None:
    with nothing_new(WeComCall, SyncRun, what="tag pull"):
        response = ctx.client.post(reverse("admin:customers_taggroup_pull"))
    ctx.assert_refused_or_clean(response, "tag pull")


def probe_sync_start(ctx: Ctx) -> None:
    with nothing_new(SyncRun, WeComCall, what="sync start"):
        response = ctx.client.post(reverse("admin:wecom_syncrun_start"), {"kind": "addressbook.full"})
    ctx.assert_refused(response, "starting a WeCom sync")


ADMIN_VIEWS: dict[str, Surface] = {
    "index": Surface(probe_index, "工作台: no other scope's names; every panel's figures the same after another "
                                  "scope gains rows of every kind"),
    "app_list": Surface(probe_app_list, "each app's index: no other scope's names"),
    "login": Surface(probe_get_clean("admin:login"), "the sign-in page holds no rows"),
    "logout": Surface(probe_logout, "signing out holds no rows"),
    "password_change": Surface(probe_get_clean("admin:password_change"), "one's own password: no rows"),
    "password_change_done": Surface(probe_get_clean("admin:password_change_done"), "no rows"),
    "jsi18n": Surface(probe_get_clean("admin:jsi18n"), "the translation catalogue: no rows"),
    "view_on_site": Surface(probe_view_on_site, "r/<type>/<another scope's id>/ answers as for a missing id"),
    "auth_user_password_change": Surface(probe_user_password, "another login's password: refused, unchanged"),
    "customers_contactway_qr": Surface(probe_qr, "another scope's code's QR: as for a missing id"),
    "customers_contactway_create_for_region": Surface(
        probe_create_for_region, "another scope's region: not offered, refused, no code or job created"),
    "customers_contactway_export": Surface(probe_export(ContactWay), "no other scope's codes, with foreign filters"),
    "customers_customer_sync": Surface(probe_customer_sync, "another scope's customer: as missing, no WeCom call"),
    "customers_customer_export": Surface(probe_export(Customer), "no other scope's customers, with foreign filters"),
    "customers_acquisitiondaily_dashboard": Surface(
        probe_dashboard, "another scope's store/region/franchisee refused; figures unmoved by another scope's adds"),
    "customers_acquisitiondaily_dashboard_export": Surface(
        probe_dashboard_export, "the same for the .xlsx: foreign ids refused, cells unmoved"),
    "customers_member_import": Surface(probe_import(Member), "a foreign store code writes nothing, errs as missing"),
    "customers_member_process_import": Surface(probe_process_import(Member), "a forged confirm writes nothing"),
    "customers_member_export": Surface(probe_export(Member), "no other scope's members, with foreign filters"),
    "customers_segment_materialize": Surface(probe_materialize, "non-HQ cannot freeze a segment"),
    "customers_taggroup_pull": Surface(probe_tag_pull, "non-HQ cannot pull tags from WeCom"),
    "stores_store_import": Surface(probe_import(Store), "a foreign region code writes nothing, errs as missing"),
    "stores_store_process_import": Surface(probe_process_import(Store), "a forged confirm writes nothing"),
    "stores_store_export": Surface(probe_export(Store), "no other scope's stores, with foreign filters"),
    "stores_staff_import": Surface(probe_import(Staff), "a foreign store code writes nothing, errs as missing"),
    "stores_staff_process_import": Surface(probe_process_import(Staff), "a forged confirm writes nothing"),
    "stores_staff_export": Surface(probe_export(Staff), "no other scope's staff, with foreign filters"),
    "wecom_syncrun_start": Surface(probe_sync_start, "non-HQ cannot start a WeCom sync"),
    "materials_material_export": Surface(probe_export(Material), "no other scope's materials, with foreign filters"),
    "campaigns_assignment_export": Surface(probe_export(_model("campaigns", "Assignment")),
                                           "no other scope's assignments, with foreign filters"),
    "materials_material_thumbnail": Surface(probe_material_get("thumbnail"), "another scope's preview: as missing"),
    "materials_material_version_file": Surface(probe_material_get("version_file"),
                                               "another scope's file: as for a missing id"),
    "materials_material_version_restore": Surface(probe_material_post("version_restore"),
                                                  "another scope's version: as missing, nothing restored"),
    "materials_material_archive": Surface(probe_material_post("archive"), "another scope's material: as missing, "
                                                                          "not archived"),
    "materials_renderedposter_image": Surface(probe_poster_image, "another scope's poster: as for a missing id"),
    "materials_materialuse_analytics": Surface(
        probe_usage_analytics, "another scope's store/region refused; figures unmoved by another scope's use"),
    "materials_materialuse_analytics_export": Surface(
        probe_usage_export, "the same for the .xlsx: foreign ids refused, cells unmoved"),
    "campaigns_task_rollup": Surface(
        probe_rollup_page("campaigns_task_rollup", True),
        "another scope's task/campaign/store/region/franchisee refused; figures unmoved by another scope's work"),
    "campaigns_task_rollup_export": Surface(
        probe_rollup_export("campaigns_task_rollup_export", True), "the same for the .xlsx: refused, cells unmoved"),
    "campaigns_task_dashboard": Surface(
        probe_rollup_page("campaigns_task_dashboard", False),
        "another scope's region/campaign refused; figures unmoved by another scope's work"),
    "campaigns_task_dashboard_export": Surface(
        probe_rollup_export("campaigns_task_dashboard_export", False), "the same for the .xlsx"),
}


# -- admin actions ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionCase:
    """How an action is confirmed (its second step's form data), or a probe of its own."""

    confirm: Callable[[Ctx], dict] = lambda ctx: {}
    probe: Callable[[Ctx, type, str], None] | None = None


def action_targets(ctx: Ctx, model) -> list:
    """Rows the persona must not act on: another scope's, or (for a model of no store) any row at all."""
    if model in SCOPED:
        return ctx.hidden_rows(model)
    return list(model._base_manager.order_by("pk")[:1])


def action_post(ctx: Ctx, model, action: str, selected: list, extra: dict):
    return ctx.client.post(_admin_url(model, "changelist"), {
        "action": action, "_selected_action": [obj.pk for obj in selected], "index": "0", **extra})


def probe_action(ctx: Ctx, model, action: str, case: ActionCase) -> None:
    if case.probe is not None:
        return case.probe(ctx, model, action)
    for target in action_targets(ctx, model):
        what = f"{model.__name__} action {action} on row {target.pk}"
        with unchanged([target], what), nothing_new(WeComCall, what=what):
            response = action_post(ctx, model, action, [target], case.confirm(ctx))
        ctx.assert_refused_or_clean(response, what)
    return None


def probe_move_staff(ctx: Ctx, model, action: str) -> None:
    """Pulling another scope's staff into one's store, or sending one's staff to another scope's store."""
    org = ctx.world.org
    for target in ctx.hidden_rows(Staff):
        with unchanged([target], "move another scope's staff in"):
            response = action_post(ctx, Staff, action, [target], {"apply": "1", "to_store": org.store_a.pk})
        ctx.assert_refused_or_clean(response, "moving another scope's staff")
    for store in ctx.hidden_rows(Store):
        with unchanged([org.guide_a], f"move own staff to {store.code}"):
            response = action_post(ctx, Staff, action, [org.guide_a], {"apply": "1", "to_store": store.pk})
        ctx.assert_refused_or_clean(response, "moving one's staff to another scope's store")


def probe_create_for_region_action(ctx: Ctx, model, action: str) -> None:
    with nothing_new(ContactWay, SyncRun, what="create_for_region action"):
        response = action_post(ctx, ContactWay, action, [], {})
    ctx.assert_refused_or_clean(response, "create_for_region action")


def probe_posters_generate(ctx: Ctx, model, action: str) -> None:
    """Posters for another scope's template, or for one's own template beyond one's scope: no job, no poster
    of another scope's staff."""
    targets = [*ctx.hidden_rows(Material), *(p.material for p in ctx.hidden_rows(RenderedPoster))]
    for material in targets:
        with nothing_new(SyncRun, RenderedPoster, what=f"posters for material {material.pk}"):
            response = action_post(ctx, Material, action, [material], {})
        ctx.assert_refused_or_clean(response, "posters for another scope's template")
    from materials.posters.services import POSTER_JOB_KIND, posters_job_staff

    own = ctx.world.rows[RenderedPoster]["A001"].material  # a template of store A001, which most personas see
    response = action_post(ctx, Material, action, [own], {})
    ctx.assert_refused_or_clean(response, "posters for one's own template")
    hidden_staff = {p.staff_id for p in ctx.hidden_rows(RenderedPoster)} | {ctx.world.org.guide_b.pk}
    for run in SyncRun.objects.filter(kind=POSTER_JOB_KIND, progress__by=ctx.user.pk):
        rendered = posters_job_staff(material=Material.objects.get(pk=run.progress["material_id"]), viewer=ctx.user,
                                     region_id=run.progress["region_id"])
        assert not rendered.filter(pk__in=hidden_staff).exists(), "a poster job would render another scope's staff"


def _tags(ctx: Ctx) -> dict:
    return {"apply": "1", "tags": [ctx.world.tag.pk]}


ACTIONS: dict[str, ActionCase] = {
    "delete_selected": ActionCase(confirm=lambda ctx: {"post": "yes"}),  # Django's, on every admin
    "stores.Store.close_selected": ActionCase(),
    "stores.Store.reopen_selected": ActionCase(),
    "stores.Staff.move_selected": ActionCase(probe=probe_move_staff),
    "stores.Staff.depart_selected": ActionCase(),
    "stores.ApiToken.revoke_selected": ActionCase(),
    "customers.ContactWay.create_for_region": ActionCase(probe=probe_create_for_region_action),
    "customers.ContactWay.deactivate_selected": ActionCase(),
    "customers.Customer.tag_selected": ActionCase(confirm=_tags),
    "customers.Customer.untag_selected": ActionCase(confirm=_tags),
    "customers.Customer.sync_selected": ActionCase(),
    "customers.Member.unify_selected": ActionCase(),
    "customers.Segment.materialize_selected": ActionCase(),
    "wecom.CallbackEvent.replay_selected": ActionCase(),
    "materials.Material.publish_selected": ActionCase(),
    "materials.Material.archive_selected": ActionCase(),
    "materials.Material.unarchive_selected": ActionCase(),
    "campaigns.Task.dispatch_selected": ActionCase(),
    "campaigns.Task.cancel_selected": ActionCase(),
    "materials.Material.posters_generate_selected": ActionCase(probe=probe_posters_generate),
    "stores.Notice.mark_read": ActionCase(),
}


# -- custom list filters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilterCase:
    model: type | None  # the model whose ids the filter's values are, if scoped
    reason: str = ""  # why a filter whose values are not scoped ids leaks nothing


def _list_filters() -> dict[type, FilterCase]:
    from customers.acquisition.admin import ContactWayStatusFilter
    from customers.contacts.admin import RegionFilter, StoreAutocompleteFilter, TagFilter
    from customers.members.admin import HomeStoreRegionFilter, LevelFilter
    from materials.library.admin import UsableFilter
    from stores.access.admin import ApiTokenStateFilter

    return {
        RegionFilter: FilterCase(Region),
        StoreAutocompleteFilter: FilterCase(Store),
        HomeStoreRegionFilter: FilterCase(Region),
        TagFilter: FilterCase(None, "corp tags are brand-wide (GLOBAL); the rows filtered are the scoped queryset"),
        LevelFilter: FilterCase(None, "member levels are brand-wide names, not rows; the rows filtered are scoped"),
        ContactWayStatusFilter: FilterCase(None, "three fixed choices"),
        ApiTokenStateFilter: FilterCase(None, "three fixed choices (active, expired, revoked)"),
        UsableFilter: FilterCase(None, "three fixed choices (usable, expired, expiring)"),
    }


LIST_FILTERS: dict[type, FilterCase] = _list_filters()


# -- the mobile page ---------------------------------------------------------------------------------------
def probe_mobile_task_open(ctx: Ctx) -> None:
    """A task card's link to another scope's task: as for a missing task (nothing of it opened)."""
    for task in ctx.hidden_rows(Task):
        ctx.assert_like_missing("get", lambda pk: reverse("mobile:task_open", args=[pk]), task, "mobile task link")


def probe_mobile_home(ctx: Ctx) -> None:
    ctx.assert_refused_or_clean(ctx.client.get(reverse("mobile:home")), "mobile home")


def probe_mobile_staff(ctx: Ctx) -> None:
    for staff in ctx.hidden_rows(Staff) + [ctx.world.org.guide_b]:
        ctx.assert_like_missing("get", lambda pk: reverse("mobile:staff", args=[pk]), staff, "mobile staff page")


def probe_mobile_poster(ctx: Ctx) -> None:
    """Another scope's poster template (and any other material of another scope): as for a missing id, and no
    poster rendered for it."""
    materials = [*(p.material for p in ctx.hidden_rows(RenderedPoster)), *ctx.hidden_rows(Material)]
    for material in materials:
        with nothing_new(RenderedPoster, what=f"mobile poster of material {material.pk}"):
            ctx.assert_like_missing("get", lambda pk: reverse("mobile:material_poster", args=[pk]), material,
                                    "mobile poster")


def probe_mobile_login(ctx: Ctx) -> None:
    """Signing in with the persona's own password: a departed or revoked login gets nowhere."""
    client = Client()
    response = client.post(reverse("mobile:login"), {"username": ctx.user.username, "password": PASSWORD})
    ctx.assert_refused_or_clean(response, "mobile sign-in")
    ctx.assert_refused_or_clean(client.get(reverse("mobile:home")), "mobile home after signing in")


# The WeCom member each persona is (if any): signing in through WeCom as them must not reach further.
WECOM_MEMBER = {"store_manager_of_a": "a-manager", "staff_of_a": "a-guide", "departed_staff_of_a": "a-departed",
                "revoked_access_of_a": "a-revoked"}


def probe_mobile_wecom_done(ctx: Ctx) -> None:
    """WeCom (its OAuth answer stubbed) names the persona's own member, or another store's member without a
    login: the page it lands on shows nothing beyond the persona's scope."""
    import campaigns.mobile.views as views

    for userid in filter(None, (WECOM_MEMBER.get(ctx.persona), ctx.world.org.guide_b.userid)):
        client = Client()
        client.get(reverse("mobile:wecom_login"))
        state = client.session[views.OAUTH_SESSION_KEY]["state"]
        original = views.oauth_userid
        views.oauth_userid = lambda code, userid=userid: userid
        try:
            response = client.get(reverse("mobile:wecom_done"), {"code": "matrix", "state": state})
        finally:
            views.oauth_userid = original
        ctx.assert_refused_or_clean(response, f"WeCom sign-in as {userid}")
        ctx.assert_refused_or_clean(client.get(reverse("mobile:home")), f"mobile home after WeCom sign-in as {userid}")


def probe_mobile_materials(ctx: Ctx) -> None:
    """The library's list, searched for and filtered by what another scope has: nothing of it."""
    url = reverse("mobile:materials")
    hidden = ctx.hidden_pks(Material)
    for params in [{}, {"kind": "script"}, {"page": "2"}, {"folder": "999999", "tag": "999999"},
                   {"q": "专属话术"}, {"q": "话术-"}]:
        response = ctx.client.get(url, params)
        ctx.assert_refused_or_clean(response, f"mobile library {params}")
        if response.status_code == 200:
            shown = {m.pk for m in response.context["materials"]}
            assert not shown & hidden, f"mobile library {params} lists another scope's materials {shown & hidden}"


def probe_mobile_material(name: str, method: str = "get", data: dict | None = None) -> Callable[[Ctx], None]:
    """Another scope's material (its page, file, thumbnail, the report of its use): as for a missing id."""

    def probe(ctx: Ctx) -> None:
        from materials.usage.services import QUEUE_KEY, _redis

        queued = _redis().llen(QUEUE_KEY)
        for material in ctx.hidden_rows(Material):
            ctx.assert_like_missing(method, lambda pk: reverse(f"mobile:{name}", args=[pk]), material,
                                    f"mobile {name}", data=data)
        assert _redis().llen(QUEUE_KEY) == queued, f"mobile {name}: another scope's material use was recorded"

    return probe


def probe_mobile_material_page(ctx: Ctx) -> None:
    """Another scope's material's page is not found; one's own, asked to fill a script for another scope's
    customer, is the page for a customer that does not exist (the name appears nowhere)."""
    probe_mobile_material("material")(ctx)
    url = reverse("mobile:material", args=[ctx.home(Material).pk])
    missing = missing_pk(Customer)
    nobodys = ctx.client.get(url, {"customer": missing})
    for customer in ctx.hidden_rows(Customer):
        theirs = ctx.client.get(url, {"customer": customer.pk})
        assert theirs.status_code == nobodys.status_code, "mobile material: another scope's customer answers apart"
        ctx.assert_refused_or_clean(theirs, "mobile material for another scope's customer")
        assert customer.name not in response_text(theirs), "mobile material names another scope's customer"
        assert _normal(response_text(theirs), customer.pk, missing) == _normal(response_text(nobodys), customer.pk,
                                                                               missing), \
            "mobile material: the page for another scope's customer differs from the one for a missing customer"


def probe_mobile_task(name: str, method: str = "get", data: dict | None = None) -> Callable[[Ctx], None]:
    """Another store's (or, for store staff, a colleague's) assignment on the task page or any of its actions:
    as for a missing id, and the assignment, its ticks, photos, follow-ups and events unchanged."""

    def probe(ctx: Ctx) -> None:
        from campaigns.models import Assignment, AssignmentEvent, ChecklistTick, Evidence, FollowUp

        for assignment in ctx.hidden_rows(Assignment):
            with unchanged([assignment], f"mobile {name}"), \
                    nothing_new(AssignmentEvent, ChecklistTick, Evidence, FollowUp, what=f"mobile {name}"):
                ctx.assert_like_missing(method, lambda pk: reverse(f"mobile:{name}", args=[pk]), assignment,
                                        f"mobile {name}", data=data)

    return probe


def probe_mobile_task_evidence(ctx: Ctx) -> None:
    from campaigns.models import Evidence

    for evidence in ctx.hidden_rows(Evidence):
        ctx.assert_like_missing("get", lambda pk: reverse("mobile:task_evidence", args=[pk]), evidence,
                                "mobile task photo")


MOBILE_VIEWS: dict[str, Surface] = {
    "home": Surface(probe_mobile_home, "no other scope's stores or colleagues"),
    "login": Surface(probe_mobile_login, "sign-in leads to a page with nothing of another scope"),
    "logout": Surface(lambda ctx: ctx.assert_refused_or_clean(ctx.client.post(reverse("mobile:logout")), "logout"),
                      "signing out holds no rows"),
    "staff": Surface(probe_mobile_staff, "another scope's staff page: as for a missing id"),
    "material_poster": Surface(probe_mobile_poster, "another scope's poster template: as for a missing id, nothing "
                                                    "rendered"),
    "wecom_login": Surface(lambda ctx: ctx.assert_refused_or_clean(ctx.client.get(reverse("mobile:wecom_login")),
                                                                     "WeCom sign-in start"), "a redirect to WeCom"),
    "wecom_done": Surface(probe_mobile_wecom_done, "WeCom's return signs nobody into another scope"),
    "materials": Surface(probe_mobile_materials, "the library, searched by and filtered to another scope: nothing "
                                                 "of it listed"),
    "material": Surface(probe_mobile_material_page, "another scope's material: as missing; another scope's "
                                                    "customer in ?customer=: as a missing customer"),
    "material_file": Surface(probe_mobile_material("material_file"), "another scope's file: as missing"),
    "material_thumbnail": Surface(probe_mobile_material("material_thumbnail"),
                                  "another scope's thumbnail: as missing"),
    "material_used": Surface(probe_mobile_material("material_used", "post", {"action": "copy"}),
                             "reporting use of another scope's material: as missing, nothing recorded"),
    "task": Surface(probe_mobile_task("task"), "another store's assignment's page: as missing"),
    "task_confirm": Surface(probe_mobile_task("task_confirm", "post"), "confirming another store's work: as "
                                                                        "missing, nothing changes"),
    "task_done": Surface(probe_mobile_task("task_done", "post"), "finishing another store's work: as missing"),
    "task_tick": Surface(probe_mobile_task("task_tick", "post", {"item": "1", "ticked": "1"}),
                         "ticking another store's checklist: as missing, no tick"),
    "task_photo": Surface(probe_mobile_task("task_photo", "post"), "a photo for another store's work: as missing, "
                                                                    "nothing stored"),
    "task_followup": Surface(probe_mobile_task("task_followup", "post", {"customer": "1", "outcome": "reached"}),
                             "a follow-up on another store's work: as missing, nothing recorded"),
    "task_nudge": Surface(probe_mobile_task("task_nudge", "post"), "nudging another store's staff: as missing"),
    "task_excuse": Surface(probe_mobile_task("task_excuse", "post", {"reason": "leave"}),
                           "excusing another store's staff: as missing, nothing changes"),
    "task_evidence": Surface(probe_mobile_task_evidence, "another store's photo: as missing"),
    "task_open": Surface(probe_mobile_task_open, "a task card's link to another scope's task: as missing"),
}


# -- the API ------------------------------------------------------------------------------------------------
def _json(ctx: Ctx, method: str, url: str, data, auth: dict):
    import json

    return getattr(ctx.client, method)(url, json.dumps(data), content_type="application/json", **auth)


def assert_api_refused(ctx: Ctx, response, what: str, *, statuses=(400, 401, 403, 404, 405, 429)) -> None:
    assert response.status_code != 500, f"{what}: 500"
    assert response.status_code in statuses, f"{what}: {ctx.persona} got {response.status_code}"
    ctx.assert_clean(response, what)


def probe_api_list(basename: str, create: Callable[[Ctx], list[tuple[dict, Callable]]] | None = None):
    """The list holds no row of another scope; creating one that points at another scope is refused."""

    def probe(ctx: Ctx) -> None:
        url = reverse(f"{basename}-list")
        for auth in ctx.api_calls():
            response = ctx.client.get(url, {"page_size": 1000}, **auth)
            if response.status_code == 200:
                ctx.assert_clean(response, f"{basename} list")
            else:
                assert_api_refused(ctx, response, f"{basename} list")
            for data, written in (create(ctx) if create else []):
                with nothing_new(SCOPED_BASENAMES[basename], what=f"{basename} create"):
                    response = _json(ctx, "post", url, data, auth)
                assert_api_refused(ctx, response, f"POST {basename} {data}")
                assert not written(), f"POST {basename} {data} wrote a row"

    return probe


def probe_api_detail(basename: str, writes: Callable[[Ctx], list[tuple[object, dict]]] | None = None):
    """Another scope's row is not found; one's own row cannot be pointed at another scope nor have its
    identity (userid, position, store, region…) changed by a non-HQ role: refused (400/403), unchanged."""

    def probe(ctx: Ctx) -> None:
        model = SCOPED_BASENAMES[basename]
        for auth in ctx.api_calls():
            for obj in ctx.hidden_rows(model):
                ctx.assert_like_missing("get", lambda pk: reverse(f"{basename}-detail", args=[pk]), obj,
                                        f"GET {basename}", **auth)
                with unchanged([obj], f"PATCH another scope's {basename}"):
                    response = _json(ctx, "patch", reverse(f"{basename}-detail", args=[obj.pk]), {"name": "x"}, auth)
                assert_api_refused(ctx, response, f"PATCH another scope's {basename}")
            for own, data in (writes(ctx) if writes else []):
                with unchanged([own], f"PATCH own {basename} {data}"):
                    response = _json(ctx, "patch", reverse(f"{basename}-detail", args=[own.pk]), data, auth)
                assert_api_refused(ctx, response, f"PATCH own {basename} {data}", statuses=(400, 401, 403, 404, 429))

    return probe


def _store_creates(ctx: Ctx) -> list[tuple[dict, Callable]]:
    org = ctx.world.org
    return [({"code": "Z901", "name": "越界新店", "kind": "franchise", "region": org.south_gz.pk,
              "franchisee": org.franchisee_two.pk}, lambda: Store.objects.filter(code="Z901").exists()),
            ({"code": "Z902", "name": "越界直营", "kind": "direct", "region": org.south_gz.pk},
             lambda: Store.objects.filter(code="Z902").exists())]


def _staff_creates(ctx: Ctx) -> list[tuple[dict, Callable]]:
    creates = []
    for store in [*ctx.hidden_rows(Store), ctx.world.org.store_a]:
        userid = f"matrix-{store.code}"
        creates.append(({"userid": userid, "name": "越界员工", "store": store.pk, "position": "guide"},
                        lambda userid=userid: Staff.objects.filter(userid=userid).exists()))
    return creates


def _store_writes(ctx: Ctx) -> list[tuple[object, dict]]:
    org, own = ctx.world.org, ctx.world.org.store_a
    return [(own, {"region": org.south_gz.pk}), (own, {"franchisee": org.franchisee_two.pk}),
            (own, {"region": org.east_hz.pk}), (own, {"kind": "direct", "franchisee": None}),
            (own, {"wecom_department_id": 1})]


def _staff_writes(ctx: Ctx) -> list[tuple[object, dict]]:
    org, own = ctx.world.org, ctx.world.org.guide_a
    writes = [(own, {"store": s.pk}) for s in ctx.hidden_rows(Store)]
    return [*writes, (own, {"store": None}), (own, {"store": org.store_a2.pk}), (own, {"userid": "hijacked-x"}),
            (own, {"position": Staff.Position.STORE_MANAGER}), (org.manager_a, {"userid": org.guide_a.userid})]


def probe_member_upsert(ctx: Ctx) -> None:
    """Upserting into another scope's store, or over another scope's member, writes nothing; the error for
    another scope's code reads as for a code that does not exist."""
    url = reverse("member-upsert")
    theirs = ctx.hidden_rows(Member)
    for auth in ctx.api_calls():
        for store in ctx.hidden_rows(Store):
            with nothing_new(Member, what="upsert into another scope's store"):
                foreign = _json(ctx, "post", url, {"member_no": "MX901", "home_store_code": store.code}, auth)
                nowhere = _json(ctx, "post", url, {"member_no": "MX901", "home_store_code": "Z999"}, auth)
            assert_api_refused(ctx, foreign, "upsert into another scope's store")
            assert foreign.status_code == nowhere.status_code and \
                response_text(foreign).replace(store.code, "<code>") == \
                response_text(nowhere).replace("Z999", "<code>"), \
                "upsert: the error for another scope's store code differs from the one for a missing code"
        for member in theirs:
            for data in ({"member_no": member.member_no, "name": "越界改名"},
                         {"member_no": member.member_no, "home_store_code": "A001"}):
                with unchanged([member], f"upsert over another scope's member {data}"):
                    response = _json(ctx, "post", url, data, auth)
                assert_api_refused(ctx, response, f"upsert {data}", statuses=(400, 401, 403, 429))
        with unchanged(theirs, "bulk upsert"), nothing_new(Member, what="bulk upsert"):
            response = _json(ctx, "post", url, [{"member_no": m.member_no, "level": "越界"} for m in theirs]
                             + [{"member_no": "MX902", "home_store_code": "B001"}], auth)
        assert response.status_code != 500, "bulk upsert: 500"
        if response.status_code == 200:
            assert response.json()["failed"] == len(theirs) + 1, "bulk upsert: a foreign item did not fail"
        ctx.assert_clean(response, "bulk upsert")


def probe_api_plain(name: str) -> Callable[[Ctx], None]:
    def probe(ctx: Ctx) -> None:
        for auth in ctx.api_calls():
            ctx.assert_refused_or_clean(ctx.client.get(reverse(name), **auth), name)

    return probe


SCOPED_BASENAMES: dict[str, type] = {case.api: model for model, case in SCOPED.items() if case.api}

API_VIEWS: dict[str, Surface] = {
    "api-root": Surface(probe_api_plain("api-root"), "the route list holds no rows"),
    "api-schema": Surface(probe_api_plain("api-schema"), "the schema holds no rows"),
    "api-docs": Surface(probe_api_plain("api-docs"), "the docs hold no rows"),
    "region-list": Surface(probe_api_list("region"), "no other scope's regions"),
    "region-detail": Surface(probe_api_detail("region"), "another scope's region: as missing"),
    "franchisee-list": Surface(probe_api_list("franchisee"), "no other scope's franchisees"),
    "franchisee-detail": Surface(probe_api_detail("franchisee"), "another scope's franchisee: as missing"),
    "store-list": Surface(probe_api_list("store", _store_creates),
                          "no other scope's stores; creating one in another scope's region is refused"),
    "store-detail": Surface(probe_api_detail("store", _store_writes),
                            "another scope's store: as missing; own store's region/franchisee/kind/department: "
                            "refused, unchanged"),
    "staff-list": Surface(probe_api_list("staff", _staff_creates),
                          "no other scope's staff; creating staff (in another scope's store or one's own) refused"),
    "staff-detail": Surface(probe_api_detail("staff", _staff_writes),
                            "another scope's staff: as missing; own staff's store (foreign, null, sibling), userid, "
                            "position: refused (400/403, never 500), unchanged"),
    "member-list": Surface(probe_api_list("member"), "no other scope's members"),
    "member-detail": Surface(probe_api_detail("member"), "another scope's member: as missing"),
    "member-upsert": Surface(probe_member_upsert, "another scope's store or member: refused per item, unchanged, "
                                                  "the error as for a missing code"),
}
