"""HQ curates image materials in the admin: uploads judged by content, thumbnails, scoped files."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from materials.library.models import Material
from materials.library.services import VersionContent, material_create, material_publish, material_version_add

pytestmark = pytest.mark.django_db


def _png(color="red", size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _image_material(by, *, data: bytes | None = None) -> Material:
    material = material_create(by=by, kind="image", title="门店海报")
    material_version_add(material=material, by=by, content=VersionContent(data=data or _png(), file_name="poster.png"))
    material_publish(material=material, by=by)
    material.refresh_from_db()
    return material


def _admin_post(client, user, data):
    client.force_login(user)
    return client.post(reverse("admin:materials_material_add"), data, follow=True)


def test_an_image_version_records_its_facts_and_a_thumbnail(hq_operator):
    version = _image_material(hq_operator).current_version
    assert (version.mime, version.width, version.height) == ("image/png", 64, 48)
    assert version.file.startswith("materials/") and version.thumbnail.startswith("thumbnails/")


def test_the_same_bytes_uploaded_twice_are_stored_once(hq_operator):
    data = _png("blue")
    first = _image_material(hq_operator, data=data).current_version
    second = _image_material(hq_operator, data=data).current_version
    assert first.file == second.file and first.pk != second.pk


def test_hq_uploads_an_image_material_in_the_admin(client, hq_operator):
    response = _admin_post(client, hq_operator, {
        "kind": "image", "title": "双十一海报", "description": "", "audience_all": "on",
        "upload": SimpleUploadedFile("双十一.png", _png(), content_type="image/png"), "version_note": "初版"})
    assert response.status_code == 200
    material = Material.objects.get(title="双十一海报")
    assert material.current_version.number == 1 and material.audience_all


def test_a_pdf_named_as_a_jpeg_is_refused_in_the_admin_and_nothing_is_created(client, hq_operator):
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"
    response = _admin_post(client, hq_operator, {
        "kind": "image", "title": "伪装的文件", "upload": SimpleUploadedFile("photo.jpg", pdf)})
    assert "伪装的文件" not in {m.title for m in Material.objects.all()}
    assert "文件内容是 PDF，但文件名是 .jpg" in response.content.decode()


def test_an_svg_with_script_is_refused(hq_operator):
    from materials.library.files import MaterialFileRefused

    material = material_create(by=hq_operator, kind="image", title="矢量图")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with pytest.raises(MaterialFileRefused, match="SVG"):
        material_version_add(material=material, by=hq_operator, content=VersionContent(data=svg, file_name="a.svg"))
    assert not material.versions.exists()


def test_a_store_from_another_region_cannot_fetch_the_file_by_guessing_its_url(client, org, hq_operator,
                                                                               region_manager_east):
    from materials.library.services import material_audience_set

    material = _image_material(hq_operator)
    material_audience_set(material=material, by=hq_operator, regions=[org.south])
    client.force_login(region_manager_east)
    url = reverse("admin:materials_material_version_file", args=[material.pk, material.current_version_id])
    assert client.get(url).status_code == 404
    assert client.get(reverse("admin:materials_material_thumbnail", args=[material.pk])).status_code == 404


def test_a_region_manager_downloads_a_file_of_a_material_for_their_region(client, org, hq_operator,
                                                                          region_manager_east):
    from materials.library.services import material_audience_set

    material = _image_material(hq_operator)
    material_audience_set(material=material, by=hq_operator, regions=[org.east])
    client.force_login(region_manager_east)
    url = reverse("admin:materials_material_version_file", args=[material.pk, material.current_version_id])
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
