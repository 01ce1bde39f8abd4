"""The contact way's ``state``: ≤ 30 characters (WeCom's limit), decodes back to channel/store/staff/campaign,
and anything we did not make (other tools' states, garbage) decodes to None without raising."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from customers.acquisition.errors import AcquisitionError
from customers.acquisition.state import (
    STATE_MAX,
    DecodedState,
    StateTooLong,
    contact_state_decode,
    contact_state_encode,
)

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
channel_codes = st.text(alphabet=ALNUM, max_size=8)
big_ids = st.integers(min_value=1, max_value=62**6 - 1)  # up to 56.8 billion rows
campaigns = st.text(alphabet=ALNUM + "-_", max_size=16)


@given(channel=channel_codes, store=big_ids, staff=st.none() | big_ids,
       campaign=st.text(alphabet=ALNUM + "-_", max_size=4))
@example(channel="ZZZZZZZZ", store=62**6 - 1, staff=62**6 - 1, campaign="zzzz")
def test_round_trip_within_30_characters_even_for_large_ids(channel, store, staff, campaign):
    state = contact_state_encode(channel=channel, store=store, staff=staff, campaign_ref=campaign)
    assert len(state) <= STATE_MAX
    assert contact_state_decode(state) == DecodedState(channel_code=channel, store_id=store, staff_id=staff,
                                                       campaign_ref=campaign)


@given(channel=channel_codes, store=big_ids, staff=st.none() | big_ids, campaign=campaigns)
def test_a_long_campaign_is_refused_clearly_never_cut(channel, store, staff, campaign):
    try:
        state = contact_state_encode(channel=channel, store=store, staff=staff, campaign_ref=campaign)
    except StateTooLong as exc:
        assert "30" in str(exc)
        return
    assert len(state) <= STATE_MAX and contact_state_decode(state).campaign_ref == campaign


@given(st.text(max_size=40) | st.binary(max_size=40) | st.integers() | st.none())
@example("X")
@example("X00...")
@example("XAB.1..")
def test_garbage_never_raises_and_decodes_only_to_what_encodes_back(value):
    decoded = contact_state_decode(value)
    if decoded is not None:  # only a well-formed state with a matching checksum
        assert contact_state_encode(channel=decoded.channel_code, store=decoded.store_id, staff=decoded.staff_id,
                                    campaign_ref=decoded.campaign_ref) == value


@pytest.mark.parametrize("foreign", ["", "poster_2023", "ch=abc&store=12", "dy_live_0601", "X", "天猫包裹卡",
                                     "XZZPOSTER.1.2.SPRING", "X" + "0" * 40])
def test_states_of_other_tools_are_not_ours(foreign):
    assert contact_state_decode(foreign) is None


def test_a_state_with_one_character_changed_is_not_ours():
    state = contact_state_encode(channel="POSTER", store=12, staff=345, campaign_ref="SPRING")
    assert contact_state_decode(state.replace("SPRING", "SPRINT")) is None
    assert contact_state_decode(state[:-1]) is None


def test_readable_parts_and_optional_staff_and_channel():
    store_code = contact_state_encode(channel=None, store=7, staff=None, campaign_ref="")
    assert contact_state_decode(store_code) == DecodedState(channel_code="", store_id=7, staff_id=None,
                                                            campaign_ref="")
    assert "POSTER" in contact_state_encode(channel="POSTER", store=7, staff=8, campaign_ref="")


@pytest.mark.parametrize("bad", [{"channel": "海报"}, {"channel": "TOOLONGCODE"}, {"campaign_ref": "a.b"},
                                 {"store": 0}, {"store": None}])
def test_bad_input_is_a_clear_error(bad):
    kwargs = {"channel": "POSTER", "store": 1, "staff": None, "campaign_ref": "", **bad}
    with pytest.raises(AcquisitionError):
        contact_state_encode(**kwargs)
