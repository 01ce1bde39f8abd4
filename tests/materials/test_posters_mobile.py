"""「我的海报」on the mobile page (issue #12): a staff member opens a poster template and gets their own poster —
their store, their name, their own QR code — as a JPEG to share or save, each use recorded; a template of another
region, an expired, archived or draft one, or a material that is not a poster template, is not found, exactly as
an id that does not exist (URL guessing)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from materials.library.models import Material
from materials.library.services import material_archive
from materials.posters.models import RenderedPoster
from materials.usage.services import QUEUE_KEY
from tests.materials.helpers import poster_template_published, script_published
from tests.materials.poster_helpers import code_for, decoded_qr, payload_of


def _url(pk: int) -> str:
    return reverse("mobile:material_poster", args=[pk])


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _missing_pk() -> int:
    return (Material.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000


def _uses(queue) -> list[list]:
    return [json.loads(raw) for raw in queue.lrange(QUEUE_KEY, 0, -1)]


def test_a_guide_gets_their_own_poster_with_their_own_qr_code(org, east_poster, staff_of_a, client, queue):
    code_for(org.guide_a)
    client.force_login(staff_of_a)

    response = client.get(_url(east_poster.pk))

    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(_body(response))).format == "JPEG"
    poster = RenderedPoster.objects.get(material=east_poster, staff=org.guide_a)
    assert poster.store_id == org.store_a.pk
    assert decoded_qr(poster) == [payload_of(org.guide_a)]


def test_opening_ones_poster_records_a_share_by_that_guide_at_their_store(org, east_poster, staff_of_a, client,
                                                                          queue):
    client.force_login(staff_of_a)

    client.get(_url(east_poster.pk))

    [use] = _uses(queue)
    assert (use[1], use[2], use[3], use[4], use[6]) == (east_poster.pk, east_poster.current_version_id,
                                                        org.store_a.pk, org.guide_a.pk, "share")


def test_downloading_ones_poster_saves_it_as_a_file_and_records_a_download(org, east_poster, staff_of_a, client,
                                                                           queue):
    client.force_login(staff_of_a)

    response = client.get(_url(east_poster.pk), {"download": "1"})

    assert response["Content-Disposition"].startswith("attachment")
    assert [use[6] for use in _uses(queue)] == ["download"]


def test_the_store_manager_gets_their_own_poster_not_their_guides(org, east_poster, store_manager_of_a, client):
    code_for(org.guide_a)
    code_for(org.manager_a)
    client.force_login(store_manager_of_a)

    assert client.get(_url(east_poster.pk)).status_code == 200

    poster = RenderedPoster.objects.get(material=east_poster)
    assert poster.staff_id == org.manager_a.pk and decoded_qr(poster) == [payload_of(org.manager_a)]


def test_the_same_poster_is_served_again_without_rendering_it_again(org, east_poster, staff_of_a, client):
    client.force_login(staff_of_a)
    client.get(_url(east_poster.pk))
    first = RenderedPoster.objects.get(material=east_poster, staff=org.guide_a)

    client.get(_url(east_poster.pk))

    again = RenderedPoster.objects.get(material=east_poster, staff=org.guide_a)
    assert (again.file, again.rendered_at) == (first.file, first.rendered_at)


def _like_missing(client, material) -> None:
    theirs, nobodys = client.get(_url(material.pk)), client.get(_url(_missing_pk()))
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.content.replace(str(material.pk).encode(), b"") == nobodys.content.replace(
        str(_missing_pk()).encode(), b"")


def test_guessing_the_url_of_another_regions_poster_template_is_not_found(org, hq_operator, staff_of_a, client,
                                                                          queue):
    south = poster_template_published(by=hq_operator, title="华南海报", regions=[org.south])
    client.force_login(staff_of_a)

    _like_missing(client, south)
    assert not RenderedPoster.objects.exists() and _uses(queue) == []


def test_a_store_of_another_region_cannot_see_the_regions_poster(org, east_poster, client):
    from stores.models import Role
    from tests.conftest import _persona

    guide_b = _persona("guide_b", Role.STORE_STAFF, store=org.store_b, staff=org.guide_b)
    client.force_login(guide_b)

    _like_missing(client, east_poster)


def test_an_expired_poster_template_is_not_found(org, east_poster, staff_of_a, client):
    Material.objects.filter(pk=east_poster.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client.force_login(staff_of_a)

    _like_missing(client, east_poster)


def test_an_archived_poster_template_is_not_found(org, east_poster, hq_operator, staff_of_a, client):
    material_archive(material=east_poster, by=hq_operator)
    client.force_login(staff_of_a)

    _like_missing(client, east_poster)


def test_a_draft_poster_template_is_not_found(org, hq_operator, staff_of_a, client):
    draft = poster_template_published(by=hq_operator, title="草稿海报", regions=[org.east], publish=False)
    client.force_login(staff_of_a)

    _like_missing(client, draft)


def test_a_material_that_is_not_a_poster_template_has_no_poster(org, hq_operator, staff_of_a, client):
    script = script_published(by=hq_operator, regions=[org.east])
    client.force_login(staff_of_a)

    _like_missing(client, script)


@pytest.mark.parametrize("persona", ["region_manager_east", "franchisee_owner"])
def test_a_viewer_without_a_store_of_their_own_has_no_poster(persona, request, east_poster, client):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(_url(east_poster.pk)).status_code == 404


def test_a_departed_staff_member_gets_no_poster(org, east_poster, departed_staff_of_a, client):
    client.force_login(departed_staff_of_a)

    response = client.get(_url(east_poster.pk))

    assert response.status_code in (302, 404) and "image" not in response.get("Content-Type", "")
    assert not RenderedPoster.objects.exists()


def test_signed_out_the_poster_page_asks_to_sign_in(east_poster, client):
    response = client.get(_url(east_poster.pk))

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_templates_page_offers_a_guide_their_own_poster_and_hq_only_the_background(east_poster, staff_of_a,
                                                                                    hq_operator, client):
    page = reverse("mobile:material", args=[east_poster.pk])
    client.force_login(staff_of_a)
    html = client.get(page).content.decode()
    assert f'href="{_url(east_poster.pk)}"' in html and 'id="download"' not in html

    client.force_login(hq_operator)
    html = client.get(page).content.decode()
    assert 'id="my-poster"' not in html and 'id="download"' in html
