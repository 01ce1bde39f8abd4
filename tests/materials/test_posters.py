"""Posters (issue #12): an HQ operator's layout is refused, naming the element, when its placeholders do not fit;
Chinese text wraps, shrinks and is cut with "…" inside its box; a poster is a JPEG of the background with the
staff member's name and the QR code of the caller's payload; the cache key changes exactly when an input does;
thousands render in a pool, each once."""

from __future__ import annotations

import copy
import io
import re

import pytest
from PIL import Image, ImageChops, ImageStat

from materials.posters import layout as layout_module
from materials.posters.layout import (
    PosterFontMissing,
    PosterLayoutInvalid,
    TextElement,
    TextFitter,
    layout_check_fits,
    layout_validate,
    poster_font_path,
    text_wrap,
)
from materials.posters.render import (
    PosterBackgroundInvalid,
    PosterQrTooDense,
    PosterRenderer,
    poster_inputs_key,
    poster_qr,
    posters_render_many,
)

WIDTH, HEIGHT = 750, 1334
BACKGROUND_COLOR = (245, 230, 200)
QR = {"type": "qr", "x": 470, "y": 1070, "size": 220}
LAYOUT = {"elements": [
    {"type": "text", "field": "store_name", "x": 60, "y": 80, "width": 630, "height": 120, "font_size": 48,
     "min_font_size": 28, "color": "#1a1a1a", "align": "center", "max_lines": 2},
    {"type": "text", "field": "store_address", "x": 60, "y": 220, "width": 630, "height": 80, "font_size": 28,
     "min_font_size": 20, "color": "#555555", "max_lines": 2},
    {"type": "text", "field": "staff_name", "x": 60, "y": 1180, "width": 360, "height": 60, "font_size": 40,
     "min_font_size": 24, "color": "#c8102e"},
    {"type": "text", "field": "text", "text": "扫码添加您的专属店小二", "x": 60, "y": 1250, "width": 360, "height": 40,
     "font_size": 26},
    QR,
]}
VALUES = {"store_name": "徐家汇港汇恒隆广场店", "store_address": "上海市徐汇区虹桥路1号 B1-101", "staff_name": "王小二"}
PAYLOAD = "https://work.weixin.qq.com/ca/cawcde5c2f0a9b1d7e"


def _background(size=(WIDTH, HEIGHT)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, BACKGROUND_COLOR).save(buffer, "PNG")
    return buffer.getvalue()


def _layout(raw=None):
    return layout_validate(layout=raw or LAYOUT, width=WIDTH, height=HEIGHT)


def _with(element: dict, **changes) -> dict:
    """LAYOUT with its first element changed."""
    raw = copy.deepcopy(LAYOUT)
    raw["elements"][0] = {**element, **changes}
    return raw


def _refusal(raw) -> str:
    with pytest.raises(PosterLayoutInvalid) as caught:
        layout_validate(layout=raw, width=WIDTH, height=HEIGHT)
    return str(caught.value)


def _box(element: dict, **changes) -> TextElement:
    return layout_validate(layout={"elements": [{"type": "text", **element, **changes}]}, width=WIDTH,
                           height=HEIGHT).texts[0]


@pytest.fixture
def fitter() -> TextFitter:
    return TextFitter(poster_font_path())


@pytest.fixture
def renderer() -> PosterRenderer:
    return PosterRenderer(background=_background(), layout=_layout(), font_path=poster_font_path())


def _decoded(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).mean)


# --- the layout ------------------------------------------------------------------------------------------------

def test_the_example_in_the_layout_docstring_is_a_valid_layout():
    example = re.search(r"::\n\n(.*?)\n\n", layout_module.__doc__ or "", re.DOTALL)
    assert example
    layout = layout_validate(layout=example.group(1), width=WIDTH, height=HEIGHT)
    assert layout.fields == {"store_name", "store_address", "store_hours", "staff_name"}
    assert layout.qr is not None and layout.qr.size == 220


def test_defaults_are_one_line_black_left_aligned_without_shrinking():
    element = _box({"field": "staff_name", "x": 0, "y": 0, "width": 300, "height": 60, "font_size": 40})
    assert (element.max_lines, element.color, element.align, element.min_font_size) == (1, (0, 0, 0), "left", 40)


def test_a_layout_that_is_not_an_object_with_elements_is_refused():
    assert "JSON 对象" in _refusal([{"type": "qr"}])


def test_a_layout_that_is_not_json_is_refused():
    assert "不是有效的 JSON" in _refusal('{"elements": [')


def test_elements_that_are_not_a_list_are_refused():
    assert "elements 必须是一个列表" in _refusal({"elements": {"type": "qr"}})


