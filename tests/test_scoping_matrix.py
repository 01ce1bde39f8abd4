"""Scoping, tried from every side: each persona types another scope's ids into every surface — the admin's
views, actions, filters, forms and autocomplete, its dashboards and exports, the mobile page, the API's
reads and writes — and gets a refusal, an answer like the one for a missing id, or a page with nothing of
another scope in it; another scope's rows stay unchanged; figures don't move when another scope grows.

The matrix is generated. Models come from tests/scoping_registry.py, surfaces from tests/scoping_surfaces.py;
the ``test_every_*_is_in_the_matrix`` tests enumerate what exists (models, admin URLs, actions, list filters,
mobile and API URLs) and fail for anything left out, so a new surface joins the matrix or breaks the suite.

Speed: the world (the organisation, every persona, a row of every scoped model in three stores) is built
once for the module inside one transaction that is rolled back at the end; each test runs in a savepoint of
it (as Django's ``setUpTestData``). Personas are made by tests/conftest.py's own fixture functions.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter, SimpleListFilter
from django.db import transaction
from django.urls import URLResolver, get_resolver, reverse

from customers.models import Channel, Customer, Member, Relationship, Segment
from stores.access.scoping import scope_global_declaration
from stores.models import Store
from tests.conftest import ADMIN_PERSONAS, NON_HQ_PERSONAS
from tests.scoping_registry import GLOBAL, OUR_APPS, SCOPED
from tests.scoping_surfaces import (
    ACTIONS,
    ADMIN_VIEWS,
    API_VIEWS,
    LIST_FILTERS,
    LOCKED_OUT,
    MATRIX_PERSONAS,
    MOBILE_VIEWS,
    SCOPED_BASENAMES,
    Ctx,
    _figures_of,
    _hidden_regions,
    panels_of,
    probe_action,
    response_text,
    world_build,
)

SCOPED_ADMIN_MODELS = [m for m in SCOPED if m in admin.site._registry]
OUR_ADMINS = {m: a for m, a in admin.site._registry.items() if m._meta.app_label in OUR_APPS}
STANDARD_MODEL_VIEWS = ("changelist", "add", "history", "delete", "change")


def _label(model) -> str:
    return f"{model._meta.app_label}.{model.__name__}"


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.name


# -- what exists ------------------------------------------------------------------------------------------
def admin_custom_urls() -> set[str]:
    """Every URL of the admin site (by name, or by route when unnamed) beyond Django's standard model views."""
    standard = {"autocomplete", "(?P<url>.*)$"}  # autocomplete has its own generated test; the catch-all 404s
    for model in admin.site._registry:
        base = f"{model._meta.app_label}_{model._meta.model_name}"
        standard |= {f"{base}_{view}" for view in STANDARD_MODEL_VIEWS}
        standard.add(f"{model._meta.app_label}/{model._meta.model_name}/<path:object_id>/")  # → the change view
    return {name or route for route, name in _routes(admin.site.get_urls())} - standard


def admin_actions() -> list[tuple[type, str]]:
    return [(model, name) for model, model_admin in OUR_ADMINS.items()
            for _function, name, _description in model_admin._get_base_actions()]


def action_key(model, name: str) -> str:
    site_actions = {site_name for site_name, _function in admin.site.actions}
    return name if name in site_actions else f"{_label(model)}.{name}"


def custom_list_filters() -> set[type]:
    found = set()
    for model_admin in OUR_ADMINS.values():
        for item in model_admin.list_filter:
            cls = item[1] if isinstance(item, tuple) else item
            if isinstance(cls, type) and not cls.__module__.startswith(("django.", "portal.admin_base")):
                found.add(cls)
    return found


def mobile_urls() -> set[str]:
    from campaigns.mobile import urls

    return {name or route for route, name in _routes(urls.urlpatterns)}


def api_urls() -> set[str]:
    return {name or route for route, name in _routes(get_resolver().url_patterns) if route.startswith("api/")}


def foreign_keys_to_scoped_models() -> dict[type, list[str]]:
    """Every relation of every admin-registered model to a scoped model: the autocompletes it can serve."""
    keys: dict[type, list[str]] = {}
    for model in admin.site._registry:
        for field in model._meta.get_fields():
            if (field.concrete and field.is_relation and field.related_model in SCOPED
                    and (field.many_to_one or field.many_to_many or field.one_to_one)):
                keys.setdefault(model, []).append(field.name)
    return keys


FOREIGN_KEYS = foreign_keys_to_scoped_models()


