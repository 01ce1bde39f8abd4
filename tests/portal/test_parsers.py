"""portal.parsers: values as people type them and spreadsheets export them, read strictly; anything else is a
ValueInvalid with a reason naming the column. Members' own refusals (MemberDataError) are ValueInvalids too,
so a caller that catches ValueInvalid gets both."""

from __future__ import annotations

from datetime import date

import pytest

from customers.members.services import MemberDataError
from portal.errors import DomainError
from portal.parsers import INT_MAX, ValueInvalid, amount_parse, date_parse, int_parse, mobile_normalize, text_check


@pytest.mark.parametrize("raw", ["13800001234", "+86 138 0000 1234", "+86-138-0000-1234", "0086 13800001234",
                                 "8613800001234", "138-0000-1234", " 138 0000 1234 ", "１３８００００１２３４"])
def test_mobiles_as_people_type_them_normalise_to_eleven_digits(raw):
    assert mobile_normalize(raw) == "13800001234"


@pytest.mark.parametrize("raw", ["", "12345", "23800001234", "1380000123", "138000012345", "1380000abcd",
                                 "+1 415 555 0100", "021-62345678"])
def test_anything_else_is_refused_with_a_reason(raw):
    with pytest.raises(ValueInvalid, match="应为 11 位中国大陆手机号"):
        mobile_normalize(raw)


@pytest.mark.parametrize(("text", "minimum", "value"), [("12", 0, 12), ("1,234", 0, 1234), ("12.0", 0, 12),
                                                       ("-5", -INT_MAX, -5), (str(INT_MAX), 0, INT_MAX)])
def test_integers_as_spreadsheets_write_them(text, minimum, value):
    assert int_parse(text, label="积分", minimum=minimum) == value


@pytest.mark.parametrize(("text", "reason"), [("12.5", "不是整数"), ("abc", "不是整数"), ("-1", "超出范围"),
                                              (str(INT_MAX + 1), "超出范围")])
def test_other_integers_are_refused_naming_the_column(text, reason):
    with pytest.raises(ValueInvalid, match=f"^积分“{text}”{reason}"):
        int_parse(text, label="积分")


@pytest.mark.parametrize(("text", "value"), [("88.5", "88.5"), ("¥1,234.50", "1234.50"), ("￥ 0", "0")])
def test_amounts(text, value):
    assert amount_parse(text, label="消费金额") == value


@pytest.mark.parametrize("text", ["-1", "1.234", "abc", "1" * 13])
def test_negative_or_too_precise_amounts_are_refused(text):
    with pytest.raises(ValueInvalid, match="应为不小于 0 的金额"):
        amount_parse(text, label="消费金额")


@pytest.mark.parametrize("text", ["2026-01-05", "2026/1/5", "20260105", "2026年1月5日", "2026-01-05 13:45:00"])
def test_dates_in_the_shapes_people_use(text):
    assert date_parse(text, label="最近消费日") == date(2026, 1, 5)


@pytest.mark.parametrize("text", ["2026-02-30", "1899/1/1", "05/01/2026", "昨天"])
def test_impossible_or_unreadable_dates_are_refused(text):
    with pytest.raises(ValueInvalid, match="不是有效日期"):
        date_parse(text, label="最近消费日")


def test_text_longer_than_its_column_is_refused():
    assert text_check("王芳", label="姓名", max_length=2) == "王芳"
    with pytest.raises(ValueInvalid, match="^姓名超过 2 个字符$"):
        text_check("王芳芳", label="姓名", max_length=2)


def test_a_parser_refusal_and_a_members_refusal_are_one_kind():
    # Every caller of a parser catches ValueInvalid, which takes members' own MemberDataError too.
    assert issubclass(ValueInvalid, DomainError) and issubclass(MemberDataError, ValueInvalid)
