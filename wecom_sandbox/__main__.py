"""The sandbox's command line: serve it, or play people in it.

    python -m wecom_sandbox serve [--port 8900] [--callback-url URL] [--data-dir DIR] [--day-in-the-life 0.2]
    python -m wecom_sandbox do members/add userid=zhangsan name=张三 department=[2]
    python -m wecom_sandbox do clock/advance seconds=86400
    python -m wecom_sandbox get state

Credentials come from the same WECOM_* variables as the portal (defaults: the sandbox corp).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.request

from wecom_sandbox import defaults


def corp_from_env():
    from wecom_sandbox.callbacks import CorpSecrets

    return CorpSecrets(
        corp_id=os.environ.get("WECOM_CORP_ID", defaults.CORP_ID),
        app_secret=os.environ.get("WECOM_SECRET", defaults.APP_SECRET),
        contact_secret=os.environ.get("WECOM_CONTACT_SECRET") or defaults.CONTACT_SECRET,
        agent_id=os.environ.get("WECOM_AGENT_ID", defaults.AGENT_ID),
        token=os.environ.get("WECOM_TOKEN", defaults.CALLBACK_TOKEN),
        aes_key=os.environ.get("WECOM_AES_KEY", defaults.CALLBACK_AES_KEY),
    )


def serve(args) -> int:
    from wecom_sandbox.server import Sandbox, make_server
    from wecom_sandbox.state import SandboxState

    state = SandboxState(data_dir=args.data_dir or None, config={"callback_url": args.callback_url or ""})
    sandbox = Sandbox(corp=corp_from_env(), state=state, callback_concurrency=args.callback_concurrency)
    server = make_server(sandbox=sandbox, host=args.host, port=args.port)
    state.start_saver()
    sandbox.start_ticker()
    if args.day_in_the_life:
        from wecom_sandbox.scenario import start_day_in_the_life

        start_day_in_the_life(sandbox, events_per_second=args.day_in_the_life)

    def stop(*_):
        state.save()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"WeCom sandbox on {sandbox.public_url}/cgi-bin/  (control: {sandbox.public_url}/sandbox/state)",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        state.save()
    return 0


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def control(args) -> int:
    url = f"{args.url.rstrip('/')}/sandbox/{args.action}"
    if args.command == "get":
        request = urllib.request.Request(url)
    else:
        body = dict(pair.split("=", 1) for pair in args.fields)
        request = urllib.request.Request(url, data=json.dumps({k: _value(v) for k, v in body.items()}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            print(json.dumps(json.loads(response.read()), ensure_ascii=False, indent=2))
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wecom_sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the sandbox server")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", defaults.PORT)))
    run.add_argument("--callback-url", default=os.environ.get("SANDBOX_CALLBACK_URL", ""))
    run.add_argument("--data-dir", default=os.environ.get("SANDBOX_DATA_DIR", ""))
    run.add_argument("--callback-concurrency", type=int, default=1,
                     help="deliver this many callbacks at once, as WeCom does under load (1: strictly in order)")
    run.add_argument("--day-in-the-life", type=float, default=0.0, metavar="EVENTS_PER_SECOND",
                     help="generate realistic traffic (customers adding, deleting, guides editing, …)")
    default_url = os.environ.get("XIAOER_SANDBOX_URL", f"http://127.0.0.1:{defaults.PORT}").split("/sandbox")[0]
    for name in ("do", "get"):
        action = sub.add_parser(name, help="POST (do) or GET a control action, e.g. members/add, state")
        action.add_argument("action")
        action.add_argument("fields", nargs="*", help="key=value (values may be JSON)")
        action.add_argument("--url", default=default_url)
    args = parser.parse_args(argv)
    return serve(args) if args.command == "serve" else control(args)


if __name__ == "__main__":
    sys.exit(main())
