"""Uploaded files: one size limit checked by every upload form, a handler that never stores more than
that, and the refusal every reader of an uploaded file raises (a message a user can read).

    XIAOER_UPLOAD_MAX_BYTES      any upload (the member import job's files are the largest)
    XIAOER_WEB_IMPORT_MAX_BYTES  an Excel/CSV previewed in the admin (read whole into memory)

``UploadLimitHandler`` (first in FILE_UPLOAD_HANDLERS) passes at most XIAOER_UPLOAD_MAX_BYTES + 1 bytes
of a file on to Django's handlers and drops the rest, so an oversized upload costs no more disk or memory
than the limit, and the form still sees a file — one byte too large — and says so
(``upload_size_validate``), instead of "this field is required".
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from import_export.tmp_storages import CacheStorage


class FileRefused(ValueError):
    """An uploaded file refused as a whole (too large, not the format it claims, damaged); the message
    says why and what to do."""


def upload_size_validate(*, upload, max_bytes: int | None = None) -> None:
    """FileRefused if ``upload`` is larger than ``max_bytes`` (default: XIAOER_UPLOAD_MAX_BYTES)."""
    limit = settings.XIAOER_UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise FileRefused(_("文件过大：上限为 %(max)s，请拆分后分批上传") % {"max": filesizeformat(limit)})


class UploadLimitHandler(FileUploadHandler):
    """Keeps at most XIAOER_UPLOAD_MAX_BYTES + 1 bytes of each uploaded file; the rest is read from the
    request (it has to be) and dropped."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.kept = 0
        self.cap = settings.XIAOER_UPLOAD_MAX_BYTES + 1

    def receive_data_chunk(self, raw_data, start):
        room = self.cap - self.kept
        if room <= 0:
            return None  # the following handlers do not get this chunk
        chunk = raw_data[:room]
        self.kept += len(chunk)
        return chunk

    def file_complete(self, file_size):
        return None  # the next handler (memory or temporary file) makes the file


class ImportPreviewStorage(CacheStorage):
    """Where django-import-export keeps a previewed file until it is confirmed: the cache (shared by every
    web process), for an hour at most, instead of a file in the temp folder that stays there, member
    mobiles and all, when a preview is never confirmed."""

    CACHE_LIFETIME = 3600
