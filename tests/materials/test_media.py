"""WeCom media ids for materials (issue #12): a sender always gets an id WeCom still takes.

Against the sandbox over real HTTP, through the gateway; its clock plays the days (``now`` given to the services
is the sandbox's). Material versions are made through the library's services (file_inspect, file_store).
"""

from __future__ import annotations

import struct
import threading
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from materials.library.models import Material, MaterialKind, MaterialVersion
from materials.library.services import VersionContent, material_create, material_version_add
from materials.media.models import WeComMedia
from materials.media.services import (
    MediaQuotaUsed,
    MediaRefused,
    image_url_for,
    media_id_for,
    media_refresh_due,
)
from portal.wecom.gateway import WeComError, wecom_call
from portal.wecom.models import WeComCall
from tests.materials.files_fixtures import mp4_bytes, pdf_bytes, png_bytes

DAY = 86400


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def corp(sandbox):
    """A store with one member and a customer, so mass sends and Moments have someone to reach."""
    sandbox.do("config", moment_per_minute=100, moment_job_seconds=5, mass_dispatch_seconds=0)
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店", "parentid": 1}],
               members=[{"userid": "zhangsan", "name": "张三", "department": [2]}])
    sandbox.do("customers/load", customers=[{"external_userid": "wmC1", "name": "客户1"}],
               follows=[{"userid": "zhangsan", "external_userid": "wmC1"}])
    return sandbox


def sandbox_now(sandbox) -> datetime:
    return datetime.fromtimestamp(sandbox.get("state")["now"], tz=UTC)


def version_of(by, kind: str, data: bytes, file_name: str) -> MaterialVersion:
    material = material_create(by=by, kind=kind, title=f"素材 {file_name}")
    return material_version_add(material=material, by=by, content=VersionContent(data=data, file_name=file_name))


def uploads(endpoint: str) -> int:
    return WeComCall.objects.filter(endpoint=endpoint, errcode=0).count()


def mass_send_with(media_id: str) -> dict:
    return wecom_call("externalcontact/add_msg_template", caller="test", data={
        "chat_type": "single", "sender": "zhangsan", "external_userid": ["wmC1"], "text": {"content": "新品"},
        "attachments": [{"msgtype": "image", "image": {"media_id": media_id}}]})


def moment_with(media_id: str, kind: str = "image") -> dict:
    return wecom_call("externalcontact/add_moment_task", caller="test", data={
        "text": {"content": "新品上市"}, "attachments": [{"msgtype": kind, kind: {"media_id": media_id}}]})


def padded_png(extra: int) -> bytes:
    """A valid small PNG made ``extra`` bytes bigger by a private ancillary chunk (decoders skip it)."""
    png = png_bytes(40, 30)
    body = b"\x00" * extra
    chunk = struct.pack(">I", len(body)) + b"prVt" + body + struct.pack(">I", zlib.crc32(b"prVt" + body))
    return png[:33] + chunk + png[33:]  # after the signature (8) and IHDR (25)


@pytest.fixture
def poster(hq_operator) -> MaterialVersion:
    return version_of(hq_operator, MaterialKind.IMAGE, png_bytes(750, 1334), "门店海报.png")


# -- temporary ids ------------------------------------------------------------------------------------------
def test_first_use_uploads_the_version_and_the_second_use_reuses_its_id(corp, poster):
    first = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    second = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    assert first == second
    assert uploads("media/upload") == 1
    assert mass_send_with(first)["msgid"]


def test_the_id_expires_three_days_after_wecoms_created_at(corp, poster):
    media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    media = WeComMedia.objects.get(version=poster, purpose="message")
    assert media.media_type == "image" and media.last_error == ""
    assert abs((media.expires_at - sandbox_now(corp)) - timedelta(days=3)) < timedelta(seconds=5)