def test_every_model_is_in_the_matrix():
    missing = []
    for config in apps.get_app_configs():
        if config.label not in OUR_APPS:
            continue
        for model in config.get_models():
            # A declared-global model (stores.access.scoping.GlobalQuerySet) belongs to no store: it is in GLOBAL.
            scoped = hasattr(model._default_manager, "for_user") and scope_global_declaration(model) is None
            if scoped and model not in SCOPED:
                missing.append(f"{_label(model)}: scoped but not registered in tests/scoping_registry.SCOPED")
            if not scoped and _label(model) not in GLOBAL:
                missing.append(f"{_label(model)}: not scoped and not declared GLOBAL with a reason")
    assert not missing, "\n".join(missing)


def test_every_custom_admin_url_is_in_the_matrix():
    missing = sorted(admin_custom_urls() - set(ADMIN_VIEWS))
    assert not missing, ("admin URLs with no cross-scope probe in tests/scoping_surfaces.ADMIN_VIEWS: "
                         f"{missing}")
    gone = sorted(set(ADMIN_VIEWS) - admin_custom_urls())
    assert not gone, f"tests/scoping_surfaces.ADMIN_VIEWS probes admin URLs that no longer exist: {gone}"


def test_every_admin_action_is_in_the_matrix():
    missing = sorted({action_key(m, a) for m, a in admin_actions()} - set(ACTIONS))
    assert not missing, f"admin actions with no entry in tests/scoping_surfaces.ACTIONS: {missing}"


def test_every_custom_list_filter_is_in_the_matrix():
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in custom_list_filters() - set(LIST_FILTERS))
    assert not missing, f"list filters with no entry in tests/scoping_surfaces.LIST_FILTERS: {missing}"
    for cls, case in LIST_FILTERS.items():
        assert case.model in SCOPED or case.reason, f"{cls.__name__}: a scoped model, or the reason it leaks nothing"


def test_every_mobile_url_is_in_the_matrix():
    assert mobile_urls() == set(MOBILE_VIEWS), "tests/scoping_surfaces.MOBILE_VIEWS must list every /m/ URL"


def test_every_api_url_is_in_the_matrix():
    missing = sorted(api_urls() - set(API_VIEWS))
    assert not missing, f"API URLs with no cross-scope probe in tests/scoping_surfaces.API_VIEWS: {missing}"


# -- the shared world -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer._from_testcase = True  # like TestCase's own: durable blocks inside the tests still work
        outer.__enter__()
        try:
            yield world_build()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def ctx(persona, world, db, client) -> Ctx:
    """The persona signed in (the world's session for it: from before it lost its access, if it lost it)."""
    client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[persona]
    return Ctx(persona=persona, client=client, world=world)


personas = pytest.mark.parametrize("persona", MATRIX_PERSONAS)


# -- the admin's standard views ----------------------------------------------------------------------------
@personas
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_change_delete_history_of_another_scope_answer_as_for_a_missing_id(ctx, model):
    for obj in ctx.hidden_rows(model):
        for view in ("change", "history"):
            ctx.assert_like_missing("get", lambda pk, view=view: _admin_url(model, view, pk), obj, f"{view} view")
        ctx.assert_like_missing("get", lambda pk: _admin_url(model, "delete", pk), obj, "delete page")
        ctx.assert_like_missing("post", lambda pk: _admin_url(model, "delete", pk), obj, "delete", {"post": "yes"})
        assert model._base_manager.filter(pk=obj.pk).exists()


def _filter_target(spec):
    """(the scoped model whose ids the filter takes, its URL parameter), or None."""
    if isinstance(spec, RelatedFieldListFilter):
        related = spec.field.related_model
        return (related, spec.lookup_kwarg) if related in SCOPED else None
    if isinstance(spec, SimpleListFilter):
        case = LIST_FILTERS.get(type(spec))
        return (case.model, spec.parameter_name) if case is not None and case.model is not None else None
    return None


def _hidden_of(ctx: Ctx, model) -> list:
    return _hidden_regions(ctx) if model is not None and model._meta.model_name == "region" else ctx.hidden_rows(model)


