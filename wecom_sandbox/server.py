"""The sandbox's HTTP side: WeCom's API under ``/cgi-bin/`` and the people-playing control API under ``/sandbox/``.

An area module registers its endpoints and control actions with decorators::

    @endpoint("externalcontact/get", methods=("GET",))
    def external_contact_get(call: Call) -> dict:
        contact = call.require_customer(call.query.get("external_userid"))
        ...
        return {"external_contact": ..., "follow_user": [...]}      # errcode 0 is added

    @control("customers/scan")
    def customer_scans(call: Call) -> dict: ...                     # POST /sandbox/customers/scan

Handlers raise ``ApiError(errcode, errmsg)`` for WeCom's error answers. Every request runs under
the state's lock, so handlers never see a half-made change.

The control API and the sandbox's pages (``/sandbox/``, ``/sandbox-file/``) answer only requests whose
Host is loopback (127.0.0.1, localhost, [::1], with any port; more names in SANDBOX_ALLOWED_HOSTS), so
a web page a developer visits cannot reach them through DNS rebinding; a control POST must be JSON
(``Content-Type: application/json``), which a cross-site form cannot send without a CORS preflight
that the sandbox never grants. ``/cgi-bin/`` answers like WeCom, whatever the Host.
"""

from __future__ import annotations

import collections
import importlib
import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from wecom_sandbox.callbacks import CallbackSender, CorpSecrets
from wecom_sandbox.state import SandboxState

AREAS = ("addressbook", "contacts", "messaging", "transfer", "scenario")
TOKEN_SECONDS = 7200


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


@dataclass(frozen=True)
class RawReply:
    """A handler's non-JSON answer (media/get returns the file's bytes)."""

    content_type: str
    data: bytes
    headers: tuple[tuple[str, str], ...] = ()


class HttpFault(Exception):
    def __init__(self, status: int):
        self.status = status


# WeCom's own messages for the codes every area shares.
INVALID_PARAMETER = 40058
MISSING_PARAMETER = 41001  # only for access_token; WeCom reports other missing fields as 40058 / 41xxx


@dataclass
class Endpoint:
    path: str
    methods: tuple[str, ...]
    handler: Callable[[Call], dict]
    auth: bool = True


ENDPOINTS: dict[str, Endpoint] = {}
CONTROLS: dict[str, Endpoint] = {}
TICKS: list[Callable[[Sandbox], None]] = []


def endpoint(path: str, *, methods: tuple[str, ...] = ("POST",), auth: bool = True):
    def register(func):
        ENDPOINTS[path] = Endpoint(path=path, methods=methods, handler=func, auth=auth)
        return func

    return register


def control(path: str, *, methods: tuple[str, ...] = ("POST",)):
    def register(func):
        CONTROLS[path] = Endpoint(path=path, methods=methods, handler=func, auth=False)
        return func

    return register


def on_tick(func: Callable[[Sandbox], None]):
    """Run ``func(sandbox)`` (under the state lock) whenever time moves: every second, and after clock/advance.

    For what WeCom does on its own as time passes: transfers taken over after 24 h, media expiring
    after 3 days, asynchronous jobs finishing. A tick may call ``sandbox.callbacks.emit``.
    """
    TICKS.append(func)
    return func


