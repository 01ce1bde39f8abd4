"""Material files in storage: Django's default storage (STORAGES["default"] in portal/settings.py), a folder
under MEDIA_ROOT or an S3-compatible object store (django-storages), the same code for both.

A file is stored under its content's SHA-256 (``materials/ab/<sha256>.<ext>``): the same bytes stored twice
are one object. A caller stores the file *before* its database transaction and, if that transaction fails,
discards it (``file_discard`` never raises): a storage that fails says ``StorageUnavailable`` and nothing is
recorded, and what a failed write may have left under the name is removed, so no half-written object is ever
taken for the file. Material files are never public: MEDIA_URL is not routed, and ``file_response`` is what
a download view returns once it has checked the viewer's scope — the bytes streamed from the folder, or on
S3 a redirect to a presigned URL valid settings.XIAOER_S3_URL_EXPIRE_SECONDS (5 minutes by default).
"""

from __future__ import annotations

import hashlib
import logging
import sys

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from materials.library.files import FileFacts
from portal.errors import DomainError

logger = logging.getLogger(__name__)


class StorageUnavailable(DomainError):
    """The file store could not be reached or refused the operation; nothing was recorded."""


def _unavailable() -> StorageUnavailable:
    return StorageUnavailable(_("文件存储暂时不可用，文件没有保存。请稍后重试；如果一直失败，请联系管理员检查文件存储"))


def _storage() -> Storage:
    return storages["default"]


def _is_s3(storage: Storage) -> bool:
    s3 = sys.modules.get("storages.backends.s3")  # imported by the storage handler when S3 is configured
    return s3 is not None and isinstance(storage, s3.S3Storage)


def file_name_for(*, facts: FileFacts, prefix: str = "materials") -> str:
    """Where the bytes described by ``facts`` are stored: ``<prefix>/<sha256[:2]>/<sha256>.<extension>``."""
    return f"{prefix}/{facts.sha256[:2]}/{facts.sha256}.{facts.extension}"


def file_store(*, data: bytes, facts: FileFacts, prefix: str = "materials") -> str:
    """Stores ``data`` (described by ``facts``, from file_inspect) and returns its storage name; the same bytes
    already stored are reused. StorageUnavailable if the store fails: then nothing is left under the name."""
    if len(data) != facts.size or hashlib.sha256(data).hexdigest() != facts.sha256:
        raise ValueError("file_store: facts describe other bytes than data")
    name = file_name_for(facts=facts, prefix=prefix)
    storage = _storage()
    try:
        if storage.exists(name):
            if storage.size(name) == facts.size:
                return name  # the same content, already stored whole
            storage.delete(name)  # a leftover of an interrupted write: replace it
        content = ContentFile(data, name=name)
        content.content_type = facts.mime  # type: ignore[attr-defined]  # S3Storage sends it as ContentType
        saved = storage.save(name, content)
    except Exception as exc:
        logger.warning("material file store failed for %s: %s", name, type(exc).__name__, exc_info=True)
        file_discard(name=name)
        raise _unavailable() from exc
    if saved != name:  # the folder store raced with the same upload and kept a second copy
        file_discard(name=saved)
    return name


def file_discard(*, name: str) -> None:
    """Removes a stored file (the caller's database transaction failed, or the file is no longer used).
    Never raises: a file that cannot be removed now is logged and left (it is content-addressed, so a later
    upload of the same bytes reuses it)."""
    try:
        _storage().delete(name)
    except Exception:
        logger.warning("material file discard failed for %s", name, exc_info=True)


def file_read(*, name: str) -> bytes:
    """The stored bytes of ``name``; StorageUnavailable if the store fails or no longer has it."""
    try:
        with _storage().open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise StorageUnavailable(_("文件存储中找不到这个素材文件，请重新上传")) from exc
    except Exception as exc:
        logger.warning("material file read failed for %s: %s", name, type(exc).__name__, exc_info=True)
        raise _unavailable() from exc
    return bytes(data)


def file_response(*, name: str, download_name: str, content_type: str, inline: bool) -> HttpResponseBase:
    """The download of a stored file, for a view that has checked the viewer may have it.

    From the folder store: the file streamed, with ``Content-Disposition`` (attachment, or inline when
    ``inline``) carrying ``download_name`` in RFC 5987 form (Chinese names survive), ``X-Content-Type-Options:
    nosniff``, ``Cache-Control: private``, and for inline ``Content-Security-Policy: sandbox`` (a file shown
    in the browser runs nothing with the portal's origin). From S3: a 302 to a presigned URL valid
    XIAOER_S3_URL_EXPIRE_SECONDS, which makes S3 answer with the same Content-Disposition and Content-Type.
    Http404 if the folder store no longer has the file; StorageUnavailable if it cannot be read."""
    storage = _storage()
    disposition = content_disposition_header(as_attachment=not inline, filename=download_name) or ""
    if _is_s3(storage):
        url = storage.url(name, parameters={"ResponseContentDisposition": disposition,  # type: ignore[call-arg]
                                            "ResponseContentType": content_type},
                          expire=settings.XIAOER_S3_URL_EXPIRE_SECONDS)
        redirect = HttpResponseRedirect(url)
        redirect["Cache-Control"] = "no-store"  # the signed URL is for this viewer, now
        redirect["Referrer-Policy"] = "no-referrer"
        return redirect
    try:
        handle = storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404(_("文件不存在")) from exc
    except Exception as exc:
        logger.warning("material file open failed for %s: %s", name, type(exc).__name__, exc_info=True)
        raise _unavailable() from exc
    response = FileResponse(handle, as_attachment=not inline, filename=download_name, content_type=content_type)
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private"
    if inline:
        response["Content-Security-Policy"] = "sandbox"
    return response
