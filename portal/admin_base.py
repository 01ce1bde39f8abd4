"""The base of every admin class: scoped everywhere, fast at millions of rows.

Scoping is duck-typed: a model whose default manager has ``for_user`` is scoped, and this class
applies it to the changelist, change/delete/history views, foreign-key choices, autocomplete,
list filters and exports. Out-of-scope objects answer 404 exactly like missing ones.

It fails closed (like NetBox's ``restrict()``): a model that declared no scope shows nothing. A model
that belongs to no store declares so with a ``GlobalQuerySet`` (stores/access/scoping.py); a model whose
manager is not ours (Django's auth, django-celery-beat, django-axes) is declared with ``scope_declare``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin.filters import RelatedFieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.http import Http404, HttpResponseRedirect

from portal.errors import DomainError
from portal.field_policy import field_policy_for, guarded_changes_audit, guarded_values_stored
from portal.pagination import EstimatedCountPaginator


@dataclass(frozen=True)
class DeclaredScope:
    apply: Callable  # (queryset, user) -> the rows of queryset that user may see
    reason: str


_DECLARED_SCOPES: dict[str, DeclaredScope] = {}


def scope_declare(*, model: str, apply: Callable, reason: str) -> None:
    """Declare the scope of a model whose manager is not ours ("app_label.Model"), with the reason."""
    _DECLARED_SCOPES[model] = DeclaredScope(apply=apply, reason=reason)


def scope_declared(model) -> DeclaredScope | None:
    return _DECLARED_SCOPES.get(model._meta.label)


def scoped(queryset, user):
    """The rows of ``queryset`` that ``user`` may see: the model's own ``for_user``, else its declared
    scope, else nothing at all."""
    if hasattr(queryset, "for_user"):
        return queryset.for_user(user)
    declared = scope_declared(queryset.model)
    if declared is not None:
        return declared.apply(queryset, user)
    return queryset.none()


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """A relation filter that offers only the related objects the viewer may see."""

    def field_choices(self, field, request, model_admin):
        queryset = scoped(field.related_model._default_manager.all(), request.user)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in queryset[:500]]


class ScopedAdmin(admin.ModelAdmin):
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50

    def get_queryset(self, request):
        return scoped(super().get_queryset(request), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            kwargs["queryset"] = scoped(db_field.remote_field.model._default_manager.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            kwargs["queryset"] = scoped(db_field.remote_field.model._default_manager.all(), request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request):
        filters = []
        for item in super().get_list_filter(request):
            # A relation filter named by its path, or given Django's plain RelatedFieldListFilter, offers
            # only what the viewer may see (a custom subclass is left to scope its own choices).
            path: str | None = item if isinstance(item, str) else None
            filter_class: object = None
            if isinstance(item, tuple) and isinstance(item[0], str):
                path, filter_class = item[0], item[1]
            if path is not None and filter_class in (None, RelatedFieldListFilter):
                field = get_fields_from_path(self.model, path)[-1]
                if field.is_relation and (field.many_to_one or field.many_to_many):
                    item = (path, ScopedRelatedFieldListFilter)
            filters.append(item)
        return filters

    # -- a service's DomainError: said on the page it came from, nothing changed (one place for the admin) --

    def _refused(self, request, exc: DomainError):
        self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:  # Django's changeform_view runs in a transaction: the refusal rolls it back
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            return self._refused(request, exc)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:
            return self._refused(request, exc)

    def response_action(self, request, queryset):
        try:  # every bulk action, Django's delete_selected included
            return super().response_action(request, queryset)
        except DomainError as exc:
            return self._refused(request, exc)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with "may have been deleted"; a 404 leaks nothing either way.
        raise Http404

    # -- the model's field policy (portal/field_policy.py): locked fields are read-only, audited changes --

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        policy = field_policy_for(self.model)
        if policy is not None:
            fields += [name for name in policy.locked(user=request.user, creating=obj is None) if name not in fields]
        return fields

    def has_add_permission(self, request):
        policy = field_policy_for(self.model)
        if policy is not None and policy.create_refusal(user=request.user):
            return False
        return super().has_add_permission(request)

    def save_model(self, request, obj, form, change):
        policy = field_policy_for(self.model)
        before = guarded_values_stored(policy=policy, instance=obj) if policy is not None and change else None
        super().save_model(request, obj, form, change)
        if policy is not None:
            guarded_changes_audit(instance=obj, before=before, by=request.user, via="admin")


class UserFormMixin:
    """The admin's form gets the request's user (``Form(..., user=user)``): forms whose choices or rules depend on
    who is editing (a franchisee may aim a material only at its own stores)."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
        user = request.user

        class UserBoundForm(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kw):
                super().__init__(*args, user=user, **kw)

        return UserBoundForm


class ReadOnlyAdminMixin:
    """For insert-only records (audit, call logs): viewable, never edited from the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