def test_an_element_that_is_not_an_object_is_refused_by_its_number():
    assert _refusal({"elements": [LAYOUT["elements"][0], "qr"]}) == "第 2 个元素必须是一个 JSON 对象"


def test_an_unknown_element_type_is_refused():
    assert "第 1 个元素的类型 \"image\" 不认识" in _refusal(_with({"type": "image", "x": 0, "y": 0}))


def test_an_unknown_field_is_refused():
    assert "第 1 个元素的字段 \"mobile\" 不认识" in _refusal(_with(LAYOUT["elements"][0], field="mobile"))


def test_a_misspelt_attribute_is_refused_rather_than_ignored():
    assert _refusal(_with(LAYOUT["elements"][0], fontsize=30)) == "第 1 个元素有不认识的属性：fontsize"


def test_a_fixed_text_element_without_its_text_is_refused():
    raw = _with(LAYOUT["elements"][0], field="text")
    assert "第 1 个元素是固定文字，需要填写 text" in _refusal(raw)


def test_a_box_outside_the_background_is_refused():
    assert _refusal(_with(LAYOUT["elements"][0], x=200)) == "第 1 个元素超出了底图（750×1334 像素）"


def test_a_coordinate_that_is_not_an_integer_is_refused():
    assert _refusal(_with(LAYOUT["elements"][0], y="80")) == "第 1 个元素的 y 必须是整数"


def test_a_qr_code_smaller_than_phones_can_scan_is_refused():
    raw = copy.deepcopy(LAYOUT)
    raw["elements"][4] = {**QR, "size": 100}
    assert _refusal(raw) == "第 5 个元素的二维码边长 100 像素太小，手机扫不出，至少 120 像素"


def test_a_second_qr_code_is_refused():
    raw = copy.deepcopy(LAYOUT)
    raw["elements"].append({**QR, "x": 60, "y": 700})
    assert _refusal(raw) == "第 6 个元素是第二个二维码：一张海报只能有一个二维码"


def test_text_over_the_qr_code_is_refused():
    raw = copy.deepcopy(LAYOUT)
    raw["elements"][2] = {**raw["elements"][2], "width": 500}  # staff name box now runs under the code
    assert _refusal(raw) == "第 3 个元素与二维码（第 5 个元素）重叠，文字会盖住二维码"


@pytest.mark.parametrize("font_size", [8, 400])
def test_a_font_size_out_of_range_is_refused(font_size):
    assert f"第 1 个元素的字号 {font_size} 超出范围（12–200）" == _refusal(
        _with(LAYOUT["elements"][0], font_size=font_size, min_font_size=12))


def test_a_smallest_font_size_above_the_font_size_is_refused():
    assert "第 1 个元素的最小字号 60 须在 12 与字号 48 之间" == _refusal(_with(LAYOUT["elements"][0], min_font_size=60))


def test_a_color_that_is_not_rrggbb_is_refused():
    assert _refusal(_with(LAYOUT["elements"][0], color="red")) == "第 1 个元素的颜色 \"red\" 不是 #rrggbb 格式"


def test_a_box_too_low_for_one_line_of_its_smallest_font_is_refused():
    refusal = _refusal(_with(LAYOUT["elements"][0], height=30))
    assert refusal == "第 1 个元素高 30 像素，放不下一行 28 号字（至少 37 像素）"


def test_more_than_twenty_elements_are_refused():
    text = {"type": "text", "field": "text", "text": "新品", "x": 0, "y": 0, "width": 100, "height": 40,
            "font_size": 20}
    assert _refusal({"elements": [text] * 21}) == "版式最多 20 个元素，现在有 21 个"


# --- fitting Chinese text --------------------------------------------------------------------------------------

def test_chinese_wraps_between_characters_within_the_box(fitter):
    font = fitter.font(30)
    lines = text_wrap("上海市徐汇区虹桥路一号港汇恒隆广场地下一层", measure=font.getlength, width=200)
    assert len(lines) > 1 and "".join(lines) == "上海市徐汇区虹桥路一号港汇恒隆广场地下一层"
    assert all(font.getlength(line) <= 200 for line in lines)


def test_latin_words_and_numbers_stay_whole():
    lines = text_wrap("营业 10:00-22:00 Happy Hour", measure=len, width=12)
    assert lines == ["营业", "10:00-22:00", "Happy Hour"]  # the hours move to the next line whole


def test_closing_punctuation_never_starts_a_line():
    lines = text_wrap("欢迎光临，本店", measure=len, width=4)
    assert lines == ["欢迎光", "临，本店"] and not any(line.startswith("，") for line in lines)


def test_a_newline_in_the_value_breaks_the_line():
    assert text_wrap("周一至周五 9:00\n周末 10:00", measure=len, width=40) == ["周一至周五 9:00", "周末 10:00"]


