"""WeCom media ids for material versions: always hand back one that is valid (issue #12).

Senders call ``media_id_for`` right before a send (mass sends: image/video/file attachments and a miniprogram's
pic_media_id; Moments: ``purpose="moments"``) and ``image_url_for`` where a permanent URL is needed. A
temporary id lasts 3 days from WeCom's ``created_at``: it is uploaded on first use, kept with its expiry,
re-uploaded by the beat job (``media_refresh_due``) before it expires while the version is current and used,
and never handed out when it has less than ``MEDIA_SAFETY_MARGIN`` left (a send being confirmed later still
finds it valid). One upload per (version, purpose) at a time: concurrent senders wait for the first one's id.

WeCom's limits are checked here, in our words, before any call: media/upload image ≤ 10 MB JPG/PNG, video
≤ 10 MB MP4, file ≤ 20 MB, every file > 5 bytes; Moments (upload_attachment, attachment_type 1) images and
videos only, image ≤ 1,555,200 pixels (1440 × 1080), video ≤ 30 s (WECOM.md; the sandbox checks them at
upload); media/uploadimg JPG/PNG ≤ 2 MB, at most XIAOER_WECOM_UPLOADIMG_PER_DAY (1,000) a Beijing day and
XIAOER_WECOM_UPLOADIMG_PER_MONTH (3,000) a month, counted from our own rows.

WeCom's refusals are recorded on the row (``last_error``) and re-raised as the gateway raised them
(WeComError, WeComRateLimited, WeComUnavailable), for the caller or Celery to retry.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from materials.library.models import MaterialStatus, MaterialVersion
from materials.media.models import TEMPORARY_PURPOSES, MediaPurpose, WeComMedia
from portal.errors import DomainError
from portal.locks import TextLock, xact_lock
from portal.wecom.gateway import WeComError, WeComRateLimited, WeComUnavailable, wecom_upload

CALLER = "materials.media"
MB = 1024 * 1024
MEDIA_LIFETIME = timedelta(days=3)  # "media_id仅三天内有效", from WeCom's created_at
MEDIA_SAFETY_MARGIN = timedelta(hours=6)  # an id handed out stays valid at least this long
USED_RECENTLY = timedelta(days=3)  # the refresh job keeps ids alive for versions handed out this recently
USE_MARK_EVERY = timedelta(hours=1)  # last_used_at is written at most this often per row (every send reads it)
MESSAGE_MAX_BYTES = {"image": 10 * MB, "video": 10 * MB, "file": 20 * MB}
MIN_BYTES = 6  # "所有文件size必须大于5个字节"
MOMENTS_IMAGE_MAX_PIXELS = 1440 * 1080  # 1,555,200
MOMENTS_VIDEO_MAX_SECONDS = 30
IMAGE_URL_MAX_BYTES = 2 * MB
IMAGE_MIMES = ("image/jpeg", "image/png")
BEIJING = ZoneInfo("Asia/Shanghai")  # WeCom's days are Beijing days, whatever TIME_ZONE says


class MediaRefused(DomainError):
    """This version cannot go to WeCom for that use (no file, wrong type, over WeCom's limits)."""


class MediaQuotaUsed(MediaRefused):
    """The daily or monthly quota of permanent image URLs is used up; the message says when it resets."""


# -- limits (no call) ----------------------------------------------------------------------------------------
def media_type_of(*, version: MaterialVersion) -> str:
    """image / video / file: how WeCom's media/upload names this version's file."""
    if not version.file:
        raise MediaRefused(_("这个素材版本没有文件，不能上传到企业微信"))
    if version.mime in IMAGE_MIMES:
        return "image"
    if version.mime == "video/mp4":
        return "video"
    return "file"


def media_limits_check(*, version: MaterialVersion, purpose: str) -> str:
    """Refuses, in our words and before any call, what WeCom would refuse for ``purpose``; the media type."""
    media_type = media_type_of(version=version)
    size = version.size or 0
    if size < MIN_BYTES:
        raise MediaRefused(_("文件太小（至少 6 个字节），企业微信不接受，请重新上传"))
    if purpose == MediaPurpose.IMAGE_URL:
        if media_type != "image":
            raise MediaRefused(_("永久图片链接只能用 JPG 或 PNG 图片"))
        if size > IMAGE_URL_MAX_BYTES:
            raise MediaRefused(_("永久图片链接的图片最大 2 MB，这张有 %(size)s，请压缩后上传新版本")
                               % {"size": filesizeformat(size)})
        return media_type
    if size > MESSAGE_MAX_BYTES[media_type]:
        labels = {"image": _("图片"), "video": _("视频"), "file": _("文件")}
        raise MediaRefused(_("企业微信的%(kind)s最大 %(max)s，这个有 %(size)s，请压缩后上传新版本") % {
            "kind": labels[media_type], "max": filesizeformat(MESSAGE_MAX_BYTES[media_type]),
            "size": filesizeformat(size)})
    if purpose == MediaPurpose.MOMENTS:
        if media_type == "file":
            raise MediaRefused(_("朋友圈只能附图片或视频，文件不能发到朋友圈"))
        if media_type == "image" and version.width and version.height \
                and version.width * version.height > MOMENTS_IMAGE_MAX_PIXELS:
            raise MediaRefused(_("朋友圈图片最多 1440×1080（155.52 万）像素，这张是 %(width)d×%(height)d，"
                                 "请缩小后上传新版本") % {"width": version.width, "height": version.height})
        if media_type == "video" and version.duration_seconds is not None \
                and version.duration_seconds > MOMENTS_VIDEO_MAX_SECONDS:
            raise MediaRefused(_("朋友圈视频最长 30 秒，这段有 %(seconds).1f 秒，请剪短后上传新版本")
                               % {"seconds": version.duration_seconds})
    return media_type


# -- temporary media ids -----------------------------------------------------------------------------------
def media_id_for(*, version: MaterialVersion, purpose: str, now: datetime | None = None) -> str:
    """A media id of ``version`` for ``purpose`` ("message": media/upload; "moments": upload_attachment,
    attachment_type 1) valid at least MEDIA_SAFETY_MARGIN more; uploads it when there is none such."""
    if purpose not in TEMPORARY_PURPOSES:
        raise ValueError(f"media_id_for: purpose must be one of {TEMPORARY_PURPOSES}, not {purpose!r}")
    now = now or timezone.now()
    media_type = media_limits_check(version=version, purpose=purpose)
    fresh = (WeComMedia.objects.filter(version=version, purpose=purpose, expires_at__gt=now + MEDIA_SAFETY_MARGIN)
             .exclude(media_id="").values_list("pk", "media_id").first())
    if fresh is not None:
        _used_mark(pk=fresh[0], now=now)
        return fresh[1]
    failure: WeComError
    with transaction.atomic():
        xact_lock(TextLock.MATERIAL_MEDIA, f"{version.pk}:{purpose}")  # a second sender waits for our id
        media, _created = WeComMedia.objects.get_or_create(version=version, purpose=purpose,
                                                           defaults={"media_type": media_type})
        if media.media_id and media.expires_at and media.expires_at > now + MEDIA_SAFETY_MARGIN:
            _used_mark(pk=media.pk, now=now)
            return media.media_id
        try:
            _temporary_upload(media=media, version=version, media_type=media_type, now=now)
        except WeComError as exc:
            _error_record(media=media, error=exc)
            failure = exc  # raised once the error is committed, so it stays on the row
        else:
            _used_mark(pk=media.pk, now=now)
            return media.media_id
    raise failure


def _used_mark(*, pk: int, now: datetime) -> None:
    WeComMedia.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - USE_MARK_EVERY),
                              pk=pk).update(last_used_at=now)


