"""Every scoped model joins the cross-scope test matrix here.

A model whose default manager has ``for_user`` must be listed in SCOPED with a factory that
makes an instance belonging to a given store; every other model of our apps must be listed in
GLOBAL with the reason it needs no scoping. tests/test_scoping_matrix.py fails otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from customers.models import (
    AcquisitionDaily,
    ContactWay,
    Customer,
    Member,
    Relationship,
    StageChange,
    WelcomeDelivery,
)
from stores.models import Access, ApiToken, Franchisee, Region, Role, Staff, Store
from stores.services.access import access_grant, api_token_issue
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


def _token_in(store: Store) -> ApiToken:
    return api_token_issue(name="pos", user=_access_in(store).user).token


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
}

GLOBAL: dict[str, str] = {
    "portal.User": "logins are managed by HQ admins only (permission); a user's rows are scoped via Access",
    "portal.AuditEvent": "read-only, HQ admins only (permission)",
    "portal.BeatHeartbeat": "a single technical row, HQ admins only",
    "wecom.WeComCall": "technical log of outbound calls, HQ roles only (permission)",
    "wecom.CallbackEvent": "technical inbox of callbacks, HQ roles only (permission)",
    "wecom.SyncRun": "technical sync log, HQ roles only (permission)",
    "customers.TagGroup": "corp-wide tags, as in WeCom; editing is an HQ permission",
    "customers.Tag": "corp-wide tags, as in WeCom; editing is an HQ permission",
    "customers.Channel": "the brand's channel inventory, managed by HQ (permission); codes per store are scoped",
    "customers.WelcomeMessage": "brand copy managed by HQ (permission)",
    "customers.MemberImport": "import jobs, HQ roles only (permission)",
    "customers.Segment": "HQ marketing rules (permission); evaluating one is scoped to the viewer",
    "customers.SegmentSnapshot": "HQ marketing snapshots (permission)",
    "customers.SegmentSnapshotMember": "rows of a snapshot, never listed on their own",
}