def test_a_name_too_wide_for_the_font_size_is_shrunk_onto_one_line(fitter):
    element = _box({"field": "staff_name", "x": 0, "y": 0, "width": 200, "height": 60, "font_size": 40,
                    "min_font_size": 20})
    fitted = fitter.fit(element, "欧阳娜娜丽莎")  # 6 × 40 px > 200 px
    assert fitted.lines == ("欧阳娜娜丽莎",) and 20 <= fitted.size < 40 and not fitted.truncated
    assert fitter.font(fitted.size).getlength(fitted.lines[0]) <= 200


def test_a_value_that_fits_keeps_the_font_size(fitter):
    element = _box({"field": "staff_name", "x": 0, "y": 0, "width": 300, "height": 60, "font_size": 40,
                    "min_font_size": 20})
    assert fitter.fit(element, "王小二").size == 40


def test_text_that_does_not_fit_at_the_smallest_size_is_cut_with_an_ellipsis(fitter):
    element = _box({"field": "store_name", "x": 0, "y": 0, "width": 300, "height": 60, "font_size": 30,
                    "min_font_size": 24, "max_lines": 2})
    fitted = fitter.fit(element, "上海市徐汇区徐家汇港汇恒隆广场地下一层第三十二号旗舰体验店华东大区第一家")
    assert fitted.truncated and fitted.size == 24 and len(fitted.lines) == 1  # 60 px hold one 24 px line (32 px)
    assert fitted.lines[-1].endswith("…") and fitter.font(24).getlength(fitted.lines[-1]) <= 300


def test_the_operator_is_warned_of_a_sample_that_would_be_cut_and_not_of_one_that_fits():
    layout = _layout()
    long_name = "上海市徐汇区徐家汇港汇恒隆广场地下一层第三十二号旗舰体验店（华东大区第一家直营店）" * 2
    warnings = layout_check_fits(layout=layout, samples={"store_name": long_name, "staff_name": "王小二"})
    assert len(warnings) == 1 and warnings[0].startswith("第 1 个元素（门店名称）放不下")
    assert layout_check_fits(layout=layout, samples={"store_name": "徐家汇店", "staff_name": "王小二"}) == []


# --- the font --------------------------------------------------------------------------------------------------

def test_a_configured_font_that_is_not_there_is_reported(settings):
    settings.XIAOER_POSTER_FONT = "/nonexistent/font.ttc"
    with pytest.raises(PosterFontMissing, match="XIAOER_POSTER_FONT"):
        poster_font_path()


def test_without_any_chinese_font_the_operator_is_told_to_run_make_install(settings, monkeypatch):
    settings.XIAOER_POSTER_FONT = ""
    monkeypatch.setattr(layout_module, "DEBIAN_FONTS", ("/nonexistent/wqy-zenhei.ttc",))
    monkeypatch.setattr(layout_module, "_fontconfig_chinese", lambda: None)
    with pytest.raises(PosterFontMissing, match="make install"):
        poster_font_path()


def test_the_packaged_font_has_chinese_glyphs(fitter):
    assert fitter.font(40).getname()[0] and fitter.font(40).getbbox("店")[2] > 30  # not a missing-glyph box of 0


# --- rendering -------------------------------------------------------------------------------------------------

def test_a_poster_is_a_baseline_rgb_jpeg_of_the_backgrounds_size(renderer):
    image = _decoded(renderer.render(values=VALUES, qr_payload=PAYLOAD))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (WIDTH, HEIGHT))
    assert not image.info.get("progressive") and not image.info.get("progression")


def test_the_staff_members_name_is_drawn_in_its_box(renderer):
    box = (60, 1180, 420, 1240)
    named = _decoded(renderer.render(values=VALUES, qr_payload=None)).crop(box)
    unnamed = _decoded(renderer.render(values={**VALUES, "staff_name": ""}, qr_payload=None)).crop(box)
    assert _mean_difference(named, unnamed) > 5


def test_two_staff_names_give_different_posters(renderer):
    first = renderer.render(values={**VALUES, "staff_name": "王小二"}, qr_payload=PAYLOAD)
    second = renderer.render(values={**VALUES, "staff_name": "李小三"}, qr_payload=PAYLOAD)
    assert first != second


def test_the_qr_box_holds_the_code_of_the_payload(renderer):
    poster = _decoded(renderer.render(values=VALUES, qr_payload=PAYLOAD)).crop((470, 1070, 690, 1290))
    assert _mean_difference(poster, poster_qr(PAYLOAD, size=220)) < 5  # JPEG noise only (about 1)
    assert _mean_difference(poster, poster_qr(PAYLOAD + "x", size=220)) > 20  # another code: about 34


