"""Every scoped model joins the cross-scope test matrix here.

A model whose default manager has ``for_user`` must be listed in SCOPED with a factory that
makes an instance belonging to a given store; every other model of our apps must be listed in
GLOBAL with the reason it needs no scoping. tests/test_scoping_matrix.py fails otherwise.
The surfaces that show these rows (admin URLs, actions, list filters, mobile and API URLs) and how
each is attacked from another scope are registered in tests/scoping_surfaces.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from campaigns.models import (
    Assignment,
    AssignmentEvent,
    Campaign,
    ChecklistItem,
    ChecklistTick,
    Evidence,
    FollowUp,
    ReminderLog,
    StoreTask,
    Task,
    TaskMaterial,
    TaskStoreCount,
    TaskVariant,
)
from customers.models import (
    AcquisitionDaily,
    ContactWay,
    Customer,
    Member,
    Relationship,
    StageChange,
    WelcomeDelivery,
)
from materials.models import Material, MaterialUse, MaterialUseDaily, MaterialVersion, RenderedPoster
from stores.access.services import access_grant, api_token_issue
from stores.models import Access, ApiToken, Franchisee, Notice, Region, Role, Staff, Store
from tests.factories import (
    CustomerFactory,
    StaffFactory,
    UserFactory,
    acquisition_daily_in,
    contact_way_in,
    member_in,
    relationship_in,
    stage_change_in,
    welcome_delivery_in,
)

OUR_APPS = ("portal", "wecom", "stores", "materials", "customers", "campaigns")


@dataclass(frozen=True)
class ScopedCase:
    make: Callable[[Store], object]  # an instance that belongs to the given store
    api: str | None = None  # DRF route basename, if the model is in the API
    autocomplete_from: tuple[str, str, str] | None = None  # (app_label, model_name, field_name) pointing at it
    exported_text: Callable[[object], str] | None = None  # a value that must not appear in another scope's export


def _access_in(store: Store) -> Access:
    staff = StaffFactory(store=store)
    return access_grant(user=UserFactory(), role=Role.STORE_STAFF, store=store, staff=staff)


def _material_in(store: Store) -> Material:
    """A published script aimed at this one store, made by HQ through the services."""
    from tests.materials.helpers import script_published

    hq = UserFactory(username=f"hq-maker-{store.code}", is_superuser=True)
    return script_published(by=hq, title=f"话术-{store.code}", text=f"{store.code} 专属话术", stores=[store])


def _use_in(store: Store) -> MaterialUse:
    """A download, in this store by one of its staff, of a material aimed at it."""
    import uuid

    material = _material_in(store)
    return MaterialUse.objects.create(event_id=uuid.uuid4(), material=material, version=material.current_version,
                                      store=store, staff=StaffFactory(store=store), action="download",
                                      at=timezone.now())


def _use_daily_in(store: Store) -> MaterialUseDaily:
    return MaterialUseDaily.objects.create(day=timezone.localdate(), material=_material_in(store), store=store,
                                           action="view", count=7)


def _poster_in(store: Store) -> RenderedPoster:
    """A staff member's own poster of a poster template aimed at this one store, rendered by the service."""
    from materials.posters.services import poster_for
    from tests.materials.helpers import poster_template_published

    hq = UserFactory(username=f"hq-poster-{store.code}", is_superuser=True)
    material = poster_template_published(by=hq, title=f"海报-{store.code}", stores=[store])
    return poster_for(material=material, store=store, staff=StaffFactory(store=store))


def _notice_in(store: Store) -> Notice:
    return Notice.objects.create(user=_access_in(store).user, title=f"通知-{store.code}")


def _token_in(store: Store) -> ApiToken:
    return api_token_issue(name="pos", user=_access_in(store).user).token


def _task_in(store: Store):
    from tests.campaigns.tasks.helpers import task_in

    return task_in(store)


def _assignment_in(store: Store):
    from campaigns.models import Assignment

    return Assignment.objects.filter(task=_task_in(store)).first()


def _assignment_part_in(kind: str):
    def make(store: Store):
        from tests.campaigns.tasks.helpers import assignment_part_in

        return assignment_part_in(_assignment_in(store), kind)

    return make


def _reminder_log_in(store: Store):
    """A notice about a task in this store, to the assignment's executor (made as the notifier makes them)."""
    from campaigns.tasks.notify import notices_create

    assignment = _assignment_in(store)
    notices_create(task_id=assignment.task_id)
    return ReminderLog.objects.get(assignment=assignment)


