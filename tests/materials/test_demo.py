"""The demo's library: what an HQ operator shows on day one — a poster template for 华东大区 only, scripts for
everyone, one material expired and gone, one about to expire, a franchisee's own script, and two weeks of use."""

from __future__ import annotations

import pytest

from materials.library.demo import EXPIRED_TITLE, POSTER_TITLE, materials_demo_run
from materials.library.models import Material
from materials.library.selectors import materials_usable
from materials.usage.models import MaterialUse, MaterialUseDaily
from stores.demo import OrgSize, org_build
from stores.models import Access, Role
from stores.notices.models import Notice

SIZE = OrgSize(areas=2, franchisees=1, stores=6, staff=18, store_manager_users=True)


@pytest.fixture
def demo_library(db):
    org_build(size=SIZE)
    materials_demo_run()


def _manager_in(area: str):
    return (Access.objects.filter(role=Role.STORE_MANAGER, store__region__parent__name=area)
            .select_related("user").first().user)


def test_the_poster_template_reaches_east_stores_only(demo_library):
    east, south = _manager_in("华东大区"), _manager_in("华南大区")

    assert materials_usable(viewer=east).filter(title=POSTER_TITLE).exists()
    assert not materials_usable(viewer=south).filter(title=POSTER_TITLE).exists()


def test_the_expired_material_is_gone_from_every_store_and_its_owner_was_told(demo_library):
    assert not materials_usable(viewer=_manager_in("华东大区")).filter(title=EXPIRED_TITLE).exists()
    expired = Material.objects.get(title=EXPIRED_TITLE)
    assert expired.expiry_done_at is not None
    assert Notice.objects.filter(user_id=expired.created_by_id, title__contains=EXPIRED_TITLE).exists()


def test_the_franchisee_script_reaches_its_own_stores_only(demo_library):
    local = Material.objects.get(owner_franchisee__isnull=False)
    franchised = (Access.objects.filter(role=Role.STORE_MANAGER, store__franchisee=local.owner_franchisee)
                  .select_related("user").first().user)
    direct = (Access.objects.filter(role=Role.STORE_MANAGER, store__franchisee__isnull=True)
              .select_related("user").first().user)

    assert materials_usable(viewer=franchised).filter(pk=local.pk).exists()
    assert not materials_usable(viewer=direct).filter(pk=local.pk).exists()


def test_two_weeks_of_use_are_recorded_and_rolled_up_by_day(demo_library):
    assert MaterialUse.objects.count() > 0
    days = set(MaterialUseDaily.objects.values_list("day", flat=True))
    assert len(days) > 7
    assert not MaterialUse.objects.filter(material__title=EXPIRED_TITLE).exists()


def test_seeding_again_makes_nothing_new(demo_library):
    before = (Material.objects.count(), MaterialUse.objects.count(), Notice.objects.count())

    materials_demo_run()

    assert (Material.objects.count(), MaterialUse.objects.count(), Notice.objects.count()) == before


def test_every_east_staff_member_gets_a_poster_and_a_second_seed_draws_none_again(demo_library):
    from materials.posters.demo import posters_demo_run
    from materials.posters.models import RenderedPoster
    from stores.models import Staff

    posters_demo_run()

    east_staff = set(Staff.objects.active().filter(store__region__parent__name="华东大区")
                     .exclude(position=Staff.Position.HQ).values_list("pk", flat=True))
    drawn = dict(RenderedPoster.objects.filter(material__title=POSTER_TITLE).values_list("staff_id", "rendered_at"))
    assert set(drawn) == east_staff and east_staff
    assert "未变 " + str(len(east_staff)) in posters_demo_run()
    assert dict(RenderedPoster.objects.values_list("staff_id", "rendered_at")) == drawn