def test_an_id_with_less_than_six_hours_left_is_uploaded_again(corp, poster):
    old = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    corp.do("clock/advance", seconds=3 * DAY - 5 * 3600)  # WeCom still takes the old id for 5 hours
    new = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    assert new != old and uploads("media/upload") == 2
    assert mass_send_with(old)["msgid"]  # it was still valid: the margin, not the expiry, made the upload


def test_no_expired_id_is_handed_out_after_three_days(corp, poster):
    old = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    corp.do("clock/advance", seconds=3 * DAY)
    with pytest.raises(WeComError) as caught:
        mass_send_with(old)
    assert caught.value.errcode == 40007
    new = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    assert new != old
    assert mass_send_with(new)["msgid"]


def test_a_file_version_is_uploaded_as_a_file_under_its_own_name(corp, hq_operator):
    menu = version_of(hq_operator, MaterialKind.FILE, pdf_bytes(), "秋季菜单.pdf")
    media_id = media_id_for(version=menu, purpose="message", now=sandbox_now(corp))
    assert WeComMedia.objects.get(version=menu).media_type == "file"
    sent = wecom_call("media/get", method="get", params={"media_id": media_id}, caller="test")
    assert "%E7%A7%8B%E5%AD%A3%E8%8F%9C%E5%8D%95.pdf" in sent.headers["Content-Disposition"]  # 秋季菜单.pdf


# -- Moments ------------------------------------------------------------------------------------------------
def test_a_moments_id_comes_from_upload_attachment_and_add_moment_task_takes_it(corp, poster):
    media_id = media_id_for(version=poster, purpose="moments", now=sandbox_now(corp))
    assert uploads("media/upload_attachment") == 1 and uploads("media/upload") == 0
    assert moment_with(media_id)["jobid"]


def test_add_moment_task_refuses_a_message_id_with_41072(corp, poster):
    message_id = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    with pytest.raises(WeComError) as caught:
        moment_with(message_id)
    assert caught.value.errcode == 41072


def test_a_version_keeps_one_id_per_purpose(corp, poster):
    message_id = media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    moments_id = media_id_for(version=poster, purpose="moments", now=sandbox_now(corp))
    assert message_id != moments_id
    assert sorted(WeComMedia.objects.filter(version=poster).values_list("purpose", flat=True)) == ["message",
                                                                                                   "moments"]


def test_a_moments_video_is_uploaded_as_a_video_attachment(corp, hq_operator):
    clip = version_of(hq_operator, MaterialKind.VIDEO, mp4_bytes(seconds=2), "开业.mp4")
    media_id = media_id_for(version=clip, purpose="moments", now=sandbox_now(corp))
    assert moment_with(media_id, kind="video")["jobid"]


# -- limits, before any call --------------------------------------------------------------------------------
def test_a_moments_image_over_1555200_pixels_is_refused_before_any_call(corp, hq_operator):
    wide = version_of(hq_operator, MaterialKind.IMAGE, png_bytes(1441, 1080), "横幅.png")
    with pytest.raises(MediaRefused, match="1440×1080.*1441×1080"):
        media_id_for(version=wide, purpose="moments", now=sandbox_now(corp))
    assert not WeComCall.objects.exists()


def test_the_moments_pixel_limit_does_not_apply_to_mass_sends(corp, hq_operator):
    wide = version_of(hq_operator, MaterialKind.IMAGE, png_bytes(1441, 1080), "横幅.png")
    assert mass_send_with(media_id_for(version=wide, purpose="message", now=sandbox_now(corp)))["msgid"]


def test_a_moments_video_over_30_seconds_is_refused_before_any_call(corp, hq_operator):
    long_clip = version_of(hq_operator, MaterialKind.VIDEO, mp4_bytes(seconds=31, fps=1), "长视频.mp4")
    with pytest.raises(MediaRefused, match="最长 30 秒"):
        media_id_for(version=long_clip, purpose="moments", now=sandbox_now(corp))
    assert not WeComCall.objects.exists()