def test_without_a_payload_no_code_is_drawn(renderer):
    region = _decoded(renderer.render(values=VALUES, qr_payload=None)).crop((470, 1070, 690, 1290))
    assert _mean_difference(region, Image.new("RGB", region.size, BACKGROUND_COLOR)) < 2


def test_a_template_without_a_qr_element_draws_no_code_whatever_the_payload():
    raw = {"elements": LAYOUT["elements"][:4]}
    renderer = PosterRenderer(background=_background(), layout=_layout(raw), font_path=poster_font_path())
    region = _decoded(renderer.render(values=VALUES, qr_payload=PAYLOAD)).crop((470, 1070, 690, 1290))
    assert _mean_difference(region, Image.new("RGB", region.size, BACKGROUND_COLOR)) < 2


def test_a_payload_too_long_for_the_qr_box_is_refused(renderer):
    with pytest.raises(PosterQrTooDense, match="220 像素的二维码框放不下"):
        renderer.render(values=VALUES, qr_payload="https://example.com/" + "x" * 2000)


def test_a_background_of_another_size_than_the_layout_was_checked_for_is_refused():
    with pytest.raises(PosterBackgroundInvalid, match="底图是 600×900 像素"):
        PosterRenderer(background=_background((600, 900)), layout=_layout(), font_path=poster_font_path())


def test_a_background_that_is_not_an_image_is_refused():
    with pytest.raises(PosterBackgroundInvalid, match="不是可以读取的图片"):
        PosterRenderer(background=b"<html>not an image</html>", layout=_layout(), font_path=poster_font_path())


# --- the cache key ---------------------------------------------------------------------------------------------

def _key(**changes):
    inputs = {"template_version_id": 7, "values": VALUES, "qr_payload": PAYLOAD, **changes}
    return poster_inputs_key(**inputs)


@pytest.mark.parametrize("changes", [
    {"template_version_id": 8},
    {"values": {**VALUES, "staff_name": "李小三"}},
    {"values": {**VALUES, "store_address": "上海市徐汇区虹桥路2号"}},
    {"values": {**VALUES, "store_hours": "10:00-22:00"}},
    {"qr_payload": PAYLOAD + "2"},
    {"qr_payload": None},
], ids=["template", "staff name", "address", "hours added", "payload", "no payload"])
def test_the_inputs_key_changes_when_an_input_changes(changes):
    assert _key(**changes) != _key()


def test_the_inputs_key_changes_with_the_engine_version(monkeypatch):
    from materials.posters import render

    before = _key()
    monkeypatch.setattr(render, "ENGINE_VERSION", render.ENGINE_VERSION + "-next")
    assert _key() != before


def test_the_inputs_key_is_the_same_for_inputs_that_draw_the_same_poster():
    same = {"staff_name": " 王小二 ", "store_address": VALUES["store_address"], "store_name": VALUES["store_name"],
            "store_hours": ""}
    assert _key(values=same) == _key() and _key() == _key()
    assert _key(qr_payload="") == _key(qr_payload=None)


# --- many posters ----------------------------------------------------------------------------------------------

def _items(count):
    return ((key, {**VALUES, "staff_name": f"员工{key}"}, f"{PAYLOAD}{key}") for key in range(count))


def test_rendering_many_in_a_pool_returns_every_key_once_with_its_poster(renderer):
    results = list(posters_render_many(background=_background(), layout=_layout(), items=_items(50), processes=2,
                                       chunksize=4))
    assert [key for key, _ in results] == list(range(50))
    assert results[17][1] == renderer.render(values={**VALUES, "staff_name": "员工17"}, qr_payload=f"{PAYLOAD}17")


def test_rendering_many_in_this_process_returns_every_key_once():
    results = posters_render_many(background=_background(), layout=_layout(), items=_items(5), processes=1)
    assert [key for key, _ in results] == [0, 1, 2, 3, 4]


def test_rendering_many_reads_the_items_only_as_the_posters_are_taken():
    taken = []

    def items():
        for item in _items(1000):
            taken.append(item[0])
            yield item

    posters = posters_render_many(background=_background(), layout=_layout(), items=items(), processes=2,
                                  chunksize=4)
    assert next(posters)[0] == 0
    posters.close()  # stops the workers
    assert len(taken) <= 4 * 2 * 4 + 4  # the chunks in flight, not the thousand


def test_a_bad_background_is_refused_before_any_worker_starts():
    with pytest.raises(PosterBackgroundInvalid):
        next(posters_render_many(background=b"nope", layout=_layout(), items=_items(3), processes=2))


def test_a_payload_too_long_is_refused_from_the_pool_too():
    items = [(1, VALUES, "x" * 3000)]
    with pytest.raises(PosterQrTooDense):
        list(posters_render_many(background=_background(), layout=_layout(), items=items, processes=2))