SCOPED: dict[type, ScopedCase] = {
    Store: ScopedCase(make=lambda store: store, api="store", autocomplete_from=("stores", "staff", "store"),
                      exported_text=lambda s: s.code),
    Staff: ScopedCase(make=lambda store: StaffFactory(store=store), api="staff",
                      autocomplete_from=("stores", "access", "staff"), exported_text=lambda s: s.userid),
    Region: ScopedCase(make=lambda store: store.region, api="region",
                       autocomplete_from=("stores", "store", "region")),
    Franchisee: ScopedCase(make=lambda store: store.franchisee, api="franchisee",
                           autocomplete_from=("stores", "store", "franchisee")),
    Access: ScopedCase(make=_access_in),
    Customer: ScopedCase(make=lambda store: CustomerFactory(staff=StaffFactory(store=store)),
                         exported_text=lambda c: c.external_userid),
    Relationship: ScopedCase(make=relationship_in),
    ContactWay: ScopedCase(make=contact_way_in, exported_text=lambda w: w.state),
    WelcomeDelivery: ScopedCase(make=welcome_delivery_in),
    Member: ScopedCase(make=member_in, api="member", exported_text=lambda m: m.member_no),
    StageChange: ScopedCase(make=stage_change_in),
    AcquisitionDaily: ScopedCase(make=acquisition_daily_in),
    ApiToken: ScopedCase(make=_token_in),
    Material: ScopedCase(make=_material_in, exported_text=lambda m: m.title),
    MaterialVersion: ScopedCase(make=lambda store: _material_in(store).current_version),
    Notice: ScopedCase(make=_notice_in),
    MaterialUse: ScopedCase(make=_use_in),
    MaterialUseDaily: ScopedCase(make=_use_daily_in),
    Campaign: ScopedCase(make=lambda store: _task_in(store).campaign,
                         autocomplete_from=("campaigns", "task", "campaign")),
    Task: ScopedCase(make=_task_in),
    TaskVariant: ScopedCase(make=lambda store: _task_in(store).variants.first()),
    ChecklistItem: ScopedCase(make=lambda store: _task_in(store).checklist.first()),
    TaskMaterial: ScopedCase(make=lambda store: _task_in(store).task_materials.first()),
    StoreTask: ScopedCase(make=lambda store: _task_in(store).store_tasks.first()),
    Assignment: ScopedCase(make=_assignment_in, exported_text=lambda a: a.task.title),
    AssignmentEvent: ScopedCase(make=_assignment_part_in("event")),
    ChecklistTick: ScopedCase(make=_assignment_part_in("tick")),
    Evidence: ScopedCase(make=_assignment_part_in("evidence")),
    FollowUp: ScopedCase(make=_assignment_part_in("followup")),
    ReminderLog: ScopedCase(make=_reminder_log_in),
    RenderedPoster: ScopedCase(make=_poster_in),
    TaskStoreCount: ScopedCase(make=lambda store: TaskStoreCount.objects.get(task=_task_in(store), store=store)),
}

# Models that belong to no store. Each entry is a DECISION: "HQ only: …" (non-HQ viewers get nothing, whatever
# their permissions) or "every scope reads: …" (every viewer with a scope reads all rows; who may change them is
# a permission). The same decision is declared in code — a GlobalQuerySet on the model, or stores.access.scoping's
# HQ_ONLY_MODELS for models whose manager is not ours — and tests/customers/test_scoping_leaks.py checks both
# agree and tries each per persona. Without a declaration, portal.admin_base.scoped() shows nothing.
GLOBAL: dict[str, str] = {
    "portal.User": "HQ only: logins are managed by HQ admins (permission); what a login sees comes from its Access",
    "portal.AuditEvent": "HQ only: the audit trail names every scope's rows; HQ admins (permission)",
    "portal.BeatHeartbeat": "HQ only: a single technical row, HQ admins",
    "wecom.WeComCall": "HQ only: technical log of outbound calls, HQ roles (permission)",
    "wecom.CallbackEvent": "HQ only: technical inbox of callbacks, HQ roles (permission)",
    "wecom.AppMessageReceipt": "HQ only: technical record of who got which app message (idempotency); no admin or API",
    "wecom.SyncRun": "HQ only: technical sync and job log, HQ roles (permission)",
    "customers.TagGroup": "every scope reads: corp-wide tags, as every staff member sees them in WeCom; "
                          "only HQ edits (permission)",
    "customers.Tag": "every scope reads: corp-wide tags, as every staff member sees them in WeCom; "
                     "only HQ edits (permission)",
    "customers.Channel": "every scope reads: the brand's channel inventory (codes and customers name their "
                         "channel); only HQ edits (permission); the adds counted beside it are the viewer's own",
    "customers.WelcomeMessage": "every scope reads: brand welcome copy (codes and deliveries name it); "
                                "only HQ edits (permission)",
    "customers.MemberImport": "HQ only: member files hold every store's members and mobiles; the job runs only "
                              "for a creator who still has HQ scope",
    "customers.Segment": "every scope reads: HQ's marketing rules, opened by roles with view permission (region "
                         "managers); count, sample and description are evaluated in the viewer's scope; "
                         "only HQ edits",
    "customers.SegmentSnapshot": "HQ only: a customer list frozen by HQ across the brand",
    "customers.SegmentSnapshotMember": "HQ only: rows of a snapshot, never listed on their own",
    "materials.Folder": "every scope reads: the library's folder tree is brand-wide navigation, as every store "
                        "browses it; only HQ edits (permission)",
    "materials.MaterialTag": "every scope reads: material tags are brand-wide labels to filter by; only HQ edits",
    "materials.WeComMedia": "HQ only: technical cache of the WeCom media ids and image URLs of material versions, "
                            "across the brand: HQ roles only (senders get an id from the service, never from the "
                            "rows)",
}
