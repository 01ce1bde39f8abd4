"""A day in the life of a chain's WeCom: scripted, realistic traffic for the demo.

Customers scan store and staff codes, a few delete or block a guide, guides edit remarks, now
and then a guide joins or leaves, guides confirm pending mass sends and some customers refuse
a transfer. Each step is one of the control actions a test would call, run inside the sandbox
(so callbacks reach the portal exactly as in the tests).

    python -m wecom_sandbox serve --day-in-the-life 0.2     # about one event every 5 s
    python -m wecom_sandbox do scenario/step count=50       # a burst, on demand
    python -m wecom_sandbox do scenario/arrivals count=40   # only new customers, through the codes

``make run`` asks for ``scenario/arrivals`` once, when the portal's web server and worker are up, so
the demo starts with customers who came through its store, staff and channel codes.
"""

from __future__ import annotations

import random
import threading
import time

from wecom_sandbox.contacts import WAY_CONFIG_INVALID
from wecom_sandbox.server import CONTROLS, INVALID_PARAMETER, ApiError, Call, Sandbox, control

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"

# (weight, step): weights are the share of a day's events.
_STEPS: list[tuple[int, str]] = [
    (50, "scan"), (12, "direct_add"), (6, "customer_deletes"), (3, "member_deletes"), (14, "edit"),
    (2, "member_joins"), (1, "member_leaves"), (8, "confirm_mass_send"), (2, "refuse_transfer"),
]


def _customer(rng: random.Random) -> dict:
    name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
    return {"name": name, "gender": rng.choice([1, 2]), "type": 1,
            "unionid": "oSbx" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))}


def _run(sandbox: Sandbox, action: str, /, **body) -> dict | None:
    route = CONTROLS.get(action)
    if route is None:
        return None
    call = Call(sandbox=sandbox, method="POST", path=action, query={}, body=body)
    try:
        return route.handler(call)
    except ApiError:
        return None  # e.g. a guide at the customer limit: a real day has those too


def _active_follows(sandbox: Sandbox) -> list[dict]:
    return [f for f in sandbox.state.table("follows").values() if f["status"] == "active"]


def _active_members(sandbox: Sandbox) -> list[dict]:
    return [m for m in sandbox.state.table("users").values() if int(m.get("status", 1)) == 1]


def step(sandbox: Sandbox, rng: random.Random) -> str:
    """One event of the day; returns what happened (or 'idle' when nothing fitted)."""
    kind = rng.choices([s for _, s in _STEPS], weights=[w for w, _ in _STEPS])[0]
    members, follows = _active_members(sandbox), _active_follows(sandbox)
    ways = list(sandbox.state.table("contact_ways"))
    done = None
    if kind == "scan" and ways:
        done = _run(sandbox, "customers/scan", config_id=rng.choice(ways), customer=_customer(rng))
    elif kind in ("scan", "direct_add") and members:
        done = _run(sandbox, "customers/add", userid=rng.choice(members)["userid"], customer=_customer(rng))
    elif kind == "customer_deletes" and follows:
        row = rng.choice(follows)
        done = _run(sandbox, "customers/delete_member", userid=row["userid"], external_userid=row["external_userid"])
    elif kind == "member_deletes" and follows:
        row = rng.choice(follows)
        done = _run(sandbox, "members/delete_customer", userid=row["userid"], external_userid=row["external_userid"])
    elif kind == "edit" and follows:
        row = rng.choice(follows)
        done = _run(sandbox, "customers/edit", userid=row["userid"], external_userid=row["external_userid"],
                    remark=f"{rng.choice(['老顾客', '新客', '爱吃水果', '周末到店'])}")
    elif kind == "member_joins" and members:
        peer = rng.choice(members)
        userid = f"day{sandbox.state.next_id('scenario_member'):04d}"
        done = _run(sandbox, "members/add", userid=userid, name=_customer(rng)["name"],
                    department=peer["department"], position="导购")
    elif kind == "member_leaves" and len(members) > 10:
        done = _run(sandbox, "members/delete", userid=rng.choice(members)["userid"])
    elif kind == "confirm_mass_send":
        pending = [m for m in sandbox.state.table("msg_templates").values() if m.get("status", 0) == 0]
        if pending:  # every member of the send confirms it on their phone
            done = _run(sandbox, "mass_send/confirm_all", msgid=rng.choice(pending).get("msgid"))
    elif kind == "refuse_transfer":
        waiting = [t for t in sandbox.state.table("transfers").values() if t.get("status") == 2]
        if waiting:
            done = _run(sandbox, "transfers/refuse", external_userid=rng.choice(waiting).get("external_userid"))
    return kind if done is not None else "idle"


def start_day_in_the_life(sandbox: Sandbox, *, events_per_second: float, seed: int | None = None) -> None:
    rng = random.Random(seed)

    def loop() -> None:
        while True:
            time.sleep(rng.expovariate(events_per_second))
            with sandbox.state.lock:
                step(sandbox, rng)
                sandbox.state.mark_dirty()

    threading.Thread(target=loop, name="sandbox-day-in-the-life", daemon=True).start()


@control("scenario/step")
def scenario_step(call: Call) -> dict:
    """Run ``count`` steps of the day at once (seeded with ``seed`` for repeatable runs)."""
    rng = random.Random(call.arg("seed"))
    happened: dict[str, int] = {}
    for _ in range(int(call.arg("count", 1))):
        kind = step(call.sandbox, rng)
        happened[kind] = happened.get(kind, 0) + 1
    return {"happened": happened}


ARRIVALS_MAX = 1000  # one request holds the state's lock: keep it short


@control("scenario/arrivals")
def scenario_arrivals(call: Call) -> dict:
    """``count`` new customers each scan one of the corp's existing contact ways (nothing else happens).

    Optional ``seed`` (repeatable choices) and ``config_ids`` (only these ways). Each scan is WeCom's
    own: the way's rotation picks the member, a welcome code valid 20 s is issued and
    ``add_external_contact`` (with the way's ``state``) is fired at the portal. A scan WeCom refuses
    (every member at the customer limit or disabled) is counted, not raised.
    """
    count = int(call.arg("count", 10))
    if not 0 <= count <= ARRIVALS_MAX:
        raise ApiError(INVALID_PARAMETER, f"invalid count: {count} (0..{ARRIVALS_MAX})")
    table = call.state.table("contact_ways")
    wanted = call.arg("config_ids") or []
    wanted = [wanted] if isinstance(wanted, str) else list(dict.fromkeys(wanted))
    unknown = [c for c in wanted if c not in table]
    if unknown:
        raise ApiError(WAY_CONFIG_INVALID, f"invalid contact way config_id: {unknown}")
    ways = wanted or sorted(table)
    rng = random.Random(call.arg("seed"))
    arrivals, refused = [], 0
    for _ in range(count if ways else 0):
        config_id = rng.choice(ways)
        added = _run(call.sandbox, "customers/scan", config_id=config_id, customer=_customer(rng))
        if added is None:
            refused += 1
            continue
        arrivals.append({"config_id": config_id, "state": table[config_id].get("state", ""),
                         "userid": added["userid"], "external_userid": added["external_userid"]})
    return {"arrived": len(arrivals), "refused": refused, "ways": len(ways), "arrivals": arrivals}
