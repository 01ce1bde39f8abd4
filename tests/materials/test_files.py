"""Material files: judged by their content, refused with a reason a user can act on, thumbnailed, stored under
their digest, and downloaded only through a response a scoped view returns."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from materials.library.files import FileFacts, MaterialFileRefused, file_inspect, thumbnail_make
from materials.library.storage import (
    StorageUnavailable,
    file_discard,
    file_name_for,
    file_read,
    file_response,
    file_store,
)
from portal.errors import DomainError
from tests.materials.files_fixtures import (
    SVG_WITH_SCRIPT,
    docx_bytes,
    jpeg_bytes,
    mp4_bytes,
    pdf_bytes,
    png_bomb_bytes,
    png_bytes,
)

MB = 1024 * 1024


def refusal(**kwargs) -> str:
    with pytest.raises(MaterialFileRefused) as caught:
        file_inspect(**kwargs)
    return str(caught.value)


def thumbnail_of(data: bytes, filename: str, kind: str) -> Image.Image:
    thumb = thumbnail_make(data=data, facts=file_inspect(data=data, filename=filename, kind=kind))
    assert thumb is not None
    image = Image.open(io.BytesIO(thumb))
    assert image.format == "JPEG"
    return image


# -- accepted, with the right facts ------------------------------------------------------------------------

def test_a_jpeg_poster_is_accepted_with_its_size_dimensions_and_digest():
    data = jpeg_bytes(200, 100)
    facts = file_inspect(data=data, filename="双十一海报.jpg", kind="image")
    assert facts == FileFacts(mime="image/jpeg", extension="jpg", size=len(data),
                              sha256=hashlib.sha256(data).hexdigest(), width=200, height=100, pages=None,
                              duration_seconds=None)


def test_a_jpeg_named_dot_jpeg_is_accepted_as_jpg():
    assert file_inspect(data=jpeg_bytes(), filename="poster.JPEG", kind="image").extension == "jpg"


def test_a_png_poster_template_background_is_accepted_as_png():
    facts = file_inspect(data=png_bytes(120, 80), filename="背景.png", kind="poster_template")
    assert (facts.mime, facts.extension, facts.width, facts.height) == ("image/png", "png", 120, 80)


def test_a_pdf_is_accepted_with_its_page_count():
    facts = file_inspect(data=pdf_bytes(pages=3), filename="门店手册.pdf", kind="file")
    assert (facts.mime, facts.extension, facts.pages) == ("application/pdf", "pdf", 3)


def test_an_mp4_video_is_accepted_with_its_dimensions_and_duration():
    facts = file_inspect(data=mp4_bytes(seconds=1, width=64, height=48), filename="新品.mp4", kind="video")
    assert (facts.mime, facts.extension, facts.width, facts.height) == ("video/mp4", "mp4", 64, 48)
    assert facts.duration_seconds == pytest.approx(1.0, abs=0.2)


def test_a_word_document_is_accepted_as_docx():
    facts = file_inspect(data=docx_bytes(), filename="话术.docx", kind="file")
    assert facts.mime == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert (facts.extension, facts.width, facts.pages) == ("docx", None, None)


def test_a_file_without_an_extension_is_judged_by_its_content():
    assert file_inspect(data=pdf_bytes(), filename="门店手册", kind="file").extension == "pdf"


# -- refused, each with its reason -------------------------------------------------------------------------

def test_a_pdf_named_jpg_is_refused_saying_what_it_is_and_what_its_name_says():
    message = refusal(data=pdf_bytes(), filename="海报.jpg", kind="image")
    assert "文件内容是 PDF，但文件名是 .jpg" in message


def test_a_pdf_uploaded_as_an_image_is_refused_naming_the_formats_images_take():
    message = refusal(data=pdf_bytes(), filename="海报.pdf", kind="image")
    assert "文件内容是 PDF，图片素材只接受 JPG、PNG" in message


def test_a_mov_or_other_non_mp4_content_is_refused_as_a_video():
    message = refusal(data=png_bytes(), filename="clip.png", kind="video")
    assert "视频素材只接受 MP4" in message


def test_an_empty_file_is_refused():
    assert "文件是空的" in refusal(data=b"", filename="海报.jpg", kind="image")


def test_a_file_over_its_kinds_limit_is_refused_with_the_limit_and_its_size(settings):
    settings.XIAOER_MATERIAL_MAX_BYTES = {**settings.XIAOER_MATERIAL_MAX_BYTES, "image": 1024}
    message = refusal(data=jpeg_bytes(400, 400), filename="海报.jpg", kind="image")
    assert message.startswith("文件过大：图片素材上限为 1.0") and "请压缩后再上传" in message


def test_the_default_limits_are_wecoms_media_upload_limits(settings):
    assert settings.XIAOER_MATERIAL_MAX_BYTES == {"image": 10 * MB, "poster_template": 10 * MB, "video": 10 * MB,
                                                  "file": 20 * MB}


def test_a_file_one_byte_over_the_limit_is_refused_and_one_at_the_limit_is_not(settings):
    data = pdf_bytes()
    settings.XIAOER_MATERIAL_MAX_BYTES = {**settings.XIAOER_MATERIAL_MAX_BYTES, "file": len(data)}
    assert file_inspect(data=data, filename="a.pdf", kind="file").size == len(data)
    settings.XIAOER_MATERIAL_MAX_BYTES = {**settings.XIAOER_MATERIAL_MAX_BYTES, "file": len(data) - 1}
    assert "文件过大" in refusal(data=data, filename="a.pdf", kind="file")


def test_an_svg_with_script_is_refused_because_svg_can_carry_script():
    message = refusal(data=SVG_WITH_SCRIPT, filename="logo.svg", kind="image")
    assert "不接受 SVG 图片：SVG 里可以带脚本，企业微信也不接收" in message


def test_an_svg_named_png_is_refused_as_svg():
    assert "不接受 SVG" in refusal(data=SVG_WITH_SCRIPT, filename="logo.png", kind="image")


def test_content_nobody_recognises_is_refused_naming_the_formats_the_kind_takes():
    message = refusal(data="只是一段文字".encode(), filename="说明.pdf", kind="file")
    assert message.startswith("无法识别文件内容：文件素材只接受 PDF、DOCX")


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    data = png_bomb_bytes(100_000, 100_000)
    assert len(data) < 200
    assert "图片像素过多" in refusal(data=data, filename="bomb.png", kind="image")


def test_an_image_past_the_pixel_setting_is_refused_even_where_pillow_would_only_warn(settings):
    settings.XIAOER_MATERIAL_MAX_PIXELS = 15_000  # 200 × 100 = 20,000: under twice the limit, Pillow only warns
    message = refusal(data=jpeg_bytes(200, 100), filename="海报.jpg", kind="image")
    assert message == "图片像素过多：上限为 15,000 像素（宽×高），请缩小尺寸后再上传"


def test_the_pixel_guard_is_set_from_settings_not_left_to_pillows_default(settings):
    settings.XIAOER_MATERIAL_MAX_PIXELS = 1_234_567
    file_inspect(data=png_bytes(), filename="a.png", kind="image")
    assert Image.MAX_IMAGE_PIXELS == 1_234_567


def test_a_truncated_jpeg_is_refused_as_damaged():
    data = jpeg_bytes(400, 300)
    message = refusal(data=data[: len(data) // 2], filename="海报.jpg", kind="image")
    assert message.startswith("图片已损坏或不完整")


def test_a_png_with_a_broken_body_is_refused_as_damaged():
    data = bytearray(png_bytes(120, 80))
    idat = data.index(b"IDAT")
    data[idat + 8: idat + 40] = b"\xff" * 32
    assert refusal(data=bytes(data), filename="a.png", kind="image").startswith("图片已损坏或不完整")


def test_a_corrupt_pdf_is_refused():
    data = b"%PDF-1.7\n" + bytes(range(256)) * 8
    assert refusal(data=data, filename="手册.pdf", kind="file").startswith("PDF 文件已损坏或设置了密码")


def test_a_corrupt_mp4_is_refused():
    data = mp4_bytes()
    broken = data[:40] + b"\x00" * (len(data) - 40)  # the ftyp box survives, the rest is gone
    assert refusal(data=broken, filename="新品.mp4", kind="video").startswith("视频文件已损坏或无法解码")


def test_a_truncated_docx_is_refused():
    data = docx_bytes()
    assert refusal(data=data[:-30], filename="话术.docx", kind="file").startswith("文件已损坏或不完整")


def test_a_kind_without_files_is_refused():
    assert refusal(data=png_bytes(), filename="a.png", kind="script") == "这类素材不带文件"


def test_a_refusal_is_a_domain_error_so_every_surface_shows_it():
    assert issubclass(MaterialFileRefused, DomainError) and issubclass(StorageUnavailable, DomainError)


# -- thumbnails ---------------------------------------------------------------------------------------------

def test_an_images_thumbnail_is_a_jpeg_at_most_320_px_on_its_long_side():
    assert thumbnail_of(jpeg_bytes(1000, 500), "a.jpg", "image").size == (320, 160)


def test_an_images_thumbnail_is_turned_as_its_exif_orientation_says():
    image = thumbnail_of(jpeg_bytes(400, 200, orientation=6), "a.jpg", "image")  # 6: rotate 90° to stand up
    assert image.size == (160, 320)


def test_a_small_image_is_not_enlarged_for_its_thumbnail():
    assert thumbnail_of(png_bytes(120, 80), "a.png", "image").size == (120, 80)


def test_a_transparent_png_thumbnail_is_a_jpeg_on_white():
    image = thumbnail_of(png_bytes(100, 100, mode="RGBA"), "a.png", "image")
    assert image.getpixel((50, 50)) == pytest.approx((255, 255, 255), abs=3)


def test_a_pdfs_thumbnail_is_its_first_page_at_most_320_px():
    image = thumbnail_of(pdf_bytes(), "a.pdf", "file")
    assert max(image.size) == 320 and image.size[1] > image.size[0]  # A4 stands up


def test_a_videos_thumbnail_is_its_first_frame_as_a_jpeg():
    assert thumbnail_of(mp4_bytes(width=64, height=48), "a.mp4", "video").size == (64, 48)


def test_an_office_file_has_no_thumbnail():
    data = docx_bytes()
    assert thumbnail_make(data=data, facts=file_inspect(data=data, filename="a.docx", kind="file")) is None


# -- the folder store (MEDIA_ROOT) --------------------------------------------------------------------------

@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    return tmp_path


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def pdf_with_facts() -> tuple[bytes, FileFacts]:
    data = pdf_bytes()
    return data, file_inspect(data=data, filename="a.pdf", kind="file")


def test_a_stored_file_is_named_by_its_digest_and_reads_back_the_same(media_root):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    assert name == f"materials/{facts.sha256[:2]}/{facts.sha256}.pdf"
    assert file_read(name=name) == data


def test_storing_the_same_bytes_twice_keeps_one_file(media_root):
    data, facts = pdf_with_facts()
    assert file_store(data=data, facts=facts) == file_store(data=data, facts=facts)
    assert len(stored_files(media_root)) == 1


def test_a_write_that_fails_midway_leaves_nothing_and_says_the_store_is_unavailable(media_root, monkeypatch):
    data, facts = pdf_with_facts()

    def chunks_then_disk_full(self, chunk_size=None):
        yield data[:100]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ContentFile, "chunks", chunks_then_disk_full)
    with pytest.raises(StorageUnavailable, match="文件存储暂时不可用，文件没有保存"):
        file_store(data=data, facts=facts)
    assert stored_files(media_root) == []


def test_a_half_written_leftover_is_replaced_by_the_next_store_of_the_same_bytes(media_root):
    data, facts = pdf_with_facts()
    leftover = media_root / file_name_for(facts=facts)
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(data[:100])
    name = file_store(data=data, facts=facts)
    assert file_read(name=name) == data and len(stored_files(media_root)) == 1


def test_storing_bytes_the_facts_do_not_describe_is_a_programming_error(media_root):
    data, facts = pdf_with_facts()
    with pytest.raises(ValueError):
        file_store(data=data + b"x", facts=facts)


def test_a_discarded_file_is_gone_and_discarding_it_again_does_not_raise(media_root):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    file_discard(name=name)
    file_discard(name=name)
    assert stored_files(media_root) == []


def test_discarding_never_raises_even_when_the_store_fails(media_root, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    def broken(self, name):
        raise OSError("read-only file system")

    monkeypatch.setattr(FileSystemStorage, "delete", broken)
    file_discard(name="materials/ab/whatever.pdf")


def test_reading_a_file_the_store_no_longer_has_says_so(media_root):
    with pytest.raises(StorageUnavailable, match="找不到这个素材文件"):
        file_read(name="materials/ab/missing.pdf")


def test_a_download_streams_the_file_with_its_chinese_name_as_an_attachment(media_root):
    data, facts = pdf_with_facts()
    response = file_response(name=file_store(data=data, facts=facts), download_name="门店手册 2026.pdf",
                             content_type=facts.mime, inline=False)
    assert b"".join(response.streaming_content) == data  # type: ignore[attr-defined]
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''%E9%97%A8%E5%BA%97%E6%89%8B%E5%86%8C%202026.pdf")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response


@pytest.mark.django_db  # closing a response sends request_finished, which checks the database connection
def test_a_file_shown_inline_is_sandboxed(media_root):
    data, facts = pdf_with_facts()
    response = file_response(name=file_store(data=data, facts=facts), download_name="手册.pdf",
                             content_type=facts.mime, inline=True)
    response.close()
    assert re.match(r"inline; filename\*=utf-8''", response["Content-Disposition"])
    assert response["Content-Security-Policy"] == "sandbox"


def test_a_download_of_a_file_the_store_no_longer_has_is_not_found(media_root):
    from django.http import Http404

    with pytest.raises(Http404):
        file_response(name="materials/ab/missing.pdf", download_name="a.pdf", content_type="application/pdf",
                      inline=False)


def test_material_files_are_not_served_from_media_url(media_root, client):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    assert (media_root / name).is_file()
    response = client.get(f"/media/{name}")
    assert response.status_code == 404 and data not in response.content
