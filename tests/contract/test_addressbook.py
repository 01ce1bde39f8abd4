"""Contract: address book (gettoken, department/list, user/list, user/get) through wechatpy."""

from __future__ import annotations

import pytest

from portal.wecom.gateway import WeComError


@pytest.fixture
def address_book(sandbox):
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店", "parentid": 1}],
               members=[{"userid": "zhangsan", "name": "张三", "department": [2], "position": "店长",
                         "mobile": "13800000000"}])


def test_wechatpy_reads_departments_and_members(wechat, address_book):
    departments = wechat.department.get()
    assert {d["id"] for d in departments} >= {1, 2}
    member = wechat.user.get("zhangsan")
    assert (member["name"], member["department"], member["main_department"]) == ("张三", [2], 2)
    assert [u["userid"] for u in wechat.user.list(2, fetch_child=True)] == ["zhangsan"]


def test_an_unknown_member_is_60111(wecom, address_book):
    with pytest.raises(WeComError) as caught:
        wecom("user/get", method="get", params={"userid": "nobody"})
    assert caught.value.errcode == 60111


def test_list_id_pages_with_a_cursor(wecom, sandbox):
    sandbox.do("addressbook/load", members=[{"userid": f"u{i:02d}", "name": f"员工{i}"} for i in range(5)])
    first = wecom("user/list_id", data={"limit": 3})
    second = wecom("user/list_id", data={"limit": 3, "cursor": first["next_cursor"]})
    assert len(first["dept_user"]) == 3 and len(second["dept_user"]) == 2 and second["next_cursor"] == ""
