"""The WeCom gateway: every call to WeCom goes through ``wecom_call``.

It adds what wechatpy lacks: a rate limiter shared by all processes (Redis), retries with
exponential backoff and jitter on rate limits (45009/45033), system busy (-1), HTTP 5xx and
network errors, explicit timeouts, and a record of each call (``WeComCall``). wechatpy itself
re-fetches the token on 40001/40014/42001; the token is shared through Redis.

Secrets: WeCom's URLs carry the corp secret (gettoken), the access token (every call) and OAuth codes,
and a failed connection's message carries its URL. Everything the gateway records (errmsg, the request
summary) or raises (WeComError) goes through ``text_redact`` first (portal/wecom/redaction.py).

Uploads (``wecom_upload``) send the file as bytes: wechatpy 1.8.18 re-sends the very same file
object after refreshing an expired token, a stream already read to its end, so WeCom would get an
empty file (44001). Bytes are encoded afresh on every send, by wechatpy's retry and by ours.
"""

from __future__ import annotations

import json
import mimetypes
import os
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis
import requests
from django.conf import settings
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from portal.wecom.client import WeComClient
from portal.wecom.redaction import data_redact, text_redact

RETRYABLE_ERRCODES = {45009, 45033, -1}
RATE_LIMIT_ERRCODES = {45009, 45033}


class WeComError(Exception):
    def __init__(self, *, endpoint: str, errcode: int | None, errmsg: str):
        errmsg = text_redact(errmsg or "")  # shown in admin messages, stored as reasons: never a credential
        self.endpoint, self.errcode, self.errmsg = endpoint, errcode, errmsg
        super().__init__(f"企业微信接口 {endpoint} 返回错误 {errcode}: {errmsg}")


class WeComRateLimited(WeComError):
    """Still rate limited after the retries: a Celery task should retry later."""


class WeComUnavailable(WeComError):
    """Network errors, timeouts or HTTP 5xx after the retries."""


@dataclass(frozen=True)
class GatewayConfig:
    base_url: str
    corp_id: str
    secret: str
    contact_secret: str
    timeout: float
    max_attempts: int
    backoff_base: float
    per_minute_limit: int


def gateway_config() -> GatewayConfig:
    return GatewayConfig(
        base_url=settings.WECOM_BASE_URL, corp_id=settings.WECOM_CORP_ID, secret=settings.WECOM_SECRET,
        contact_secret=settings.WECOM_CONTACT_SECRET or settings.WECOM_SECRET, timeout=settings.WECOM_TIMEOUT,
        max_attempts=settings.WECOM_MAX_ATTEMPTS, backoff_base=settings.WECOM_BACKOFF_SECONDS,
        per_minute_limit=settings.WECOM_RATE_PER_MINUTE,
    )


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def wecom_client(*, secret_kind: str = "app") -> WeComClient:
    """A client for the app secret or the address-book/contact secret, its token shared via Redis."""
    config = gateway_config()
    secret = config.contact_secret if secret_kind == "contact" else config.secret
    return WeComClient(config.corp_id, secret, base_url=config.base_url, timeout=config.timeout,
                       session=RedisStorage(_redis(), prefix=f"xiaoer:wecom:{secret_kind}"))  # one token per secret


