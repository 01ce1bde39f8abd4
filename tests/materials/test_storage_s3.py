"""Material files on an S3-compatible store: django-storages' S3Storage, configured as portal/settings.py does
from XIAOER_S3_*, against a real S3-speaking server (moto's) on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
from moto.server import ThreadedMotoServer

from materials.library.files import file_inspect
from materials.library.storage import StorageUnavailable, file_read, file_response, file_store
from portal.embedded import free_port
from portal.settings import s3_storage
from tests.materials.files_fixtures import pdf_bytes

CREDENTIALS = {"access_key": "test-key-id", "secret_key": "test-secret", "region": "us-east-1"}


class S3:
    def __init__(self, server: ThreadedMotoServer, endpoint: str):
        self.server, self.endpoint, self.running = server, endpoint, True
        self.bucket = f"xiaoer-materials-{uuid.uuid4().hex[:12]}"  # moto keeps its buckets for the process
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["access_key"],
                                   aws_secret_access_key=CREDENTIALS["secret_key"],
                                   region_name=CREDENTIALS["region"])

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False


@pytest.fixture
def s3(settings):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    store = S3(server, f"http://127.0.0.1:{port}")
    store.client.create_bucket(Bucket=store.bucket)
    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_storage(bucket=store.bucket, endpoint_url=store.endpoint, **CREDENTIALS)}
    yield store
    store.stop()


def pdf_with_facts():
    data = pdf_bytes()
    return data, file_inspect(data=data, filename="手册.pdf", kind="file")


def test_a_file_stored_on_s3_reads_back_the_same_bytes(s3):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    assert s3.keys() == [name]
    assert file_read(name=name) == data


def test_a_file_on_s3_keeps_its_content_type(s3):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    assert s3.client.head_object(Bucket=s3.bucket, Key=name)["ContentType"] == "application/pdf"


def test_the_same_bytes_stored_twice_on_s3_make_one_object(s3):
    data, facts = pdf_with_facts()
    assert file_store(data=data, facts=facts) == file_store(data=data, facts=facts)
    assert len(s3.keys()) == 1


def test_objects_on_s3_are_not_readable_without_a_signature(s3):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{s3.endpoint}/{s3.bucket}/{name}", timeout=5)
    assert refused.value.code == 403


def test_a_download_from_s3_is_a_redirect_to_a_presigned_url_that_serves_the_bytes(s3):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    response = file_response(name=name, download_name="门店手册.pdf", content_type=facts.mime, inline=False)
    assert response.status_code == 302 and response["Cache-Control"] == "no-store"
    url = response["Location"]
    assert url.startswith(f"{s3.endpoint}/{s3.bucket}/{name}?") and "Signature=" in url
    with urllib.request.urlopen(url, timeout=5) as served:
        assert served.read() == data
        assert served.headers["Content-Type"] == "application/pdf"
        assert served.headers["Content-Disposition"] == (
            "attachment; filename*=utf-8''%E9%97%A8%E5%BA%97%E6%89%8B%E5%86%8C.pdf")


def test_a_presigned_download_url_expires_after_five_minutes(s3):
    data, facts = pdf_with_facts()
    response = file_response(name=file_store(data=data, facts=facts), download_name="a.pdf",
                             content_type=facts.mime, inline=True)
    assert "X-Amz-Expires=300" in urlparse(response["Location"]).query


def test_storing_while_s3_is_down_says_the_store_is_unavailable_and_leaves_nothing(s3):
    data, facts = pdf_with_facts()
    s3.stop()
    with pytest.raises(StorageUnavailable, match="文件存储暂时不可用，文件没有保存"):
        file_store(data=data, facts=facts)


def test_reading_while_s3_is_down_says_the_store_is_unavailable(s3):
    data, facts = pdf_with_facts()
    name = file_store(data=data, facts=facts)
    s3.stop()
    with pytest.raises(StorageUnavailable, match="文件存储暂时不可用"):
        file_read(name=name)


SETTINGS_STORAGE = """
import json
from portal import settings
default = settings.STORAGES["default"]
options = {k: v for k, v in default.get("OPTIONS", {}).items() if k != "client_config"}
print(json.dumps({"backend": default["BACKEND"], "options": options,
                  "staticfiles": settings.STORAGES["staticfiles"]["BACKEND"]}))
"""


def settings_storage(**env: str) -> dict:
    base = {key: value for key, value in os.environ.items() if not key.startswith("XIAOER_S3_")}
    result = subprocess.run([sys.executable, "-c", SETTINGS_STORAGE], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2],
                            env={**base, "XIAOER_DEMO": "1", "DATABASE_URL": "postgresql://x@127.0.0.1:1/none", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_a_bucket_files_are_kept_in_the_media_folder():
    found = settings_storage()
    assert found["backend"] == "django.core.files.storage.FileSystemStorage" and found["options"] == {}


def test_a_bucket_in_the_environment_puts_files_on_s3_privately_with_short_signed_urls():
    found = settings_storage(XIAOER_S3_BUCKET="brand-materials", XIAOER_S3_ENDPOINT_URL="https://oss.example.com",
                             XIAOER_S3_ACCESS_KEY_ID="id", XIAOER_S3_SECRET_ACCESS_KEY="secret",
                             XIAOER_S3_REGION="cn-shanghai")
    assert found["backend"] == "storages.backends.s3.S3Storage"
    assert {key: found["options"][key] for key in ("bucket_name", "endpoint_url", "region_name", "default_acl",
                                                   "querystring_auth", "querystring_expire")} == {
        "bucket_name": "brand-materials", "endpoint_url": "https://oss.example.com", "region_name": "cn-shanghai",
        "default_acl": None, "querystring_auth": True, "querystring_expire": 300}


def test_static_files_keep_djangos_storage_whatever_the_bucket():
    found = settings_storage(XIAOER_S3_BUCKET="brand-materials")
    assert found["staticfiles"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