def _temporary_upload(*, media: WeComMedia, version: MaterialVersion, media_type: str, now: datetime) -> None:
    """Uploads ``version`` for ``media.purpose`` and records the id with WeCom's created_at + 3 days."""
    if media.purpose == MediaPurpose.MOMENTS:
        endpoint, params = "media/upload_attachment", {"media_type": media_type, "attachment_type": 1}
    else:
        endpoint, params = "media/upload", {"type": media_type}
    result = wecom_upload(endpoint, source=_version_bytes(version), filename=_filename(version),
                          content_type=version.mime, params=params, caller=CALLER)
    media.media_id, media.media_type = str(result["media_id"]), media_type
    media.uploaded_at = now
    media.expires_at = _wecom_time(result.get("created_at"), default=now) + MEDIA_LIFETIME
    media.last_error = ""
    media.save()


def _wecom_time(value, *, default: datetime) -> datetime:
    """WeCom's created_at (seconds since the epoch, sent as a string) as a datetime; ``default`` if absent."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return default


def _error_record(*, media: WeComMedia, error: Exception) -> None:
    media.last_error = str(error)[:255]
    media.save(update_fields=["last_error", "updated_at"])


def _filename(version: MaterialVersion) -> str:
    """The name WeCom shows (a file attachment's name in the chat): the uploader's, else the stored one."""
    return version.file_name or version.file.rsplit("/", 1)[-1]


def _version_bytes(version: MaterialVersion) -> bytes:
    """The version's stored bytes (the one place media reads files)."""
    from materials.library.storage import file_read

    return file_read(name=version.file)


# -- the beat job ------------------------------------------------------------------------------------------
def media_refresh_due(*, now: datetime | None = None, within: timedelta = timedelta(hours=12)) -> int:
    """Re-uploads the temporary ids that expire within ``within`` of versions still current (material not
    archived) and handed out in the last 3 days; returns how many were re-uploaded. Selection is one query;
    uploads go one by one through the gateway (which keeps to WeCom's rate). A rate limit or outage stops the
    run and is raised (Celery retries; what was done stays done); other WeCom refusals are recorded on their
    row, the run goes on, and the first is raised at the end."""
    now = now or timezone.now()
    due = list(WeComMedia.objects
               .filter(purpose__in=TEMPORARY_PURPOSES, expires_at__lt=now + within,
                       last_used_at__gte=now - USED_RECENTLY, version__material__current_version=F("version"))
               .exclude(media_id="").exclude(version__material__status=MaterialStatus.ARCHIVED)
               .order_by("expires_at").values_list("pk", "version_id", "purpose"))
    refreshed = 0
    first_failure: WeComError | None = None
    for pk, version_id, purpose in due:
        try:
            refreshed += _refresh_one(pk=pk, version_id=version_id, purpose=purpose, now=now, within=within)
        except (WeComRateLimited, WeComUnavailable):
            raise
        except WeComError as exc:
            first_failure = first_failure or exc
    if first_failure is not None:
        raise first_failure
    return refreshed


def _refresh_one(*, pk: int, version_id: int, purpose: str, now: datetime, within: timedelta) -> int:
    failure: WeComError
    with transaction.atomic():
        xact_lock(TextLock.MATERIAL_MEDIA, f"{version_id}:{purpose}")
        media = WeComMedia.objects.select_related("version").filter(pk=pk).first()
        if media is None or (media.expires_at and media.expires_at >= now + within):
            return 0  # a sender re-uploaded it meanwhile
        try:
            media_type = media_limits_check(version=media.version, purpose=purpose)
            _temporary_upload(media=media, version=media.version, media_type=media_type, now=now)
        except DomainError as exc:  # the file is gone from storage, or the limits changed: say so on the row
            _error_record(media=media, error=exc)
            return 0
        except WeComError as exc:
            _error_record(media=media, error=exc)
            failure = exc
        else:
            return 1
    raise failure


# -- permanent image URLs ----------------------------------------------------------------------------------
def image_url_for(*, version: MaterialVersion, now: datetime | None = None) -> str:
    """The permanent URL of ``version``'s image (media/uploadimg), uploaded once ever. Refused with
    MediaQuotaUsed, saying when it resets, when today's or this month's quota is used up."""
    now = now or timezone.now()
    media_limits_check(version=version, purpose=MediaPurpose.IMAGE_URL)
    url = (WeComMedia.objects.filter(version=version, purpose=MediaPurpose.IMAGE_URL).exclude(url="")
           .values_list("url", flat=True).first())
    if url:
        return url
    failure: WeComError
    with transaction.atomic():
        xact_lock(TextLock.MATERIAL_MEDIA, f"{version.pk}:{MediaPurpose.IMAGE_URL}")
        media, _created = WeComMedia.objects.get_or_create(version=version, purpose=MediaPurpose.IMAGE_URL,
                                                           defaults={"media_type": "image"})
        if media.url:
            return media.url
        xact_lock(TextLock.MATERIAL_MEDIA_UPLOADIMG)  # count and upload one at a time: the quota holds
        image_url_quota_check(now=now)
        try:
            result = wecom_upload("media/uploadimg", source=_version_bytes(version), filename=_filename(version),
                                  content_type=version.mime, caller=CALLER)
        except WeComError as exc:
            _error_record(media=media, error=exc)
            failure = exc
        else:
            media.url, media.uploaded_at, media.last_error = str(result["url"]), now, ""
            media.save()
            return media.url
    raise failure


def _quota(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def image_url_quota_check(*, now: datetime | None = None) -> None:
    """MediaQuotaUsed when the permanent image URLs of today (Beijing) or this month are used up."""
    now = now or timezone.now()
    local = now.astimezone(BEIJING)
    day_start = datetime.combine(local.date(), time(), tzinfo=BEIJING)
    month_start = day_start.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    uploads = WeComMedia.objects.filter(purpose=MediaPurpose.IMAGE_URL, uploaded_at__gte=month_start,
                                        uploaded_at__lt=next_month).exclude(url="")
    per_day = _quota("XIAOER_WECOM_UPLOADIMG_PER_DAY", 1000)
    per_month = _quota("XIAOER_WECOM_UPLOADIMG_PER_MONTH", 3000)
    if uploads.filter(uploaded_at__gte=day_start, uploaded_at__lt=day_start + timedelta(days=1)).count() >= per_day:
        raise MediaQuotaUsed(_("今天的企业微信永久图片额度（每天 %(limit)d 张）已用完，%(reset)s 恢复") % {
            "limit": per_day, "reset": (day_start + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")})
    if uploads.count() >= per_month:
        raise MediaQuotaUsed(_("本月的企业微信永久图片额度（每月 %(limit)d 张）已用完，%(reset)s 恢复") % {
            "limit": per_month, "reset": next_month.strftime("%Y-%m-%d %H:%M")})