def test_a_file_cannot_go_to_moments(corp, hq_operator):
    menu = version_of(hq_operator, MaterialKind.FILE, pdf_bytes(), "菜单.pdf")
    with pytest.raises(MediaRefused, match="朋友圈只能附图片或视频"):
        media_id_for(version=menu, purpose="moments", now=sandbox_now(corp))
    assert not WeComCall.objects.exists()


def test_an_image_over_10_mb_is_refused_before_any_call(corp, hq_operator, settings):
    settings.XIAOER_MATERIAL_MAX_BYTES = {**settings.XIAOER_MATERIAL_MAX_BYTES, "image": 30 * 1024 * 1024}
    big = version_of(hq_operator, MaterialKind.IMAGE, padded_png(10 * 1024 * 1024), "大图.png")
    assert big.size > 10 * 1024 * 1024
    with pytest.raises(MediaRefused, match="企业微信的图片最大 10.0"):
        media_id_for(version=big, purpose="message", now=sandbox_now(corp))
    assert not WeComCall.objects.exists()


def test_a_version_without_a_file_is_refused(corp, hq_operator):
    script = material_create(by=hq_operator, kind=MaterialKind.SCRIPT, title="开业话术")
    version = material_version_add(material=script, by=hq_operator, content=VersionContent(text="您好"))
    with pytest.raises(MediaRefused, match="没有文件"):
        media_id_for(version=version, purpose="message")
    assert not WeComCall.objects.exists()


def test_an_unknown_purpose_is_a_programming_error(poster):
    with pytest.raises(ValueError, match="purpose"):
        media_id_for(version=poster, purpose="image_url")


def test_a_wecom_refusal_is_recorded_and_raised(corp, poster):
    corp.do("faults", endpoint="media/upload", errcode=40009, times=1)
    with pytest.raises(WeComError) as caught:
        media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    assert caught.value.errcode == 40009
    media = WeComMedia.objects.get(version=poster, purpose="message")
    assert media.media_id == "" and "40009" in media.last_error
    assert media_id_for(version=poster, purpose="message", now=sandbox_now(corp))  # next time it works
    media.refresh_from_db()
    assert media.last_error == ""


# -- the refresh job ----------------------------------------------------------------------------------------
def test_the_refresh_job_reuploads_only_ids_due_of_current_versions_used_recently(corp, hq_operator):
    due, idle, replaced = (version_of(hq_operator, MaterialKind.IMAGE, png_bytes(100 + i, 100), f"图{i}.png")
                           for i in range(3))
    for version in (due, idle, replaced):
        media_id_for(version=version, purpose="message", now=sandbox_now(corp))
    WeComMedia.objects.filter(version=idle).update(last_used_at=sandbox_now(corp) - timedelta(days=4))
    material_version_add(material=Material.objects.get(pk=replaced.material_id), by=hq_operator,
                         content=VersionContent(data=png_bytes(300, 100), file_name="新图.png"))
    corp.do("clock/advance", seconds=int(2.6 * DAY))  # 10 hours left: inside the 12-hour window
    fresh = version_of(hq_operator, MaterialKind.IMAGE, png_bytes(200, 100), "新素材.png")
    media_id_for(version=fresh, purpose="message", now=sandbox_now(corp))
    before = dict(WeComMedia.objects.values_list("version_id", "media_id"))

    assert media_refresh_due(now=sandbox_now(corp)) == 1
    after = dict(WeComMedia.objects.values_list("version_id", "media_id"))
    assert [v for v in before if before[v] != after[v]] == [due.pk]
    assert uploads("media/upload") == 5
    corp.do("clock/advance", seconds=int(0.5 * DAY))  # the old id has expired; the refreshed one still works
    assert mass_send_with(after[due.pk])["msgid"]


