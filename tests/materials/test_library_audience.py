"""Who sees a material: its audience, read through the one scoping mechanism, from every persona."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from materials.library.models import Material
from materials.library.selectors import materials_usable
from materials.library.services import MaterialRefused, material_audience_set, material_create
from stores.models import Store
from tests.materials.helpers import script_published

pytestmark = pytest.mark.django_db


def _visible(user, material) -> bool:
    return materials_usable(viewer=user).filter(pk=material.pk).exists()


def test_a_material_for_everyone_reaches_every_store_role(hq_operator, staff_of_a, store_manager_of_a,
                                                           franchisee_owner, region_manager_east):
    material = script_published(by=hq_operator, everyone=True)
    for user in (staff_of_a, store_manager_of_a, franchisee_owner, region_manager_east):
        assert _visible(user, material)


def test_a_material_for_a_parent_region_reaches_the_stores_of_its_sub_regions(org, hq_operator, staff_of_a):
    material = script_published(by=hq_operator, regions=[org.east])  # store A is in 上海, under 华东
    assert _visible(staff_of_a, material)


def test_a_material_for_another_region_is_invisible_to_a_store_there_not(org, hq_operator, staff_of_a):
    material = script_published(by=hq_operator, regions=[org.south])
    assert not _visible(staff_of_a, material)


def test_a_material_for_a_sub_region_reaches_its_region_manager_above(org, hq_operator, region_manager_east):
    material = script_published(by=hq_operator, regions=[org.east_hz])
    assert _visible(region_manager_east, material)


def test_a_material_for_one_store_is_invisible_to_the_store_next_door(org, hq_operator, staff_of_a,
                                                                     store_manager_of_a):
    material = script_published(by=hq_operator, stores=[org.store_b])
    assert not _visible(staff_of_a, material)
    assert not _visible(store_manager_of_a, material)


def test_a_material_for_a_store_kind_reaches_only_stores_of_that_kind(org, hq_operator, staff_of_a):
    direct_only = script_published(by=hq_operator, store_kinds=[Store.Kind.DIRECT])
    franchise = script_published(by=hq_operator, title="加盟店话术", store_kinds=[Store.Kind.FRANCHISE])
    assert not _visible(staff_of_a, direct_only)  # store A is a franchise store
    assert _visible(staff_of_a, franchise)


def test_a_material_for_a_franchisee_reaches_its_stores_only(org, hq_operator, staff_of_a, franchisee_owner):
    mine = script_published(by=hq_operator, franchisees=[org.franchisee_one])
    theirs = script_published(by=hq_operator, title="二号话术", franchisees=[org.franchisee_two])
    assert _visible(staff_of_a, mine) and _visible(franchisee_owner, mine)
    assert not _visible(staff_of_a, theirs) and not _visible(franchisee_owner, theirs)


def test_a_material_with_no_audience_reaches_nobody_but_hq(hq_operator, staff_of_a, region_manager_east):
    material = script_published(by=hq_operator)
    assert _visible(hq_operator, material)
    assert not _visible(staff_of_a, material) and not _visible(region_manager_east, material)


def test_a_viewer_without_a_role_and_departed_staff_see_nothing(hq_operator, departed_staff_of_a, django_user_model):
    material = script_published(by=hq_operator, everyone=True)
    nobody = django_user_model.objects.create_user(username="no-role", password="x-2026-long")
    assert not _visible(nobody, material)
    assert not _visible(departed_staff_of_a, material)


def test_a_franchisees_own_material_reaches_only_its_own_stores_even_when_everyone_is_ticked(
        org, franchisee_owner, staff_of_a, region_manager_east, django_user_model):
    from stores.access.services import access_grant
    from stores.models import Role
    from tests.factories import StaffFactory, UserFactory

    material = script_published(by=franchisee_owner, everyone=True)
    assert material.owner_franchisee_id == org.franchisee_one.pk
    assert _visible(staff_of_a, material)
    guide_b = UserFactory(username="guide_b")
    access_grant(user=guide_b, role=Role.STORE_STAFF, store=org.store_b, staff=org.guide_b)
    assert not _visible(guide_b, material)  # franchisee two's store
    direct = UserFactory(username="guide_c")
    access_grant(user=direct, role=Role.STORE_STAFF, store=org.store_c, staff=StaffFactory(store=org.store_c))
    assert not _visible(direct, material)


def test_a_franchisee_cannot_aim_its_material_at_a_region_or_another_franchisees_store(org, franchisee_owner):
    material = material_create(by=franchisee_owner, kind="script", title="本地话术")
    with pytest.raises(MaterialRefused, match="加盟商素材只能选择"):
        material_audience_set(material=material, by=franchisee_owner, regions=[org.south])
    with pytest.raises(MaterialRefused, match="不属于你的加盟商"):
        material_audience_set(material=material, by=franchisee_owner, stores=[org.store_b])


def test_a_franchisees_material_for_one_of_its_stores_skips_its_other_stores(org, franchisee_owner, staff_of_a):
    from stores.access.services import access_grant
    from stores.models import Role
    from tests.factories import StaffFactory, UserFactory

    material = script_published(by=franchisee_owner, stores=[org.store_a2])
    guide_a2 = UserFactory(username="guide_a2")
    access_grant(user=guide_a2, role=Role.STORE_STAFF, store=org.store_a2, staff=StaffFactory(store=org.store_a2))
    assert _visible(guide_a2, material)
    assert not _visible(staff_of_a, material)


def test_store_roles_cannot_publish_materials(store_manager_of_a, region_manager_east):
    for user in (store_manager_of_a, region_manager_east):
        with pytest.raises(MaterialRefused, match="只有总部和加盟商"):
            material_create(by=user, kind="script", title="x")


def test_an_expired_material_vanishes_from_the_stores_view(hq_operator, staff_of_a):
    material = script_published(by=hq_operator, everyone=True)
    assert _visible(staff_of_a, material)
    Material.objects.filter(pk=material.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not _visible(staff_of_a, material)


def test_a_material_not_yet_valid_is_not_shown(hq_operator, staff_of_a):
    material = script_published(by=hq_operator, everyone=True)
    Material.objects.filter(pk=material.pk).update(valid_from=timezone.now() + timedelta(days=1))
    assert not _visible(staff_of_a, material)


def test_drafts_and_archived_materials_are_not_usable(hq_operator, staff_of_a):
    from materials.library.services import material_archive

    material = script_published(by=hq_operator, everyone=True)
    material_archive(material=material, by=hq_operator)
    assert not _visible(staff_of_a, material)
    draft = material_create(by=hq_operator, kind="script", title="草稿")
    material_audience_set(material=draft, by=hq_operator, everyone=True)
    assert not _visible(staff_of_a, draft)


def test_search_finds_materials_by_title_description_and_script_text(hq_operator, staff_of_a):
    by_text = script_published(by=hq_operator, title="会员日", text="{客户称呼}，周三会员日双倍积分", everyone=True)
    script_published(by=hq_operator, title="开业", text="欢迎光临", everyone=True)
    found = list(materials_usable(viewer=staff_of_a, search="双倍积分"))
    assert found == [by_text]
