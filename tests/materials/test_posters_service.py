"""Localized posters (issue #12), the service and the bulk job: HQ publishes a poster template to one region and
every active staff member there gets their own poster with their own QR code (一人一码); a region manager renders
only their region, a franchisee only its stores, store roles cannot start the job; a second job renders nothing
new, a changed store address re-renders that store's posters only, and a job that crashed continues after its
last finished batch. A staff member without a code gets a poster without a QR code."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from customers.models import ContactWay
from materials.library.services import material_archive
from materials.posters import services as poster_services
from materials.posters.models import RenderedPoster
from materials.posters.services import (
    POSTER_JOB_KIND,
    PosterRefused,
    poster_for,
    posters_job_run,
    posters_job_start,
)
from portal.wecom.models import SyncRun
from stores.models import Staff
from tests.factories import StaffFactory
from tests.materials.helpers import poster_template_published, script_published
from tests.materials.poster_helpers import code_for, decoded_qr, payload_of


def _job(material, by, **kwargs) -> SyncRun:
    run = posters_job_start(material=material, by=by, **kwargs)
    return posters_job_run(run_id=run.pk)


def _posters(material) -> dict[str, tuple]:
    """Staff userid → (store code, inputs key, file, rendered_at) of each rendered poster of ``material``."""
    return {p.staff.userid: (p.store.code, p.inputs_key, p.file, p.rendered_at) for p in
            RenderedPoster.objects.filter(material=material).select_related("staff", "store")}


# -- who renders what ------------------------------------------------------------------------------------------

def test_hq_renders_one_poster_for_every_active_staff_member_of_the_region_and_none_outside(
        org, east_poster, hq_operator, departed_staff_of_a):
    run = _job(east_poster, hq_operator)

    assert run.status == SyncRun.Status.DONE
    assert sorted(_posters(east_poster)) == ["a-guide", "a-manager", "a2-guide"]  # not b-guide, not a-departed
    assert (run.progress["total"], run.progress["done"], run.progress["rendered"]) == (3, 3, 3)


def test_a_region_manager_renders_only_their_regions_staff_of_a_brand_wide_template(
        org, hq_operator, region_manager_east):
    brand = poster_template_published(by=hq_operator, title="全品牌海报", everyone=True)
    StaffFactory(userid="c-guide", name="孙导购", store=org.store_c)

    _job(brand, region_manager_east)

    assert sorted(_posters(brand)) == ["a-guide", "a-manager"]


def test_a_region_manager_cannot_start_the_job_for_another_region(org, hq_operator, region_manager_east):
    brand = poster_template_published(by=hq_operator, title="全品牌海报", everyone=True)

    with pytest.raises(PosterRefused, match="不在你的管理范围内"):
        posters_job_start(material=brand, by=region_manager_east, region=org.south)
    assert not SyncRun.objects.filter(kind=POSTER_JOB_KIND).exists()


def test_a_region_manager_cannot_start_the_job_for_a_template_that_does_not_reach_them(
        org, hq_operator, region_manager_east):
    south = poster_template_published(by=hq_operator, title="华南海报", regions=[org.south])

    with pytest.raises(PosterRefused, match="找不到"):
        posters_job_start(material=south, by=region_manager_east)


def test_a_franchisee_renders_only_its_own_stores(org, hq_operator, franchisee_owner):
    brand = poster_template_published(by=hq_operator, title="全品牌海报", everyone=True)
    StaffFactory(userid="c-guide", name="孙导购", store=org.store_c)

    _job(brand, franchisee_owner)

    assert sorted(_posters(brand)) == ["a-guide", "a-manager"]  # franchisee one's A001; not B001, not C001


@pytest.mark.parametrize("persona", ["store_manager_of_a", "staff_of_a", "departed_staff_of_a"])
def test_store_roles_cannot_start_the_job(persona, request, east_poster):
    with pytest.raises(PosterRefused, match="只有总部、大区经理和加盟商"):
        posters_job_start(material=east_poster, by=request.getfixturevalue(persona))
    assert not SyncRun.objects.filter(kind=POSTER_JOB_KIND).exists()


def test_nobody_signed_in_cannot_start_the_job(east_poster):
    with pytest.raises(PosterRefused):
        posters_job_start(material=east_poster, by=AnonymousUser())


def test_the_job_is_refused_for_a_template_that_is_not_published(org, hq_operator):
    draft = poster_template_published(by=hq_operator, title="草稿海报", regions=[org.east], publish=False)

    with pytest.raises(PosterRefused, match="未发布"):
        posters_job_start(material=draft, by=hq_operator)


def test_the_job_is_refused_for_a_material_that_is_not_a_poster_template(org, hq_operator):
    script = script_published(by=hq_operator, regions=[org.east])

    with pytest.raises(PosterRefused, match="不是海报模板"):
        posters_job_start(material=script, by=hq_operator)


def test_a_job_whose_template_was_archived_meanwhile_renders_nothing(org, east_poster, hq_operator):
    run = posters_job_start(material=east_poster, by=hq_operator)
    material_archive(material=east_poster, by=hq_operator)

    run = posters_job_run(run_id=run.pk)

    assert run.status == SyncRun.Status.FAILED and "已撤下或过期" in run.error
    assert not RenderedPoster.objects.exists()


# -- what each poster shows ---------------------------------------------------------------------------------

def test_each_posters_qr_decodes_to_that_staff_members_own_contact_way(org, east_poster, hq_operator):
    code_for(org.guide_a)
    code_for(org.manager_a)

    _job(east_poster, hq_operator)

    for staff in (org.guide_a, org.manager_a):
        poster = RenderedPoster.objects.get(material=east_poster, staff=staff)
        assert decoded_qr(poster) == [payload_of(staff)]


def test_a_staff_member_without_a_contact_way_gets_a_poster_without_a_qr_code(org, east_poster, hq_operator):
    run = _job(east_poster, hq_operator)

    poster = RenderedPoster.objects.get(material=east_poster, staff=org.guide_a)
    assert decoded_qr(poster) == []
    assert run.progress["without_qr"] == 3


def test_a_deactivated_code_is_no_longer_on_the_poster(org, east_poster, hq_operator):
    way = code_for(org.guide_a)
    poster_for(material=east_poster, store=org.store_a, staff=org.guide_a)
    ContactWay.objects.filter(pk=way.pk).update(active=False)

    poster = poster_for(material=east_poster, store=org.store_a, staff=org.guide_a)

    assert decoded_qr(poster) == []


def test_poster_for_returns_the_cached_poster_when_nothing_changed(org, east_poster):
    first = poster_for(material=east_poster, store=org.store_a, staff=org.guide_a)
    again = poster_for(material=east_poster, store=org.store_a, staff=org.guide_a)

    assert (again.pk, again.file, again.rendered_at) == (first.pk, first.file, first.rendered_at)


def test_poster_for_refuses_a_staff_member_of_another_store(org, east_poster):
    with pytest.raises(PosterRefused, match="不属于门店"):
        poster_for(material=east_poster, store=org.store_a, staff=org.guide_b)


def test_a_store_without_a_staff_member_gets_its_own_store_poster(org, east_poster):
    poster = poster_for(material=east_poster, store=org.store_a)

    assert (poster.store_id, poster.staff_id) == (org.store_a.pk, None)
    assert poster_for(material=east_poster, store=org.store_a).pk == poster.pk


# -- re-rendering exactly when an input changes --------------------------------------------------------------

def test_running_the_job_twice_renders_nothing_new(org, east_poster, hq_operator):
    _job(east_poster, hq_operator)
    before = _posters(east_poster)

    again = _job(east_poster, hq_operator)

    assert (again.progress["rendered"], again.progress["unchanged"]) == (0, 3)
    assert _posters(east_poster) == before


def test_running_the_same_finished_job_again_does_nothing(org, east_poster, hq_operator):
    run = _job(east_poster, hq_operator)
    before = _posters(east_poster)

    assert posters_job_run(run_id=run.pk).progress == run.progress
    assert _posters(east_poster) == before


def test_a_changed_store_address_re_renders_that_stores_posters_only(org, east_poster, hq_operator):
    _job(east_poster, hq_operator)
    before = _posters(east_poster)
    type(org.store_a).objects.filter(pk=org.store_a.pk).update(address="上海市徐汇区漕溪北路 88 号")

    run = _job(east_poster, hq_operator)

    after = _posters(east_poster)
    assert run.progress["rendered"] == 2
    assert {u for u in after if after[u][1] != before[u][1]} == {"a-guide", "a-manager"}
    assert after["a2-guide"] == before["a2-guide"]


def test_a_renamed_staff_member_and_a_new_code_re_render_their_poster_only(org, east_poster, hq_operator):
    _job(east_poster, hq_operator)
    before = _posters(east_poster)
    Staff.objects.filter(pk=org.guide_a.pk).update(name="李小导")
    code_for(org.manager_a)

    _job(east_poster, hq_operator)

    after = _posters(east_poster)
    assert {u for u in after if after[u][1] != before[u][1]} == {"a-guide", "a-manager"}


def test_a_staff_member_who_moved_store_has_their_poster_at_the_new_store(org, east_poster, hq_operator):
    _job(east_poster, hq_operator)
    Staff.objects.filter(pk=org.guide_a.pk).update(store=org.store_a2)

    _job(east_poster, hq_operator)

    assert _posters(east_poster)["a-guide"][0] == "A002"
    assert RenderedPoster.objects.filter(material=east_poster, staff=org.guide_a).count() == 1


def test_a_job_that_crashed_continues_after_its_last_finished_batch(org, east_poster, hq_operator, monkeypatch):
    monkeypatch.setattr(poster_services, "BATCH", 2)
    run = posters_job_start(material=east_poster, by=hq_operator)
    real = poster_services._batch_render
    rendered: list[list[str]] = []

    def crash_on_second_batch(run, template, batch):
        if len(rendered) == 1:
            raise RuntimeError("worker lost")
        rendered.append([m.userid for m in batch])
        return real(run, template, batch)

    monkeypatch.setattr(poster_services, "_batch_render", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        posters_job_run(run_id=run.pk)
    first = _posters(east_poster)
    assert sorted(first) == sorted(rendered[0]) and len(first) == 2
    monkeypatch.setattr(poster_services, "_batch_render", real)

    done = posters_job_run(run_id=run.pk)

    assert done.status == SyncRun.Status.DONE
    assert (done.progress["done"], done.progress["rendered"]) == (3, 3)
    assert {u: v for u, v in _posters(east_poster).items() if u in first} == first  # not redrawn


# -- the admin ------------------------------------------------------------------------------------------------

def _generate(client, material):
    return client.post(reverse("admin:materials_material_changelist"), {
        "action": "posters_generate_selected", "_selected_action": [material.pk], "index": "0"}, follow=True)


def test_hq_starts_the_job_from_the_library_and_sees_its_progress(org, east_poster, hq_operator, client):
    client.force_login(hq_operator)

    response = _generate(client, east_poster)

    run = SyncRun.objects.get(kind=POSTER_JOB_KIND)
    assert run.progress["by"] == hq_operator.pk and run.progress["material_id"] == east_poster.pk
    assert f'id="poster-run-{run.pk}"' in response.content.decode()


def test_a_store_manager_is_not_offered_the_poster_job(org, east_poster, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    page = client.get(reverse("admin:materials_material_changelist"))
    _generate(client, east_poster)

    assert "posters_generate_selected" not in page.content.decode()
    assert not SyncRun.objects.filter(kind=POSTER_JOB_KIND).exists()


def test_a_region_managers_job_from_the_admin_renders_their_region_only(org, hq_operator, region_manager_east,
                                                                       client):
    brand = poster_template_published(by=hq_operator, title="全品牌海报", everyone=True)
    client.force_login(region_manager_east)

    _generate(client, brand)
    posters_job_run(run_id=SyncRun.objects.get(kind=POSTER_JOB_KIND).pk)

    assert sorted(_posters(brand)) == ["a-guide", "a-manager"]


def test_the_admin_shows_a_rendered_poster_only_within_the_viewers_scope(org, east_poster, hq_operator,
                                                                        store_manager_of_a, client):
    south = poster_template_published(by=hq_operator, title="华南海报", regions=[org.south])
    theirs = poster_for(material=south, store=org.store_b, staff=org.guide_b)
    ours = poster_for(material=east_poster, store=org.store_a, staff=org.guide_a)
    client.force_login(store_manager_of_a)

    assert client.get(reverse("admin:materials_renderedposter_image", args=[ours.pk])).status_code == 200
    assert client.get(reverse("admin:materials_renderedposter_image", args=[theirs.pk])).status_code == 404


# -- the QR payload, read once from WeCom's image ----------------------------------------------------------------

@pytest.mark.integration
def test_a_guides_code_made_in_wecom_is_read_once_and_drawn_on_their_poster(org, east_poster, sandbox):
    from customers.acquisition.services import contact_way_create, staff_qr_payloads
    from tests.customers.acquisition.helpers import sandbox_members_load

    sandbox_members_load(sandbox, list(Staff.objects.all()))
    way = contact_way_create(kind=ContactWay.Kind.STAFF, store=org.store_a, staff=org.guide_a)
    assert way.qr_code and not way.qr_payload

    poster = poster_for(material=east_poster, store=org.store_a, staff=org.guide_a)

    way.refresh_from_db()
    assert way.qr_payload.endswith(f"/sandbox/customers/scan?config_id={way.config_id}")
    assert decoded_qr(poster) == [way.qr_payload]
    ContactWay.objects.filter(pk=way.pk).update(qr_code="http://127.0.0.1:9/gone.png")  # not fetched again
    assert staff_qr_payloads(staff_ids=[org.guide_a.pk]) == {org.guide_a.pk: way.qr_payload}


@pytest.mark.integration
def test_a_code_whose_image_cannot_be_fetched_gives_no_qr_this_time(org, east_poster, sandbox):
    from customers.acquisition.services import staff_qr_payloads

    way = code_for(org.guide_a, payload="x")
    ContactWay.objects.filter(pk=way.pk).update(qr_payload="", qr_code="http://127.0.0.1:9/unreachable.png")

    assert staff_qr_payloads(staff_ids=[org.guide_a.pk]) == {}
    assert ContactWay.objects.get(pk=way.pk).qr_payload == ""
