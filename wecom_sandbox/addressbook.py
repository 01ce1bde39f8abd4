"""Address book: departments and members, and the people who join, move and leave (→ change_contact)."""

from __future__ import annotations

from wecom_sandbox.server import INVALID_PARAMETER, ApiError, Call, control, endpoint

USER_NOT_FOUND = 60111
DEPARTMENT_NOT_FOUND = 60123
ROOT_DEPARTMENT = {"id": 1, "name": "沙箱企业", "name_en": "", "parentid": 0, "order": 100000000,
                   "department_leader": []}
MEMBER_FIELDS = ("name", "department", "main_department", "position", "mobile", "gender", "email", "alias",
                 "status", "avatar", "is_leader_in_dept", "telephone", "order", "enable")


def departments(call: Call) -> dict[str, dict]:
    table = call.state.table("departments")
    if not table:
        table["1"] = dict(ROOT_DEPARTMENT)
    return table


def members(call: Call) -> dict[str, dict]:
    return call.state.table("users")


def member_get_or_error(call: Call, userid: str | None) -> dict:
    member = members(call).get(userid or "")
    if member is None:
        raise ApiError(USER_NOT_FOUND, f"userid not found: {userid}")
    return member


def member_is_active(member: dict) -> bool:
    return int(member.get("status", 1)) == 1


def _descendants(call: Call, root: int) -> set[int]:
    table = departments(call)
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [d["id"] for d in table.values() if d["parentid"] == parent and d["id"] not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _department_ids(call: Call) -> set[int]:
    department_id = call.arg("department_id", call.arg("id"))
    if department_id in (None, ""):
        return set()
    try:
        department_id = int(department_id)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, "invalid department_id") from exc
    if str(department_id) not in departments(call):
        raise ApiError(DEPARTMENT_NOT_FOUND, f"department not found: {department_id}")
    fetch_child = str(call.arg("fetch_child", "0")) == "1"
    return _descendants(call, department_id) if fetch_child else {department_id}


@endpoint("department/list", methods=("GET",))
def department_list(call: Call) -> dict:
    wanted = _department_ids(call) if call.arg("id") not in (None, "") else None
    if wanted is not None:
        wanted = _descendants(call, int(call.arg("id")))
    rows = [d for d in departments(call).values() if wanted is None or d["id"] in wanted]
    return {"department": sorted(rows, key=lambda d: (d["parentid"], -d["order"], d["id"]))}


@endpoint("department/get", methods=("GET",))
def department_get(call: Call) -> dict:
    department = departments(call).get(str(call.arg("id", required=True)))
    if department is None:
        raise ApiError(DEPARTMENT_NOT_FOUND, "department not found")
    return {"department": department}


def _members_in(call: Call) -> list[dict]:
    wanted = _department_ids(call)
    if not wanted:
        raise ApiError(INVALID_PARAMETER, "invalid parameter, department_id is required")
    return [m for m in members(call).values() if wanted & set(m["department"])]


@endpoint("user/list", methods=("GET",))
def user_list(call: Call) -> dict:
    return {"userlist": sorted(_members_in(call), key=lambda m: m["userid"])}


@endpoint("user/simplelist", methods=("GET",))
def user_simplelist(call: Call) -> dict:
    return {"userlist": [{"userid": m["userid"], "name": m["name"], "department": m["department"]}
                         for m in sorted(_members_in(call), key=lambda m: m["userid"])]}


@endpoint("user/list_id", methods=("POST",))
def user_list_id(call: Call) -> dict:
    """Cursor paging over every member (WeCom's replacement for user/list): limit 1–10,000."""
    limit = int(call.arg("limit", 1000))
    if not 1 <= limit <= 10_000:
        raise ApiError(INVALID_PARAMETER, "invalid limit")
    ordered = sorted(members(call))
    start = int(call.arg("cursor") or 0)
    page = ordered[start:start + limit]
    next_cursor = str(start + limit) if start + limit < len(ordered) else ""
    return {"dept_user": [{"userid": u, "department": d} for u in page for d in members(call)[u]["department"]],
            "next_cursor": next_cursor}


@endpoint("user/get", methods=("GET",))
def user_get(call: Call) -> dict:
    return dict(member_get_or_error(call, call.arg("userid", required=True)))