def test_the_refresh_job_twice_uploads_once(corp, poster):
    media_id_for(version=poster, purpose="moments", now=sandbox_now(corp))
    corp.do("clock/advance", seconds=int(2.6 * DAY))
    assert media_refresh_due(now=sandbox_now(corp)) == 1
    assert media_refresh_due(now=sandbox_now(corp)) == 0
    assert uploads("media/upload_attachment") == 2


def test_the_refresh_job_records_wecoms_refusal_and_raises_it(corp, poster):
    media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
    corp.do("clock/advance", seconds=int(2.6 * DAY))
    corp.do("faults", endpoint="media/upload", errcode=40009, times=1)
    with pytest.raises(WeComError):
        media_refresh_due(now=sandbox_now(corp))
    assert "40009" in WeComMedia.objects.get(version=poster).last_error


# -- two senders at once ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_use", [True, False], ids=["first use", "after expiry"])
def test_two_concurrent_senders_upload_once(corp, hq_operator, first_use):
    poster = version_of(hq_operator, MaterialKind.IMAGE, png_bytes(750, 1334), "门店海报.png")
    if not first_use:  # the row exists with an expired id: both senders find it stale
        media_id_for(version=poster, purpose="message", now=sandbox_now(corp))
        corp.do("clock/advance", seconds=3 * DAY)
    WeComCall.objects.all().delete()
    now = sandbox_now(corp)
    start = threading.Barrier(2)
    ids: list[str] = []

    def send() -> None:
        try:
            start.wait(timeout=10)
            ids.append(media_id_for(version=poster, purpose="message", now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == 2 and ids[0] == ids[1]
    assert uploads("media/upload") == 1


# -- permanent image URLs -----------------------------------------------------------------------------------
def test_an_image_url_is_uploaded_once_ever(corp, poster):
    url = image_url_for(version=poster)
    corp.do("clock/advance", seconds=30 * DAY)
    assert image_url_for(version=poster, now=sandbox_now(corp)) == url
    assert uploads("media/uploadimg") == 1


def test_the_image_url_quota_refuses_saying_when_it_resets(corp, hq_operator, settings):
    settings.XIAOER_WECOM_UPLOADIMG_PER_DAY = 1
    first, second = (version_of(hq_operator, MaterialKind.IMAGE, png_bytes(60 + i, 60), f"图{i}.png")
                     for i in range(2))
    now = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # 18:00 in Beijing
    image_url_for(version=first, now=now)
    with pytest.raises(MediaQuotaUsed, match=r"今天.*每天 1 张.*2026-05-02 00:00 恢复"):
        image_url_for(version=second, now=now)
    assert uploads("media/uploadimg") == 1
    assert image_url_for(version=second, now=now + timedelta(hours=6))  # 00:00 in Beijing: a new day


def test_the_image_url_quota_is_also_monthly(corp, hq_operator, settings):
    settings.XIAOER_WECOM_UPLOADIMG_PER_MONTH = 1
    first, second = (version_of(hq_operator, MaterialKind.IMAGE, png_bytes(60 + i, 60), f"图{i}.png")
                     for i in range(2))
    image_url_for(version=first, now=datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    with pytest.raises(MediaQuotaUsed, match=r"本月.*2026-06-01 00:00 恢复"):
        image_url_for(version=second, now=datetime(2026, 5, 20, 10, 0, tzinfo=UTC))


def test_an_image_url_needs_an_image_of_at_most_2_mb(corp, hq_operator):
    big = version_of(hq_operator, MaterialKind.IMAGE, padded_png(2 * 1024 * 1024), "大图.png")
    with pytest.raises(MediaRefused, match="最大 2 MB"):
        image_url_for(version=big)
    menu = version_of(hq_operator, MaterialKind.FILE, pdf_bytes(), "菜单.pdf")
    with pytest.raises(MediaRefused, match="JPG 或 PNG"):
        image_url_for(version=menu)
    assert not WeComCall.objects.exists()
