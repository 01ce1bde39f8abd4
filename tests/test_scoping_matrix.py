"""Scoping, tried from every side: each persona types another scope's ids into the admin, the API,
filters, autocomplete and exports, and gets 403/404 and nothing leaks.

The matrix is generated from tests/scoping_registry.py: a new scoped model joins it by being
registered, and a scoped model left out makes ``test_every_model_is_in_the_matrix`` fail.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from stores.scoping import scope_global_declaration
from tests.conftest import ADMIN_PERSONAS, NON_HQ_PERSONAS
from tests.scoping_registry import GLOBAL, OUR_APPS, SCOPED

SCOPED_ADMIN_MODELS = [m for m in SCOPED if m in admin.site._registry]


def _label(model) -> str:
    return f"{model._meta.app_label}.{model.__name__}"


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_model_is_in_the_matrix():
    missing = []
    for config in apps.get_app_configs():
        if config.label not in OUR_APPS:
            continue
        for model in config.get_models():
            # A declared-global model (stores.scoping.GlobalQuerySet) belongs to no store: it is in GLOBAL.
            scoped = hasattr(model._default_manager, "for_user") and scope_global_declaration(model) is None
            if scoped and model not in SCOPED:
                missing.append(f"{_label(model)}: scoped but not registered in tests/scoping_registry.SCOPED")
            if not scoped and _label(model) not in GLOBAL:
                missing.append(f"{_label(model)}: not scoped and not declared GLOBAL with a reason")
    assert not missing, "\n".join(missing)


@pytest.fixture
def foreign(org):
    """Objects in store_b: outside every non-HQ persona's scope (SOUTH, franchisee two)."""
    return {model: case.make(org.store_b) for model, case in SCOPED.items()}


@pytest.mark.parametrize("persona", NON_HQ_PERSONAS)
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_change_delete_history_of_another_scope_are_not_found(persona, model, foreign, client, request):
    client.force_login(request.getfixturevalue(persona))
    obj = foreign[model]
    for view in ("change", "delete", "history"):
        response = client.get(_admin_url(model, view, obj.pk))
        assert response.status_code in (302, 403, 404), (view, response.status_code)
        if response.status_code == 302:  # store staff are not admin users: sent to the login page
            assert "/login/" in response["Location"]
    response = client.post(_admin_url(model, "delete", obj.pk), {"post": "yes"})
    assert response.status_code in (302, 403, 404)
    assert type(obj)._default_manager.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("persona", NON_HQ_PERSONAS)
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_changelist_and_filters_show_nothing_of_another_scope(persona, model, foreign, client, request, org):
    client.force_login(request.getfixturevalue(persona))
    obj = foreign[model]
    for query in ("", f"?id__exact={obj.pk}", f"?region__id__exact={org.south_gz.pk}",
                  f"?franchisee__id__exact={org.franchisee_two.pk}", f"?store__id__exact={org.store_b.pk}"):
        response = client.get(_admin_url(model, "changelist") + query)
        if response.status_code != 200:
            assert response.status_code in (302, 400, 403), response.status_code
            continue
        shown = {row.pk for row in response.context["cl"].result_list}
        assert obj.pk not in shown
        for spec in response.context["cl"].filter_specs:
            related = getattr(getattr(spec, "field", None), "related_model", None)
            if related in foreign:
                offered = {choice[0] for choice in spec.lookup_choices}
                assert foreign[related].pk not in offered, f"{related.__name__} filter offers another scope's row"


@pytest.mark.parametrize("persona", NON_HQ_PERSONAS)
@pytest.mark.parametrize("model", [m for m in SCOPED if SCOPED[m].autocomplete_from], ids=_label)
def test_autocomplete_offers_nothing_of_another_scope(persona, model, foreign, client, request):
    client.force_login(request.getfixturevalue(persona))
    app_label, model_name, field_name = SCOPED[model].autocomplete_from
    response = client.get(reverse("admin:autocomplete"), {"app_label": app_label, "model_name": model_name,
                                                          "field_name": field_name, "term": ""})
    if response.status_code == 200:
        ids = {int(item["id"]) for item in response.json()["results"]}
        assert foreign[model].pk not in ids
    else:
        assert response.status_code in (302, 403, 404)


@pytest.mark.parametrize("persona", NON_HQ_PERSONAS)
@pytest.mark.parametrize("model", [m for m in SCOPED if SCOPED[m].api], ids=_label)
def test_api_detail_and_list_of_another_scope_are_not_found(persona, model, foreign, client, request):
    client.force_login(request.getfixturevalue(persona))
    basename = SCOPED[model].api
    obj = foreign[model]
    assert client.get(reverse(f"{basename}-detail", args=[obj.pk])).status_code in (403, 404)
    assert client.patch(reverse(f"{basename}-detail", args=[obj.pk]), {"name": "x"},
                        content_type="application/json").status_code in (403, 404, 405)
    response = client.get(reverse(f"{basename}-list"), {"page_size": 1000})
    if response.status_code == 200:
        assert obj.pk not in {row["id"] for row in response.json()["results"]}
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("persona", NON_HQ_PERSONAS)
@pytest.mark.parametrize("model", [m for m in SCOPED_ADMIN_MODELS if SCOPED[m].exported_text], ids=_label)
def test_export_contains_own_rows_and_nothing_of_another_scope(persona, model, foreign, client, request, org):
    client.force_login(request.getfixturevalue(persona))
    own = SCOPED[model].make(org.store_a)
    page = client.get(_admin_url(model, "export"))
    if persona not in ADMIN_PERSONAS:
        assert page.status_code in (302, 403)
        return
    form = page.context["form"]
    data = {name: "on" for name, field in form.fields.items() if field.initial is True}
    response = client.post(_admin_url(model, "export"), {**data, "format": "0", "resource": "0"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    exported = response.content.decode("utf-8-sig")
    assert SCOPED[model].exported_text(own) in exported
    assert SCOPED[model].exported_text(foreign[model]) not in exported


@pytest.mark.parametrize("persona", ADMIN_PERSONAS)
def test_everyone_with_a_scope_sees_their_own_store(persona, org, client, request):
    """The other half: scoping is not 'nobody sees anything'."""
    client.force_login(request.getfixturevalue(persona))
    response = client.get(_admin_url(type(org.store_a), "change", org.store_a.pk))
    assert response.status_code == 200
    response = client.get(reverse("store-detail", args=[org.store_a.pk]))
    assert response.status_code == 200 and response.json()["code"] == "A001"