def _rate_limit_wait(endpoint: str, per_minute: int) -> None:
    """A fixed-window limiter per endpoint in Redis, shared by every process: stay under WeCom's quota."""
    while True:
        window = int(time.time() // 60)
        key = f"xiaoer:wecom:rate:{endpoint}:{window}"
        pipe = _redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = pipe.execute()
        if count <= per_minute:
            return
        time.sleep(max(0.05, 60 - time.time() % 60))


def _summary(params: dict | None, data: Any) -> str:
    text = json.dumps(data_redact({"params": params or {}, "data": data}), ensure_ascii=False, default=str)
    return text_redact(text)[:1000]


def _record(*, endpoint: str, caller: str, errcode: int | None, errmsg: str, attempts: int, started: float,
            params, data) -> None:
    from portal.wecom.models import WeComCall

    WeComCall.objects.create(endpoint=endpoint, caller=caller[:96], errcode=errcode,
                             errmsg=text_redact(errmsg or "")[:255],
                             attempts=attempts, duration_ms=int((time.perf_counter() - started) * 1000),
                             request_summary=_summary(params, data))


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, keeping both ends: what failed (the URL) and why (at the end)."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 5
    return f"{text[:head]}…{text[-(limit - head - 1):]}"


def _backoff(attempt: int, base: float) -> float:
    return base * (2 ** (attempt - 1)) * (0.5 + random.random())


def wecom_call(endpoint: str, *, method: str = "post", params: dict | None = None, data: Any = None,
               caller: str = "", secret_kind: str = "app", client: WeComClient | None = None,
               media: MediaFile | None = None) -> dict:
    """Call ``endpoint`` (e.g. "externalcontact/transfer_customer"); returns WeCom's JSON or raises.

    ``media``: a file for the upload endpoints (use ``wecom_upload``), sent whole on every attempt.
    """
    config = gateway_config()
    logged = data if media is None else media.summary()  # the record says which file, never its bytes
    client = client or wecom_client(secret_kind=secret_kind)
    started = time.perf_counter()
    errcode: int | None = None
    errmsg = ""
    for attempt in range(1, config.max_attempts + 1):
        _rate_limit_wait(endpoint, config.per_minute_limit)
        try:
            kwargs: dict[str, Any] = {"params": dict(params or {})}
            if data is not None:
                kwargs["data"] = data
            if media is not None:
                kwargs["files"] = media.as_files()
            result = client.get(endpoint, **kwargs) if method == "get" else client.post(endpoint, **kwargs)
            _record(endpoint=endpoint, caller=caller, errcode=0, errmsg="ok", attempts=attempt, started=started,
                    params=params, data=logged)
            return result
        except WeChatClientException as exc:
            errcode, errmsg = exc.errcode, str(exc.errmsg or "")
            status = getattr(getattr(exc, "response", None), "status_code", None)
            retryable = errcode in RETRYABLE_ERRCODES or (errcode is None and (status or 500) >= 500)
            if errcode is None:
                errmsg = f"HTTP {status}"
        except requests.RequestException as exc:  # refused, reset, timed out, a broken answer: no errcode
            # The message names the URL, query string included (corpsecret, access_token, code): redacted
            # before it is cut, so a cut never leaves part of a secret.
            errcode, errmsg = None, _clip(text_redact(f"{type(exc).__name__}: {exc}"), 255)
            retryable = isinstance(exc, requests.Timeout | requests.ConnectionError)
        if not retryable or attempt == config.max_attempts:
            break
        time.sleep(_backoff(attempt, config.backoff_base))
    _record(endpoint=endpoint, caller=caller, errcode=errcode if errcode is not None else -999, errmsg=errmsg,
            attempts=attempt, started=started, params=params, data=logged)
    if errcode in RATE_LIMIT_ERRCODES:
        raise WeComRateLimited(endpoint=endpoint, errcode=errcode, errmsg=errmsg)
    if errcode is None or errcode == -1:
        raise WeComUnavailable(endpoint=endpoint, errcode=errcode, errmsg=errmsg)
    raise WeComError(endpoint=endpoint, errcode=errcode, errmsg=errmsg)


# -- uploads ------------------------------------------------------------------------------------------------
UPLOAD_ENDPOINTS = ("media/upload", "media/uploadimg", "media/upload_attachment")
EMPTY_MEDIA = 44001


@dataclass(frozen=True)
class MediaFile:
    """A file for WeCom's upload endpoints, held as bytes (see the module docstring for why not a stream)."""

    filename: str
    content: bytes
    content_type: str

    def as_files(self) -> dict:
        # bytes, not a BytesIO: requests re-encodes them on each send, wechatpy's token retry included.
        return {"media": (self.filename, self.content, self.content_type)}

    def summary(self) -> dict:
        return {"media": self.filename, "bytes": len(self.content), "content_type": self.content_type}


def media_file(source, *, filename: str = "", content_type: str = "") -> MediaFile:
    """``source`` as a MediaFile: bytes, a path, or a file object (Django File/UploadedFile/FieldFile,
    BytesIO, an open file), read whole from its start whatever its position."""
    if isinstance(source, bytes | bytearray | memoryview):
        content = bytes(source)
    elif isinstance(source, str | os.PathLike):
        content = Path(source).read_bytes()
        filename = filename or Path(source).name
    else:
        if getattr(source, "closed", False) and hasattr(source, "open"):
            source.open("rb")  # a Django FieldFile/File that was closed: open it again
        if hasattr(source, "seek"):
            source.seek(0)
        content = source.read()
        if isinstance(content, str):
            raise TypeError("the file must be opened in binary mode")
        filename = filename or os.path.basename(str(getattr(source, "name", "") or ""))
        content_type = content_type or getattr(source, "content_type", "") or ""
    filename = filename or "media"
    content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return MediaFile(filename=filename, content=content, content_type=content_type)


def wecom_upload(endpoint: str, *, source, filename: str = "", content_type: str = "", params: dict | None = None,
                 caller: str = "", secret_kind: str = "app", client: WeComClient | None = None) -> dict:
    """Upload a file: ``media/upload`` (params type=image|voice|video|file → media_id, valid 3 days),
    ``media/uploadimg`` (→ a permanent url) or ``media/upload_attachment``. The ONLY way to upload:
    the whole file goes out on every attempt, across token refreshes and retries."""
    if endpoint not in UPLOAD_ENDPOINTS:
        raise ValueError(f"{endpoint} is not an upload endpoint ({', '.join(UPLOAD_ENDPOINTS)})")
    media = media_file(source, filename=filename, content_type=content_type)
    if not media.content:  # WeCom's own answer, without spending a call on it
        raise WeComError(endpoint=endpoint, errcode=EMPTY_MEDIA, errmsg=f"empty media data: {media.filename} "
                         "is empty (nothing was sent)")
    return wecom_call(endpoint, params=params, caller=caller, secret_kind=secret_kind, client=client, media=media)


# -- files WeCom hands out as URLs (a contact way's QR image) -----------------------------------------------
FILE_ENDPOINT = "file/get"  # how such a fetch is recorded among the calls
FILE_MAX_BYTES = 2 * 1024 * 1024


def wecom_file_fetch(url: str, *, caller: str = "", max_bytes: int = FILE_MAX_BYTES) -> bytes:
    """The bytes at a URL WeCom handed out (``qr_code`` of a contact way…): over the gateway's HTTP session, with
    its timeout, retries with backoff on network errors and HTTP 5xx, and a record of the fetch (its host, never
    its query). Only http(s); at most ``max_bytes``. Raises WeComUnavailable, or WeComError (4xx, too large)."""
    from urllib.parse import urlsplit

    from portal.wecom.client import _http_session

    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WeComError(endpoint=FILE_ENDPOINT, errcode=None, errmsg="not an http(s) URL")
    config = gateway_config()
    started = time.perf_counter()
    params = {"host": parts.netloc}
    errmsg = ""
    status: int | None = None
    for attempt in range(1, config.max_attempts + 1):
        retryable = False
        try:
            with _http_session().get(url, timeout=config.timeout, stream=True) as response:
                status = response.status_code
                if status == 200:
                    body = response.raw.read(max_bytes + 1, decode_content=True)
                    if len(body) > max_bytes:
                        errmsg, retryable = f"larger than {max_bytes} bytes", False
                    else:
                        _record(endpoint=FILE_ENDPOINT, caller=caller, errcode=0, errmsg="ok", attempts=attempt,
                                started=started, params=params, data=None)
                        return body
                else:
                    errmsg, retryable = f"HTTP {status}", status >= 500
        except requests.RequestException as exc:
            status, errmsg = None, _clip(text_redact(f"{type(exc).__name__}: {exc}"), 255)
            retryable = isinstance(exc, requests.Timeout | requests.ConnectionError)
        if not retryable or attempt == config.max_attempts:
            break
        time.sleep(_backoff(attempt, config.backoff_base))
    _record(endpoint=FILE_ENDPOINT, caller=caller, errcode=status or -999, errmsg=errmsg, attempts=attempt,
            started=started, params=params, data=None)
    if status is None or status >= 500:
        raise WeComUnavailable(endpoint=FILE_ENDPOINT, errcode=None, errmsg=errmsg)
    raise WeComError(endpoint=FILE_ENDPOINT, errcode=status, errmsg=errmsg)
