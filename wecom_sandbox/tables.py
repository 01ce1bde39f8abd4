"""Rows every area shares, so each area module reads them the same way.

Tables (``call.state.table(name)``, dicts keyed by string ids, values JSON-able):

    users        userid → member (addressbook.py)
    departments  "id"   → department (addressbook.py)
    customers    external_userid → {external_userid, name, type (1 WeChat, 2 WeCom), gender, avatar,
                                    unionid, corp_name, corp_full_name, position}
    follows      "userid|external_userid" → {userid, external_userid, remark, description, createtime,
                                    tag_ids: [...], remark_mobiles: [...], add_way, state, oper_userid,
                                    status: "active" | "deleted_by_member" | "deleted_by_customer"
                                    | "transferred", ended_at}
    tag_groups   group_id → {group_id, group_name, create_time, order, deleted}
    tags         tag_id → {id, name, group_id, create_time, order, deleted}

Area-private tables: contact_ways, welcome_codes (contacts.py); msg_templates, moments, media,
app_messages, oauth_codes, mass_receipts, moment_jobs, moment_rate, media_images (messaging.py);
transfers, transfers_waiting, transfer_history, groupchats, chat_transfer_days (transfer.py).
"""

from __future__ import annotations

from wecom_sandbox.server import ApiError, Call

NOT_EXTERNAL_CONTACT = 84061  # "not external contact": no such relationship
INVALID_EXTERNAL_USERID = 40096


def follow_key(userid: str, external_userid: str) -> str:
    return f"{userid}|{external_userid}"


def customer_get_or_error(call: Call, external_userid: str | None) -> dict:
    customer = call.state.table("customers").get(external_userid or "")
    if customer is None:
        raise ApiError(INVALID_EXTERNAL_USERID, f"invalid external userid: {external_userid}")
    return customer


def follow_active(call: Call, userid: str, external_userid: str) -> dict | None:
    row = call.state.table("follows").get(follow_key(userid, external_userid))
    return row if row and row["status"] == "active" else None


def follows_of_customer(call: Call, external_userid: str) -> list[dict]:
    return [f for f in call.state.table("follows").values()
            if f["external_userid"] == external_userid and f["status"] == "active"]


def follows_of_member(call: Call, userid: str) -> list[dict]:
    return [f for f in call.state.table("follows").values() if f["userid"] == userid and f["status"] == "active"]


def follow_end(call: Call, row: dict, *, status: str) -> None:
    row["status"], row["ended_at"] = status, call.now()


def follow_create(call: Call, *, userid: str, external_userid: str, add_way: int = 1, state: str = "",
                  oper_userid: str | None = None) -> dict:
    """A new (or renewed) active relationship between a member and a customer."""
    row = {"userid": userid, "external_userid": external_userid, "remark": "", "description": "",
           "createtime": call.now(), "tag_ids": [], "remark_mobiles": [], "add_way": add_way, "state": state,
           "oper_userid": oper_userid or external_userid, "status": "active", "ended_at": None}
    call.state.table("follows")[follow_key(userid, external_userid)] = row
    return row
