"""Uploads through the gateway against the sandbox: the whole file arrives, whatever WeCom does meanwhile.

wechatpy 1.8.18 re-sends the same, already read file object after refreshing an expired token, so
WeCom receives an empty file (44001). ``wecom_upload`` must send every byte on every attempt: after
42001 (expired) and 40014 (unknown token), after HTTP 500 and -1 (system busy).
"""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from wechatpy.exceptions import WeChatClientException

from portal.wecom.gateway import WeComError, wecom_call, wecom_client, wecom_upload
from portal.wecom.models import WeComCall

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # 10 kB: big enough that a short body would show
PNG_SHA = hashlib.sha256(PNG).hexdigest()


@pytest.fixture
def token_held(sandbox, db):
    """The portal holds a valid token (one real call), so the next expiry happens mid-run."""
    sandbox.do("members/add", userid="zhangsan", name="张三")
    wecom_call("user/get", method="get", params={"userid": "zhangsan"}, caller="test")
    return sandbox


def received(sandbox) -> list[tuple[str, int, str]]:
    return [(r["endpoint"], r["size"], r["sha256"]) for r in sandbox.get("media/received")["received"]]


def codes(sandbox, endpoint: str) -> list[int]:
    return [c["errcode"] for c in sandbox.get("calls", endpoint=endpoint)["calls"]]


def stored_bytes(media_id: str) -> bytes:
    """What WeCom kept under the media_id (media/get answers with the file, not JSON)."""
    return wecom_call("media/get", method="get", params={"media_id": media_id}, caller="test").content


def test_wechatpy_alone_sends_an_empty_file_after_refreshing_an_expired_token(token_held):
    """The upstream bug, so the tests below can fail: the retried upload is empty and WeCom refuses it."""
    token_held.do("tokens/expire")
    with pytest.raises(WeChatClientException) as caught:
        wecom_client().media.upload("image", ("poster.png", io.BytesIO(PNG), "image/png"))
    assert caught.value.errcode == 44001 and "empty media data" in caught.value.errmsg
    assert codes(token_held, "media/upload") == [42001, 44001]
    assert received(token_held) == [("media/upload", 0, hashlib.sha256(b"").hexdigest())]


def test_an_image_uploaded_when_the_token_has_just_expired_arrives_whole(token_held):
    token_held.do("tokens/expire")
    stream = io.BytesIO(PNG)
    stream.read(100)  # a caller that already peeked at the file: the upload still starts at byte 0
    answer = wecom_upload("media/upload", params={"type": "image"}, source=stream, filename="poster.png",
                          caller="test")
    assert codes(token_held, "media/upload") == [42001, 0]  # refused with the old token, then accepted
    assert received(token_held) == [("media/upload", len(PNG), PNG_SHA)]
    assert answer["type"] == "image" and stored_bytes(answer["media_id"]) == PNG
    record = WeComCall.objects.get(endpoint="media/upload")
    assert record.errcode == 0 and "poster.png" in record.request_summary and str(len(PNG)) in record.request_summary


def test_a_token_wecom_no_longer_knows_is_replaced_and_uploadimg_gets_every_byte(token_held):
    token_held.do("reset")  # WeCom forgets every token: the next call gets 40014
    url = wecom_upload("media/uploadimg", source=PNG, filename="logo.png", caller="test")["url"]
    assert codes(token_held, "media/uploadimg") == [40014, 0]
    with urllib.request.urlopen(url, timeout=5) as response:  # the permanent URL serves what arrived
        assert response.read() == PNG


def test_server_errors_and_busy_answers_are_retried_with_the_whole_file(token_held):
    token_held.do("faults", endpoint="media/upload", http_status=500, times=1)
    token_held.do("faults", endpoint="media/upload", errcode=-1, times=1)
    token_held.do("tokens/expire")  # and the token expires on the third attempt
    upload = SimpleUploadedFile("poster.png", PNG, content_type="image/png")
    upload.read()  # a Django upload already read to its end (e.g. by form validation)
    answer = wecom_upload("media/upload", params={"type": "image"}, source=upload, caller="test")
    assert stored_bytes(answer["media_id"]) == PNG
    assert WeComCall.objects.get(endpoint="media/upload").attempts == 3  # 500, -1, then (42001 → ok) inside
    assert received(token_held) == [("media/upload", len(PNG), PNG_SHA)]


def test_a_file_on_disk_is_read_whole_on_every_attempt(token_held, tmp_path):
    path = tmp_path / "welcome.png"
    path.write_bytes(PNG)
    token_held.do("faults", endpoint="media/upload", http_status=502, times=1)
    token_held.do("tokens/expire")
    with path.open("rb") as handle:
        handle.read()
        answer = wecom_upload("media/upload", params={"type": "image"}, source=handle, caller="test")
    assert stored_bytes(answer["media_id"]) == PNG
    answer = wecom_upload("media/upload", params={"type": "file"}, source=path, caller="test")
    assert stored_bytes(answer["media_id"]) == PNG
    assert {size for _endpoint, size, _sha in received(token_held)} == {len(PNG)}


def test_an_empty_file_gets_wecoms_answer_without_a_call(token_held):
    with pytest.raises(WeComError) as caught:
        wecom_upload("media/upload", params={"type": "image"}, source=b"", filename="blank.png", caller="test")
    assert caught.value.errcode == 44001 and "blank.png" in str(caught.value)
    assert codes(token_held, "media/upload") == [] and received(token_held) == []


def test_the_sandbox_refuses_an_empty_media_part_like_wecom(token_held):
    """Without the gateway's own check WeCom (and the sandbox) answer 44001; not retried, nothing stored."""
    with pytest.raises(WeComError) as caught:
        wecom_call("media/upload", params={"type": "image"}, caller="test", media=_empty())
    assert caught.value.errcode == 44001
    assert WeComCall.objects.get(endpoint="media/upload").attempts == 1
    assert json.loads(WeComCall.objects.get(endpoint="media/upload").request_summary)["data"]["bytes"] == 0


def test_only_upload_endpoints_take_a_file(db):
    with pytest.raises(ValueError):
        wecom_upload("externalcontact/remark", source=PNG)


def _empty():
    from portal.wecom.gateway import MediaFile

    return MediaFile(filename="blank.png", content=b"", content_type="image/png")
