"""The sandbox's storage: JSON-able tables in memory, a movable clock, and a snapshot on disk.

Every request runs under one lock (``SandboxState.lock``), so handlers read and write tables
without further care. A background saver writes the snapshot a moment after a change, so a
restarted sandbox (``make run`` again) still knows its members, customers and codes.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    "rate_per_minute": 10_000,  # per endpoint, like WeCom's per-corp quota (→ 45009)
    "max_concurrent": 0,  # 0: unlimited; otherwise → 45033 above it
    "callback_url": "",
    "callback_timeout": 5.0,  # WeCom waits 5 s for "success", then retries
    "callback_retries": 3,
    "callback_duplicate": 1,  # deliver every callback this many times
    "callback_hold": False,  # keep callbacks queued until /sandbox/callbacks/release (to reorder them)
    "customer_limit": 5_000,  # external contacts per member
    # App messages (message/send, messaging.py). Per app and member WeCom delivers at most 30 a minute and
    # 1,000 an hour and silently drops the rest; per app and day at most 账号上限数 × 200 人次 (recipients
    # counted per call). account_limit is the corp's licensed seats (sandbox choice: 20,000);
    # app_message_per_day 0 means account_limit × 200.
    "app_message_per_member_minute": 30,
    "app_message_per_member_hour": 1_000,
    "account_limit": 20_000,
    "app_message_per_day": 0,
    # A template card's response_code updates it once (message/update_template_card), within this many
    # seconds: 24 h per WECOM.md and the issue; WeCom's page 94945 (2025-07) says 72 h.
    "template_card_code_seconds": 86_400,
}

_ALPHABET = string.ascii_letters + string.digits


class SandboxState:
    def __init__(self, *, data_dir: str | Path | None = None, config: dict | None = None):
        self.lock = threading.RLock()
        self.data_dir = Path(data_dir) if data_dir else None
        self.base_config = {**DEFAULT_CONFIG, **(config or {})}
        self._dirty = threading.Event()
        self.data: dict[str, Any] = {}
        self.reset()
        self._load()

    # -- tables -----------------------------------------------------------------------------
    def reset(self, *, keep_config: bool = True) -> None:
        with self.lock:
            config = dict(self.data.get("config", self.base_config)) if keep_config else dict(self.base_config)
            self.data = {"config": config, "clock_offset": 0.0, "counters": {}, "tables": {}}
            self.mark_dirty()

    def table(self, name: str) -> dict[str, Any]:
        """A named table (dict keyed by string id), created empty on first use."""
        return self.data["tables"].setdefault(name, {})

    @property
    def config(self) -> dict[str, Any]:
        return self.data["config"]

    def next_id(self, kind: str, start: int = 1) -> int:
        counters = self.data["counters"]
        counters[kind] = max(counters.get(kind, start - 1), start - 1) + 1
        return counters[kind]

    @staticmethod
    def random_id(prefix: str, length: int = 30) -> str:
        return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))

    # -- clock ------------------------------------------------------------------------------
    def now(self) -> float:
        """The sandbox's time: real time plus whatever tests advanced it by."""
        return time.time() + self.data["clock_offset"]

    def now_int(self) -> int:
        return int(self.now())

    def advance(self, seconds: float) -> float:
        with self.lock:
            self.data["clock_offset"] += float(seconds)
            self.mark_dirty()
            return self.now()

    # -- persistence ------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty.set()

    @property
    def _snapshot_path(self) -> Path | None:
        return self.data_dir / "state.json" if self.data_dir else None

    def _load(self) -> None:
        path = self._snapshot_path
        if path and path.exists():
            loaded = json.loads(path.read_text("utf-8"))
            loaded["config"] = {**self.base_config, **loaded.get("config", {}),
                                **{k: v for k, v in self.base_config.items() if k == "callback_url" and v}}
            self.data = loaded

    def save(self) -> None:
        path = self._snapshot_path
        if not path:
            return
        with self.lock:
            self._dirty.clear()
            text = json.dumps(self.data, ensure_ascii=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)

    def start_saver(self, *, every: float = 1.0) -> None:
        def loop() -> None:
            while True:
                self._dirty.wait()
                time.sleep(every)
                self.save()

        if self.data_dir:
            threading.Thread(target=loop, name="sandbox-saver", daemon=True).start()