@personas
@pytest.mark.parametrize("model", list(OUR_ADMINS), ids=_label)
def test_admin_list_and_its_filters_show_nothing_of_another_scope(ctx, model, world):
    url = _admin_url(model, "changelist")
    response = ctx.client.get(url)
    if ctx.refused(response):
        return
    ctx.assert_clean(response, f"{_label(model)} list")
    hidden = ctx.hidden_pks(model) if model in SCOPED else set()
    assert not hidden & {row.pk for row in response.context["cl"].result_list}
    queries = [f"id__exact={pk}" for pk in sorted(hidden)[:1]]
    for spec in response.context["cl"].filter_specs:
        target = _filter_target(spec)
        if target is None:
            continue
        related, parameter = target
        rows = _hidden_of(ctx, related)
        offered = {str(choice[0]) for choice in spec.lookup_choices}
        leaked = offered & {str(obj.pk) for obj in rows}
        assert not leaked, f"{_label(model)} filter {parameter} offers another scope's {related.__name__} {leaked}"
        queries += [f"{parameter}={obj.pk}" for obj in rows]
    for query in queries:
        filtered = ctx.client.get(f"{url}?{query}")
        assert filtered.status_code in (200, 302), f"{_label(model)} ?{query}: {filtered.status_code}"
        if filtered.status_code == 200:
            ctx.assert_clean(filtered, f"{_label(model)} list ?{query}")
            assert not hidden & {row.pk for row in filtered.context["cl"].result_list}, f"?{query} shows them"


@personas
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_forms_offer_and_accept_no_row_of_another_scope(ctx, model):
    """Add and change forms (of one's own row): every choice of a related scoped model is within scope,
    so another scope's id is not offered and not accepted (a ModelChoiceField accepts only its queryset)."""
    for url in (_admin_url(model, "add"), _admin_url(model, "change", ctx.home(model).pk)):
        response = ctx.client.get(url)
        if response.status_code != 200:
            assert ctx.refused(response) or response.status_code == 302, f"{url}: {response.status_code}"
            continue
        ctx.assert_clean(response, url)
        forms = [response.context["adminform"].form]
        forms += [f for formset in response.context.get("inline_admin_formsets", []) for f in formset.formset.forms]
        for form in forms:
            for name, form_field in form.fields.items():
                queryset = getattr(form_field, "queryset", None)
                if queryset is None or queryset.model not in SCOPED:
                    continue
                if form is not forms[0] and name == form._meta.model._meta.pk.name:
                    continue  # an inline row's own id: looked up in the inline's (scoped) queryset, never offered
                leaked = set(queryset.filter(pk__in=ctx.hidden_pks(queryset.model)).values_list("pk", flat=True))
                assert not leaked, f"{url} field {name} offers another scope's {queryset.model.__name__} {leaked}"


@personas
@pytest.mark.parametrize("source", list(FOREIGN_KEYS), ids=_label)
def test_autocomplete_from_every_foreign_key_offers_nothing_of_another_scope(ctx, source):
    """Each relation of ``source`` to a scoped model, asked for every page of its autocomplete."""
    for field_name in FOREIGN_KEYS[source]:
        target = source._meta.get_field(field_name).related_model
        hidden = {str(pk) for pk in ctx.hidden_pks(target)}
        params = {"app_label": source._meta.app_label, "model_name": source._meta.model_name,
                  "field_name": field_name, "term": ""}
        what = f"autocomplete {_label(source)}.{field_name}"
        for page in range(1, 50):
            response = ctx.client.get(reverse("admin:autocomplete"), {**params, "page": page})
            if response.status_code != 200:
                ctx.assert_refused(response, what)
                break
            ctx.assert_clean(response, what)
            data = response.json()
            leaked = {str(item["id"]) for item in data["results"]} & hidden
            assert not leaked, f"{what} offers another scope's {target.__name__} {leaked}"
            if not data["pagination"]["more"]:
                break


