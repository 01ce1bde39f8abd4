"""A client for the sandbox's control API, and a way to start the sandbox as its own process.

Used by ``make run`` (portal/run.py), ``seed_demo``, the tests and the benchmarks; standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class SandboxControlError(RuntimeError):
    pass


class SandboxControl:
    def __init__(self, url: str):
        self.url = url.rstrip("/").removesuffix("/sandbox")

    @property
    def api_base(self) -> str:
        return f"{self.url}/cgi-bin/"

    def _request(self, request: urllib.request.Request, timeout: float) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SandboxControlError(f"{request.full_url}: {exc.code} {exc.read().decode()[:300]}") from exc

    def do(self, action: str, /, _timeout: float = 60, **body) -> dict:
        """POST /sandbox/<action> with a JSON body, e.g. do("members/add", userid="zs", name="张三")."""
        request = urllib.request.Request(f"{self.url}/sandbox/{action}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        return self._request(request, _timeout)

    def get(self, action: str, timeout: float = 30, **query) -> dict:
        from urllib.parse import urlencode

        suffix = f"?{urlencode(query)}" if query else ""
        return self._request(urllib.request.Request(f"{self.url}/sandbox/{action}{suffix}"), timeout)

    def api(self, endpoint: str, *, params: dict | None = None, body: dict | None = None) -> dict:
        """Call the sandbox's WeCom API directly (tests that check what the sandbox itself answers)."""
        from urllib.parse import urlencode

        url = f"{self.api_base}{endpoint}?{urlencode(params or {})}"
        data = json.dumps(body).encode() if body is not None else None
        return self._request(urllib.request.Request(url, data=data, method="POST" if data else "GET"), 30)

    def reset(self, **config) -> None:
        self.do("reset")
        if config:
            self.do("config", **config)

    def drain(self, timeout: float = 30) -> dict:
        return self.do("callbacks/drain", _timeout=timeout + 5, timeout_seconds=timeout)

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get("state", timeout=1)
                return
            except (OSError, SandboxControlError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def sandbox_spawn(*, port: int, callback_url: str = "", data_dir: Path | None = None,
                  env: dict | None = None, events_per_second: float = 0.0,
                  callback_concurrency: int = 1) -> subprocess.Popen:
    """Start the sandbox as its own process (as make run and the tests do)."""
    command = [sys.executable, "-m", "wecom_sandbox", "serve", "--port", str(port),
               "--callback-url", callback_url, "--day-in-the-life", str(events_per_second),
               "--callback-concurrency", str(callback_concurrency)]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               cwd=Path(__file__).resolve().parents[1])
    SandboxControl(f"http://127.0.0.1:{port}").wait_ready()
    return process