# -- people: members join, change and leave; admins edit departments --------------------------------
def _member_from(call: Call, data: dict, existing: dict | None = None) -> dict:
    member = dict(existing or {"userid": data["userid"], "position": "", "mobile": "", "gender": "0", "email": "",
                               "alias": "", "status": 1, "enable": 1, "avatar": "", "telephone": "",
                               "is_leader_in_dept": [], "order": []})
    member.update({k: v for k, v in data.items() if k in MEMBER_FIELDS})
    member["department"] = [int(d) for d in member.get("department") or [1]]
    for department in member["department"]:
        if str(department) not in departments(call):
            raise ApiError(DEPARTMENT_NOT_FOUND, f"department not found: {department}")
    if member.get("main_department") not in member["department"]:
        member["main_department"] = member["department"][0]
    member.setdefault("name", member["userid"])
    member["is_leader_in_dept"] = [0] * len(member["department"])
    return member


def _member_event_fields(member: dict) -> dict:
    return {"UserID": member["userid"], "Name": member["name"],
            "Department": ",".join(str(d) for d in member["department"]),
            "MainDepartment": member["main_department"], "Position": member["position"],
            "Mobile": member["mobile"], "Gender": member["gender"], "Status": member["status"]}


@control("members/add")
def member_add(call: Call) -> dict:
    """An admin adds a member in the WeCom app: {"userid", "name", "department": [id], "position", "mobile"}."""
    userid = call.arg("userid", required=True)
    if userid in members(call):
        raise ApiError(60102, f"userid existed: {userid}")
    member = members(call)[userid] = _member_from(call, call.body)
    call.emit("change_contact", "create_user", **_member_event_fields(member))
    return {"member": member}


@control("members/update")
def member_update(call: Call) -> dict:
    """Rename, move to another department, change position, or disable (status 2)."""
    userid = call.arg("userid", required=True)
    member = _member_from(call, call.body, member_get_or_error(call, userid))
    new_userid = call.arg("new_userid")
    fields = _member_event_fields(member)
    if new_userid and new_userid != userid:
        del members(call)[userid]
        member["userid"] = fields["NewUserID"] = new_userid
    members(call)[member["userid"]] = member
    call.emit("change_contact", "update_user", **fields)
    return {"member": member}


@control("members/delete")
def member_delete(call: Call) -> dict:
    """The member leaves the corp: gone from the address book (user/get answers 60111)."""
    member = members(call).pop(call.arg("userid", required=True), None)
    if member is None:
        raise ApiError(USER_NOT_FOUND, "userid not found")
    call.state.table("departed_users")[member["userid"]] = {**member, "departed_at": call.now()}
    call.emit("change_contact", "delete_user", UserID=member["userid"])
    return {"deleted": member["userid"]}


@control("departments/add")
def department_add(call: Call) -> dict:
    table = departments(call)
    department_id = int(call.arg("id") or max([int(k) for k in table] + [1]) + 1)
    parent = int(call.arg("parentid", 1))
    if str(parent) not in table:
        raise ApiError(DEPARTMENT_NOT_FOUND, "parent department not found")
    if str(department_id) in table:
        raise ApiError(60008, "department existed")
    table[str(department_id)] = {"id": department_id, "name": call.arg("name", required=True), "name_en": "",
                                 "parentid": parent, "order": int(call.arg("order", 0)), "department_leader": []}
    call.emit("change_contact", "create_party", Id=department_id, Name=table[str(department_id)]["name"],
              ParentId=parent)
    return {"department": table[str(department_id)]}


@control("departments/delete")
def department_delete(call: Call) -> dict:
    department_id = int(call.arg("id", required=True))
    if any(department_id in m["department"] for m in members(call).values()):
        raise ApiError(60005, "department contains user")
    if departments(call).pop(str(department_id), None) is None:
        raise ApiError(DEPARTMENT_NOT_FOUND, "department not found")
    call.emit("change_contact", "delete_party", Id=department_id)
    return {"deleted": department_id}


@control("addressbook/load")
def addressbook_load(call: Call) -> dict:
    """Bulk-load departments and members quietly (no callbacks): how seed_demo mirrors its organisation."""
    table = departments(call)
    for data in call.body.get("departments", []):
        table[str(int(data["id"]))] = {"id": int(data["id"]), "name": data["name"], "name_en": "",
                                       "parentid": int(data.get("parentid", 1)), "order": int(data.get("order", 0)),
                                       "department_leader": []}
    for data in call.body.get("members", []):
        members(call)[data["userid"]] = _member_from(call, data, members(call).get(data["userid"]))
    return {"departments": len(table), "members": len(members(call))}