@pytest.mark.parametrize("persona", NON_HQ_PERSONAS)
@pytest.mark.parametrize("model", [m for m in SCOPED_ADMIN_MODELS if SCOPED[m].exported_text], ids=_label)
def test_export_contains_own_rows(ctx, model):
    """The other half of the export probes: an export a persona may make holds its own rows."""
    page = ctx.client.get(_admin_url(model, "export"))
    if page.status_code != 200:
        ctx.assert_refused(page, "export page")
        return
    form = page.context["form"]
    data = {name: "on" for name, f in form.fields.items() if f.initial is True}
    response = ctx.client.post(_admin_url(model, "export"), {**data, "format": "0", "resource": "0"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert SCOPED[model].exported_text(ctx.home(model)) in response_text(response)


# -- every other surface, from its registry --------------------------------------------------------------
@personas
@pytest.mark.parametrize("name", sorted(ADMIN_VIEWS))
def test_custom_admin_view_leaks_nothing_of_another_scope(ctx, name):
    ADMIN_VIEWS[name].probe(ctx)


@personas
@pytest.mark.parametrize("model", sorted({m for m, _a in admin_actions()}, key=_label), ids=_label)
def test_admin_actions_on_another_scopes_rows_change_nothing(ctx, model):
    """Each action of the model's admin, posted with another scope's rows selected (and confirmed)."""
    for action in [a for m, a in admin_actions() if m is model]:
        probe_action(ctx, model, action, ACTIONS[action_key(model, action)])


@personas
@pytest.mark.parametrize("name", sorted(MOBILE_VIEWS))
def test_mobile_page_leaks_nothing_of_another_scope(ctx, name):
    MOBILE_VIEWS[name].probe(ctx)


@personas
@pytest.mark.parametrize("name", sorted(API_VIEWS))
def test_api_leaks_and_writes_nothing_of_another_scope(ctx, name):
    API_VIEWS[name].probe(ctx)


# -- derived text and aggregates ----------------------------------------------------------------------------
@personas
def test_customer_page_shows_no_member_homed_in_another_store(ctx, world):
    customer, member = ctx.home(Customer), world.row(Member, "B001")
    Customer.objects.filter(pk=customer.pk).update(member=member)
    response = ctx.client.get(_admin_url(Customer, "change", customer.pk))
    ctx.assert_refused_or_clean(response, "customer page")
    assert member.member_no not in response_text(response), "the customer page shows another store's member"


@personas
def test_channel_list_counts_only_the_viewers_adds(ctx, world):
    url = _admin_url(Channel, "changelist")

    def adds():
        response = ctx.client.get(url)
        if ctx.refused(response):
            return None
        return {row.pk: getattr(row, "adds_so_far", None) for row in response.context["cl"].result_list}

    Relationship.objects.filter(pk=ctx.home(Relationship).pk).update(channel=world.channel)
    before = adds()
    world.grow_elsewhere()
    assert adds() == before, "the channel list counts another scope's adds"


@personas
def test_segment_page_names_nothing_of_another_scope_and_counts_only_the_viewers_customers(ctx, world):
    """A segment HQ wrote about store B001, its staff, region and franchisee, read by a non-HQ viewer."""
    url = _admin_url(Segment, "change", world.segment.pk)
    first = ctx.client.get(url)
    ctx.assert_refused_or_clean(first, "segment page")
    if ctx.refused(first):
        return
    before = getattr(first.context.get("preview"), "count", None)
    world.grow_elsewhere()
    after = ctx.client.get(url)
    assert getattr(after.context.get("preview"), "count", None) == before, "the segment counts another scope"


@pytest.mark.parametrize("persona", ["hq_operator"])
def test_hq_sees_the_figures_move_when_another_scope_grows(ctx, world):
    """The control of the "figures don't move" probes: the rows World.grow_elsewhere adds are counted by
    every one of those figures, so a persona whose figures stay put was really not shown them."""
    urls = {"工作台": reverse("admin:index"), "加粉看板": reverse("admin:customers_acquisitiondaily_dashboard"),
            "渠道": _admin_url(Channel, "changelist")}

    def figures():
        pages = {name: ctx.client.get(url) for name, url in urls.items()}
        return {"工作台": panels_of(pages["工作台"]), "加粉看板": _figures_of(pages["加粉看板"]),
                "渠道": [getattr(row, "adds_so_far", None) for row in pages["渠道"].context["cl"].result_list]}

    before = figures()
    world.grow_elsewhere()
    after = figures()
    assert [name for name in urls if before[name] == after[name]] == []


@pytest.mark.parametrize("persona", LOCKED_OUT)
def test_a_login_that_lost_its_access_sees_nothing_anywhere(ctx):
    """With the session and the API keys it held before: no admin, no API rows, no mobile page."""
    index = ctx.client.get(reverse("admin:index"))
    if not ctx.refused(index):
        assert not index.context["app_list"] and not index.context["panels"], \
            f"{ctx.persona} still has an admin: {[a['app_label'] for a in index.context['app_list']]}"
    for basename in SCOPED_BASENAMES:
        for auth in ctx.api_calls():
            response = ctx.client.get(reverse(f"{basename}-list"), **auth)
            assert response.status_code in (401, 403), f"{basename} list with {auth or 'the session'}: " \
                                                       f"{response.status_code}"
    mobile = ctx.client.get(reverse("mobile:home"))
    if not ctx.refused(mobile):
        assert not mobile.context["stores"] and not mobile.context["staff"], f"{ctx.persona} has a mobile page"


@pytest.mark.parametrize("persona", ADMIN_PERSONAS)
def test_everyone_with_a_scope_sees_their_own_store(ctx, world):
    """The other half: scoping is not 'nobody sees anything'."""
    store_a = world.org.store_a
    response = ctx.client.get(_admin_url(Store, "change", store_a.pk))
    assert response.status_code == 200
    response = ctx.client.get(reverse("store-detail", args=[store_a.pk]))
    assert response.status_code == 200 and response.json()["code"] == "A001"