@dataclass
class Call:
    """One request as a handler sees it."""

    sandbox: Sandbox
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    token: dict | None = None

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    def now(self) -> int:
        return self.state.now_int()

    def emit(self, event: str, change_type: str = "", *, from_user: str = "sys", **fields) -> None:
        """Fire a callback at the portal (after this request's changes are in the state)."""
        self.sandbox.callbacks.emit(event, change_type, from_user=from_user, **fields)

    def arg(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        """A parameter from the JSON body, else the query string."""
        value = self.body.get(name, self.query.get(name, default))
        if required and value in (None, "", []):
            raise ApiError(INVALID_PARAMETER, f"invalid parameter, {name} is required")
        return value


class Sandbox:
    """State, callbacks and credentials of one fake corp."""

    def __init__(self, *, corp: CorpSecrets, state: SandboxState, public_url: str = "http://127.0.0.1:8900",
                 callback_concurrency: int = 1):
        self.corp, self.state = corp, state
        self.public_url = public_url.rstrip("/")  # where QR codes and media URLs point
        self.callbacks = CallbackSender(corp=corp, config=state.config, clock=state.now,
                                        concurrency=callback_concurrency)
        self.recent_calls: collections.deque[dict] = collections.deque(maxlen=2000)
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        for area in AREAS:
            importlib.import_module(f"wecom_sandbox.{area}")

    def tick(self) -> None:
        with self.state.lock:
            for func in TICKS:
                func(self)

    def start_ticker(self, every: float = 1.0) -> None:
        def loop() -> None:
            while True:
                time.sleep(every)
                self.tick()

        threading.Thread(target=loop, name="sandbox-ticker", daemon=True).start()

    def reset(self) -> None:
        """Back to an empty corp with the configuration it was started with (faults and limits cleared)."""
        with self.state.lock:
            self.state.reset(keep_config=False)
            self.callbacks.config = self.state.config
            self.callbacks.clear()
            self.recent_calls.clear()

    # -- the WeCom API ---------------------------------------------------------------------
    def handle_api(self, call: Call) -> tuple[int, dict | RawReply]:
        with self._in_flight_lock:
            self._in_flight += 1
            in_flight = self._in_flight
        started = time.perf_counter()
        try:
            result = self._api(call, in_flight)
            status = 200
        except ApiError as exc:
            result, status = _error(exc.errcode, exc.errmsg), 200
        except HttpFault as exc:
            result, status = {"error": f"HTTP {exc.status}"}, exc.status
        except Exception:  # a sandbox bug must look like WeCom having a bad moment, not a dropped connection
            import traceback

            traceback.print_exc()
            result, status = _error(-1, "system busy (sandbox handler error, see its log)"), 200
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
        errcode = 0 if isinstance(result, RawReply) else result.get("errcode")
        self.recent_calls.append({"at": time.time(), "endpoint": call.path, "method": call.method,
                                  "query": {k: v for k, v in call.query.items() if k != "access_token"},
                                  "body": call.body, "errcode": errcode, "status": status,
                                  "ms": round((time.perf_counter() - started) * 1000, 2)})
        return status, result

    def _api(self, call: Call, in_flight: int) -> dict | RawReply:
        route = ENDPOINTS.get(call.path)
        if route is None:
            raise ApiError(48001, f"api forbidden: the sandbox does not implement {call.path}")
        if call.method not in route.methods:
            raise ApiError(INVALID_PARAMETER, f"method {call.method} not allowed")
        self._inject_fault(call.path)
        limit = int(self.state.config.get("max_concurrent") or 0)
        if limit and in_flight > limit:
            raise ApiError(45033, "api concurrent out of limit")
        with self.state.lock:
            if route.auth:
                call.token = self._token_check(call.query.get("access_token", ""))
            self._rate_check(call.path)
            result = route.handler(call) or {}
            self.state.mark_dirty()
        if isinstance(result, RawReply):
            return result
        return {"errcode": 0, "errmsg": "ok", **result}

    def _inject_fault(self, path: str) -> None:
        """Faults the tests asked for: an errcode, an HTTP status or a delay, a given number of times, after
        ``after`` calls of the endpoint have passed untouched (a fault in the middle of a batch)."""
        with self.state.lock:
            faults = self.state.config.setdefault("faults", [])
            fault = next((f for f in faults if f.get("endpoint") in (path, "*") and f.get("times", 1) > 0), None)
            if fault is None:
                return
            if int(fault.get("after") or 0) > 0:
                fault["after"] = int(fault["after"]) - 1
                return
            fault["times"] = fault.get("times", 1) - 1
            if fault["times"] <= 0:
                faults.remove(fault)
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault.get("http_status"):
            raise HttpFault(int(fault["http_status"]))
        if fault.get("errcode"):
            raise ApiError(int(fault["errcode"]), fault.get("errmsg") or _MESSAGES.get(int(fault["errcode"]), "fault"))

    def _token_check(self, token: str) -> dict:
        if not token:
            raise ApiError(41001, "access_token missing")
        info = self.state.table("tokens").get(token)
        if info is None:
            raise ApiError(40014, "invalid access_token")
        if info["expires_at"] <= self.state.now():
            raise ApiError(42001, "access_token expired")
        return info

    def _rate_check(self, path: str) -> None:
        window = int(self.state.now() // 60)
        counters = self.state.table("rate")
        key = f"{path}@{window}"
        counters[key] = counters.get(key, 0) + 1
        if len(counters) > 5000:  # forget old windows
            for old in [k for k in counters if not k.endswith(f"@{window}")]:
                del counters[old]
        if counters[key] > int(self.state.config.get("rate_per_minute", 10_000)):
            raise ApiError(45009, "api freq out of limit")


_MESSAGES = {45009: "api freq out of limit", 45033: "api concurrent out of limit", -1: "system busy",
             40014: "invalid access_token", 42001: "access_token expired"}


def _error(errcode: int, errmsg: str) -> dict:
    return {"errcode": errcode,
            "errmsg": f"{errmsg}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"}


@endpoint("gettoken", methods=("GET",), auth=False)
def gettoken(call: Call) -> dict:
    corp = call.sandbox.corp
    if call.query.get("corpid") != corp.corp_id:
        raise ApiError(40013, "invalid corpid")
    kinds = {corp.app_secret: "app", corp.contact_secret: "contact"}
    kind = kinds.get(call.query.get("corpsecret", ""))
    if kind is None:
        raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
    token = call.state.random_id("sbx-", 40)
    call.state.table("tokens")[token] = {"kind": kind, "expires_at": call.now() + TOKEN_SECONDS}
    return {"access_token": token, "expires_in": TOKEN_SECONDS}


# -- the control API: what tests, the CLI and the demo script use -------------------------------
@control("state", methods=("GET",))
def state_summary(call: Call) -> dict:
    tables = call.state.data["tables"]
    return {"now": call.now(), "config": call.state.config, "callbacks": {**call.sandbox.callbacks.stats,
                                                                          **call.sandbox.callbacks.pending()},
            "tables": {name: len(rows) for name, rows in tables.items() if name not in ("rate",)}}


@control("reset")
def state_reset(call: Call) -> dict:
    call.sandbox.reset()
    return {"reset": True}


@control("config", methods=("GET", "POST"))
def config_update(call: Call) -> dict:
    if call.method == "POST":
        call.state.config.update(call.body)
    return {"config": call.state.config}


@control("faults")
def fault_add(call: Call) -> dict:
    """{"endpoint": "user/list" | "*", "errcode": 45009 | "http_status": 500 | "delay": 3, "times": 2, "after": 1}"""
    call.state.config.setdefault("faults", []).append({"times": 1, **call.body})
    return {"faults": call.state.config["faults"]}


@control("clock/advance")
def clock_advance(call: Call) -> dict:
    """Move the sandbox's clock forward (a 24 h takeover or a 3-day media expiry in a second)."""
    now = call.state.advance(float(call.arg("seconds", 0)))
    call.sandbox.tick()
    return {"now": int(now)}


@control("tokens/expire")
def tokens_expire(call: Call) -> dict:
    """Every issued access token expires now (the next call gets 42001, as after 7,200 s)."""
    tokens = call.state.table("tokens")
    for info in tokens.values():
        info["expires_at"] = call.now() - 1
    return {"expired": len(tokens)}


@control("calls", methods=("GET",))
def calls_recent(call: Call) -> dict:
    endpoint_filter = call.query.get("endpoint")
    calls = [c for c in call.sandbox.recent_calls if not endpoint_filter or c["endpoint"] == endpoint_filter]
    return {"calls": calls[-int(call.query.get("limit", 200)):]}


@control("callbacks", methods=("GET",))
def callbacks_log(call: Call) -> dict:
    sender = call.sandbox.callbacks
    return {**sender.stats, **sender.pending(), "log": list(sender.log)[-int(call.query.get("limit", 100)):]}


@control("callbacks/release")
def callbacks_release(call: Call) -> dict:
    return {"released": call.sandbox.callbacks.release(order=call.arg("order", "fifo"))}


def callbacks_drain(sandbox: Sandbox, timeout: float) -> dict:
    # Outside the state lock: deliveries make the portal call back into the sandbox.
    return {"drained": sandbox.callbacks.drain(timeout=timeout), **sandbox.callbacks.pending()}


LOOPBACK_NAMES = frozenset({"localhost"})


def host_name(host: str) -> str:
    """The Host header without its port: "127.0.0.1:8900" → "127.0.0.1", "[::1]:8900" → "::1"; "" if malformed."""
    host = host.strip().lower()
    port: str | None
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return ""
        port = port[1:] if port else None
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:
        name, port = host, None
    if port is not None and not (port.isascii() and port.isdigit()):
        return ""
    return name


def host_is_allowed(host: str, extra_hosts: frozenset[str] = frozenset()) -> bool:
    name = host_name(host)
    if not name:
        return False
    if name in LOOPBACK_NAMES or name in extra_hosts:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name: a rebinding attacker's domain, or a LAN name nobody allowed


def request_refusal(*, method: str, host: str, content_type: str, control: bool,
                    extra_hosts: frozenset[str] = frozenset()) -> tuple[int, dict] | None:
    """Why a request to the control API or the sandbox's pages is refused: (HTTP status, answer), or None."""
    if not host_is_allowed(host, extra_hosts):
        return 403, {"error": f"the sandbox answers loopback hosts only, not {host_name(host) or 'no Host'!r} "
                              "(add it to SANDBOX_ALLOWED_HOSTS)"}
    media_type = content_type.split(";", 1)[0].strip().lower()
    if control and method == "POST" and media_type != "application/json":
        return 415, {"error": "control actions take a JSON body (Content-Type: application/json)"}
    return None


def allowed_hosts_from_env() -> frozenset[str]:
    return frozenset(h.strip().lower() for h in os.environ.get("SANDBOX_ALLOWED_HOSTS", "").split(",") if h.strip())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Keep-alive clients (the gateway) would otherwise wait ~40 ms per call: the headers and the body go
    # out as two segments, and Nagle holds the second until the client's delayed ACK of the first.
    disable_nagle_algorithm = True
    sandbox: Sandbox  # set on the subclass made by serve()
    allowed_hosts: frozenset[str] = frozenset()  # names besides loopback (make_server: SANDBOX_ALLOWED_HOSTS)

    def log_message(self, format, *args):
        return

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: dict = {}
        content_type = self.headers.get("Content-Type", "")
        path = parts.path
        if path.startswith(("/sandbox/", "/sandbox-file/")):
            refusal = request_refusal(method=method, host=self.headers.get("Host", ""),
                                      content_type=content_type, control=path.startswith("/sandbox/"),
                                      extra_hosts=self.allowed_hosts)
            if refusal is not None:
                return self._json(*refusal)
        if raw and "multipart/form-data" not in content_type:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return self._json(200, _error(47001, "data format error"))
            if not isinstance(body, dict):
                return self._json(200, _error(47001, "data format error"))
        call = Call(sandbox=self.sandbox, method=method, path="", query=query, body=body, raw=raw,
                    headers={k.lower(): v for k, v in self.headers.items()})
        if path.startswith("/cgi-bin/"):
            call.path = path[len("/cgi-bin/"):].strip("/")
            status, result = self.sandbox.handle_api(call)
            if isinstance(result, RawReply):
                return self._send(status, result.content_type, result.data, result.headers)
            return self._json(status, result)
        if path.startswith("/sandbox/"):
            return self._control(call, path[len("/sandbox/"):].strip("/"))
        if path.startswith("/sandbox-file/"):  # file servers get "kind/rest[?query]"
            return self._file(path[len("/sandbox-file/"):] + (f"?{parts.query}" if parts.query else ""))
        return self._json(404, {"error": "not found"})

    def _control(self, call: Call, name: str) -> None:
        call.path = name
        if name == "callbacks/drain":
            return self._json(200, callbacks_drain(self.sandbox, float(call.arg("timeout_seconds", 30))))
        route = CONTROLS.get(name)
        if route is None or call.method not in route.methods:
            return self._json(404, {"error": f"unknown control {call.method} {name}",
                                    "controls": sorted(CONTROLS)})
        try:
            with self.sandbox.state.lock:
                result = route.handler(call)
                self.sandbox.state.mark_dirty()
        except ApiError as exc:
            return self._json(400, {"error": exc.errmsg, "errcode": exc.errcode})
        except Exception as exc:  # a bad control request (missing field, wrong type) answers, never hangs up
            return self._json(500, {"error": f"{type(exc).__name__}: {exc}"})
        return self._json(200, result)

    def _file(self, name: str) -> None:
        files = FILE_SERVERS.get(name.split("/", 1)[0])
        payload = files(self.sandbox, name) if files else None
        if payload is None:
            return self._json(404, {"error": "not found"})
        content_type, data = payload
        self._send(200, content_type, data)

    def _json(self, status: int, data: dict) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(data, ensure_ascii=False).encode())

    def _send(self, status: int, content_type: str, data: bytes, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# /sandbox-file/<kind>/...: binary things WeCom hands out as URLs (QR codes, media, the OAuth page).
# kind → (sandbox, "kind/rest[?query]") → (content type, bytes) or None.
FILE_SERVERS: dict[str, Callable[[Sandbox, str], tuple[str, bytes] | None]] = {}


def file_server(kind: str):
    def register(func):
        FILE_SERVERS[kind] = func
        return func

    return register


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up waiting is not news
            super().handle_error(request, client_address)


def make_server(*, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 8900) -> ThreadingHTTPServer:
    """The HTTP server (call serve_forever); port 0 picks a free port, and sandbox.public_url follows it."""
    # The bind address too (public_url, in QR codes and media URLs, names it): never a rebinding domain.
    allowed = allowed_hosts_from_env() | {host_name(host)} - {""}
    handler = type("SandboxHandler", (_Handler,), {"sandbox": sandbox, "allowed_hosts": frozenset(allowed)})
    server = _Server((host, port), handler)
    sandbox.public_url = f"http://{host}:{server.server_address[1]}"
    return server
