"""A poster template's layout: the JSON an HQ operator edits, validated; Chinese text fitted into its boxes.

The layout is a JSON object with one key, ``elements``: at most 20 boxes in the background image's pixels
(origin top left), drawn in order. A text box shows a field of the store or staff member, or a fixed text;
a QR box shows the code whose payload the caller supplies (a staff member's contact-way URL, say)::

    {"elements": [
        {"type": "text", "field": "store_name", "x": 60, "y": 80, "width": 630, "height": 120,
         "font_size": 48, "min_font_size": 28, "color": "#1a1a1a", "align": "center", "max_lines": 2},
        {"type": "text", "field": "store_address", "x": 60, "y": 220, "width": 630, "height": 80,
         "font_size": 28, "min_font_size": 20, "color": "#555555", "max_lines": 2},
        {"type": "text", "field": "store_hours", "x": 60, "y": 310, "width": 630, "height": 40, "font_size": 26},
        {"type": "text", "field": "staff_name", "x": 60, "y": 1180, "width": 360, "height": 60,
         "font_size": 40, "min_font_size": 24, "color": "#c8102e"},
        {"type": "text", "field": "text", "text": "扫码添加您的专属店小二", "x": 60, "y": 1250,
         "width": 360, "height": 40, "font_size": 26},
        {"type": "qr", "x": 470, "y": 1070, "size": 220}
    ]}

Text boxes: ``field`` is one of store_name, store_address, store_hours, staff_name, or ``text`` with a fixed
``text``. ``font_size`` (12–200) is tried first, shrinking one size at a time down to ``min_font_size`` (default:
no shrinking) until the value fits in ``max_lines`` (default 1; also limited by the box height, a line being
1.3 × the font size); if it does not fit even then, the last line ends in "…". ``color`` is ``#rrggbb`` (default
black), ``align`` left (default), center or right; lines start at the top of the box. Chinese wraps between any
two characters, Latin words and numbers ("9:00-21:00") stay whole where they fit, closing punctuation never
starts a line. A QR box is a square of ``size`` pixels (at least 120, or phones cannot scan it), quiet zone
included, and no text box may overlap it. A template has at most one QR code.

``layout_validate`` refuses a layout whose placeholders do not fit the canvas, naming the element (第 N 个元素);
``layout_check_fits`` warns, for sample values (the longest store name of the brand…), which would be cut.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from PIL import ImageFont

from portal.errors import DomainError

FIELDS = ("store_name", "store_address", "store_hours", "staff_name", "text")
FIXED_TEXT = "text"
ALIGNS = ("left", "center", "right")
MAX_ELEMENTS = 20
MAX_CANVAS = 4096
MIN_FONT_SIZE, MAX_FONT_SIZE = 12, 200
MAX_LINES = 10
MAX_FIXED_TEXT = 200
QR_MIN_SIZE = 120
LINE_HEIGHT = 1.3  # a line's height, in font sizes
ELLIPSIS = "…"
COLOR = re.compile(r"#[0-9a-fA-F]{6}")

TEXT_KEYS = {"type", "field", "text", "x", "y", "width", "height", "font_size", "min_font_size", "color", "align",
             "max_lines"}
QR_KEYS = {"type", "x", "y", "size"}

# Debian packages' CJK fonts, in order of preference (fonts-wqy-zenhei, then fonts-noto-cjk).
DEBIAN_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)


class PosterLayoutInvalid(DomainError):
    """The layout JSON is refused; the message names the element (第 N 个元素) and what is wrong."""


class PosterFontMissing(DomainError):
    """No CJK font is installed (or the configured one is not there)."""


def field_label(field: str) -> str:
    return {"store_name": _("门店名称"), "store_address": _("门店地址"), "store_hours": _("营业时间"),
            "staff_name": _("员工姓名"), "text": _("固定文字")}.get(field, field)


@dataclass(frozen=True)
class TextElement:
    index: int  # 1-based position in the layout, for messages
    field: str
    text: str  # the fixed text when field == "text", else ""
    x: int
    y: int
    width: int
    height: int
    font_size: int
    min_font_size: int
    color: tuple[int, int, int]
    align: str
    max_lines: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.x + self.width, self.y + self.height)


@dataclass(frozen=True)
class QrElement:
    index: int
    x: int
    y: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.x + self.size, self.y + self.size)


@dataclass(frozen=True)
class PosterLayout:
    width: int
    height: int
    texts: tuple[TextElement, ...]
    qr: QrElement | None

    @property
    def fields(self) -> frozenset[str]:
        """The store and staff fields the template shows (what a caller must supply)."""
        return frozenset(t.field for t in self.texts if t.field != FIXED_TEXT)


@dataclass(frozen=True)
class FittedText:
    size: int
    lines: tuple[str, ...]
    truncated: bool


def line_pitch(size: int) -> int:
    return math.ceil(size * LINE_HEIGHT)


def lines_allowed(element: TextElement, size: int) -> int:
    return min(element.max_lines, element.height // line_pitch(size))


# --- validation ------------------------------------------------------------------------------------------------

def _int(raw: dict, key: str, n: int, *, default: int | None = None) -> int:
    if key not in raw:
        if default is not None:
            return default
        raise PosterLayoutInvalid(_("第 %(n)d 个元素缺少 %(key)s") % {"n": n, "key": key})
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的 %(key)s 必须是整数") % {"n": n, "key": key})
    return value


def _inside(box: tuple[int, int, int, int], n: int, width: int, height: int) -> None:
    left, top, right, bottom = box
    if left < 0 or top < 0 or right > width or bottom > height or right <= left or bottom <= top:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素超出了底图（%(width)d×%(height)d 像素）")
                                  % {"n": n, "width": width, "height": height})


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _text_element(raw: dict, n: int, width: int, height: int) -> TextElement:
    field = raw.get("field")
    if field not in FIELDS:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的字段 %(field)s 不认识，可选：%(fields)s")
                                  % {"n": n, "field": json.dumps(field, ensure_ascii=False),
                                     "fields": "、".join(FIELDS)})
    text = raw.get("text", "")
    if field == FIXED_TEXT:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_FIXED_TEXT:
            raise PosterLayoutInvalid(_("第 %(n)d 个元素是固定文字，需要填写 text（1 到 %(max)d 个字）")
                                      % {"n": n, "max": MAX_FIXED_TEXT})
    elif "text" in raw:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的 %(field)s 由门店或员工资料填写，不能再写 text")
                                  % {"n": n, "field": field})
    x, y = _int(raw, "x", n), _int(raw, "y", n)
    box_width, box_height = _int(raw, "width", n), _int(raw, "height", n)
    _inside((x, y, x + box_width, y + box_height), n, width, height)
    font_size = _int(raw, "font_size", n)
    if not MIN_FONT_SIZE <= font_size <= MAX_FONT_SIZE:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的字号 %(size)d 超出范围（%(min)d–%(max)d）")
                                  % {"n": n, "size": font_size, "min": MIN_FONT_SIZE, "max": MAX_FONT_SIZE})
    min_font_size = _int(raw, "min_font_size", n, default=font_size)
    if not MIN_FONT_SIZE <= min_font_size <= font_size:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的最小字号 %(min_size)d 须在 %(min)d 与字号 %(size)d 之间")
                                  % {"n": n, "min_size": min_font_size, "min": MIN_FONT_SIZE, "size": font_size})
    color = raw.get("color", "#000000")
    if not isinstance(color, str) or not COLOR.fullmatch(color):
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的颜色 %(color)s 不是 #rrggbb 格式")
                                  % {"n": n, "color": json.dumps(color, ensure_ascii=False)})
    align = raw.get("align", "left")
    if align not in ALIGNS:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的对齐方式 %(align)s 不认识，可选：left、center、right")
                                  % {"n": n, "align": json.dumps(align, ensure_ascii=False)})
    max_lines = _int(raw, "max_lines", n, default=1)
    if not 1 <= max_lines <= MAX_LINES:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的行数 %(lines)d 须在 1 到 %(max)d 之间")
                                  % {"n": n, "lines": max_lines, "max": MAX_LINES})
    if box_height < line_pitch(min_font_size):
        raise PosterLayoutInvalid(_("第 %(n)d 个元素高 %(height)d 像素，放不下一行 %(size)d 号字（至少 %(need)d 像素）")
                                  % {"n": n, "height": box_height, "size": min_font_size,
                                     "need": line_pitch(min_font_size)})
    if box_width < min_font_size:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素宽 %(width)d 像素，放不下一个 %(size)d 号字")
                                  % {"n": n, "width": box_width, "size": min_font_size})
    return TextElement(index=n, field=field, text=text if field == FIXED_TEXT else "", x=x, y=y, width=box_width,
                       height=box_height, font_size=font_size, min_font_size=min_font_size,
                       color=(int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)), align=align,
                       max_lines=max_lines)


def _qr_element(raw: dict, n: int, width: int, height: int) -> QrElement:
    x, y, size = _int(raw, "x", n), _int(raw, "y", n), _int(raw, "size", n)
    if size < QR_MIN_SIZE:
        raise PosterLayoutInvalid(_("第 %(n)d 个元素的二维码边长 %(size)d 像素太小，手机扫不出，至少 %(min)d 像素")
                                  % {"n": n, "size": size, "min": QR_MIN_SIZE})
    _inside((x, y, x + size, y + size), n, width, height)
    return QrElement(index=n, x=x, y=y, size=size)


def layout_validate(*, layout: object, width: int, height: int) -> PosterLayout:
    """The layout (parsed JSON, or its text) checked against a background of ``width`` × ``height`` pixels.

    Raises PosterLayoutInvalid with a message naming the element at fault.
    """
    if not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
        raise PosterLayoutInvalid(_("底图尺寸 %(width)d×%(height)d 不在 1–%(max)d 像素之间")
                                  % {"width": width, "height": height, "max": MAX_CANVAS})
    if isinstance(layout, str | bytes):
        try:
            layout = json.loads(layout)
        except ValueError as exc:
            raise PosterLayoutInvalid(_("版式不是有效的 JSON：%(error)s") % {"error": exc}) from exc
    if not isinstance(layout, dict) or "elements" not in layout:
        raise PosterLayoutInvalid(_("版式必须是一个 JSON 对象，形如 {\"elements\": [...]}"))
    unknown = sorted(set(layout) - {"elements"})
    if unknown:
        raise PosterLayoutInvalid(_("版式只能包含 elements，不认识：%(keys)s") % {"keys": "、".join(map(str, unknown))})
    elements = layout["elements"]
    if not isinstance(elements, list):
        raise PosterLayoutInvalid(_("版式的 elements 必须是一个列表"))
    if len(elements) > MAX_ELEMENTS:
        raise PosterLayoutInvalid(_("版式最多 %(max)d 个元素，现在有 %(count)d 个")
                                  % {"max": MAX_ELEMENTS, "count": len(elements)})
    texts: list[TextElement] = []
    qr: QrElement | None = None
    for n, raw in enumerate(elements, start=1):
        if not isinstance(raw, dict):
            raise PosterLayoutInvalid(_("第 %(n)d 个元素必须是一个 JSON 对象") % {"n": n})
        kind = raw.get("type")
        if kind not in ("text", "qr"):
            raise PosterLayoutInvalid(_("第 %(n)d 个元素的类型 %(type)s 不认识，可选：text（文字）、qr（二维码）")
                                      % {"n": n, "type": json.dumps(kind, ensure_ascii=False)})
        extra = sorted(set(raw) - (TEXT_KEYS if kind == "text" else QR_KEYS))
        if extra:
            raise PosterLayoutInvalid(_("第 %(n)d 个元素有不认识的属性：%(keys)s") % {"n": n, "keys": "、".join(extra)})
        if kind == "text":
            texts.append(_text_element(raw, n, width, height))
        elif qr is not None:
            raise PosterLayoutInvalid(_("第 %(n)d 个元素是第二个二维码：一张海报只能有一个二维码") % {"n": n})
        else:
            qr = _qr_element(raw, n, width, height)
    if qr is not None:
        for text in texts:
            if _overlap(text.box, qr.box):
                raise PosterLayoutInvalid(_("第 %(n)d 个元素与二维码（第 %(qr)d 个元素）重叠，文字会盖住二维码")
                                          % {"n": text.index, "qr": qr.index})
    return PosterLayout(width=width, height=height, texts=tuple(texts), qr=qr)


# --- fonts -----------------------------------------------------------------------------------------------------

def _fontconfig_chinese() -> str | None:
    """The first font fontconfig lists for Chinese. (``fc-match :lang=zh`` always answers, even with a font that
    has no Chinese glyphs, so the list of fonts covering the language is asked instead.)"""
    if shutil.which("fc-list") is None:
        return None
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10,
                                check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip().rstrip(":") for line in listed.splitlines() if line.strip())
    return next((path for path in files if os.path.isfile(path)), None)


def poster_font_path() -> str:
    """The CJK font posters are drawn with: settings.XIAOER_POSTER_FONT, else a Debian package's font
    (fonts-wqy-zenhei, fonts-noto-cjk), else what fontconfig has for Chinese. Raises PosterFontMissing."""
    configured = getattr(settings, "XIAOER_POSTER_FONT", "")
    if configured:
        if os.path.isfile(configured):
            return str(configured)
        raise PosterFontMissing(_("海报字体 %(path)s（XIAOER_POSTER_FONT）不存在，请检查设置或运行 make install "
                                  "安装中文字体") % {"path": configured})
    for path in DEBIAN_FONTS:
        if os.path.isfile(path):
            return path
    found = _fontconfig_chinese()
    if found:
        return found
    raise PosterFontMissing(_("没有安装中文字体，无法生成海报：请运行 make install（安装 fonts-wqy-zenhei）"))


@lru_cache(maxsize=16)
def font_face_index(path: str) -> int:
    """In a font collection (.ttc), the Simplified Chinese face (Noto CJK's "SC"), else a proportional one."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    names: list[str] = []
    for index in range(16):
        try:
            names.append(ImageFont.truetype(path, 12, index=index).getname()[0] or "")
        except OSError:
            break
    for wanted in (lambda name: name.endswith(" SC"), lambda name: "mono" not in name.lower()):
        for index, name in enumerate(names):
            if wanted(name):
                return index
    return 0


def font_load(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A font at a size, with Pillow's basic layout (the same on every machine, with or without libraqm)."""
    return ImageFont.truetype(path, size, index=font_face_index(path), layout_engine=ImageFont.Layout.BASIC)


# --- text fitting ----------------------------------------------------------------------------------------------

NO_LINE_START = set("，。、；：！？）》」』】〕〉”’…—·,.;:!?)]}%")
NO_LINE_END = set("（《「『【〔〈“‘([{")
TOKEN = re.compile(r"[\x21-\x7e\u00c0-\u024f]+|[ \t]+|.", re.DOTALL)


def text_tokens(text: str) -> list[str]:
    """Units that stay on one line: a Latin word or number, a run of spaces, one CJK character with the closing
    punctuation after it (and any opening punctuation before it)."""
    tokens: list[str] = []
    for token in TOKEN.findall(text):
        if tokens and not token.isspace() and not tokens[-1].isspace() and (
                token[0] in NO_LINE_START or tokens[-1][-1] in NO_LINE_END):
            tokens[-1] += token
        else:
            tokens.append(token)
    return tokens


def text_wrap(text: str, *, measure: Callable[[str], float], width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` by ``measure`` (a single character wider than the box
    gets a line of its own). Newlines in the text break lines; spaces at a line's ends are dropped."""
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = ""
        for token in text_tokens(paragraph.strip()):
            if token.isspace():
                line += " " if line else ""
                continue
            if measure(line + token) <= width:
                line += token
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = ""
            if measure(token) <= width:
                line = token
                continue
            for char in token:  # a word wider than the box: broken by character
                if line and measure(line + char) > width:
                    lines.append(line)
                    line = ""
                line += char
        if line.strip():
            lines.append(line.rstrip())
    return lines


def text_truncate(line: str, *, measure: Callable[[str], float], width: int) -> str:
    """``line`` cut so that it and "…" fit in ``width``."""
    while line and measure(line + ELLIPSIS) > width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


class TextFitter:
    """Fits values into a layout's text boxes with one font; keeps its fonts per size and recent fits."""

    CACHE = 4096

    def __init__(self, font_path: str) -> None:
        self.font_path = font_path
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._fits: dict[tuple[TextElement, str], FittedText] = {}

    def font(self, size: int) -> ImageFont.FreeTypeFont:
        font = self._fonts.get(size)
        if font is None:
            font = self._fonts[size] = font_load(self.font_path, size)
        return font

    def fit(self, element: TextElement, value: str) -> FittedText:
        key = (element, value)
        fitted = self._fits.get(key)
        if fitted is None:
            if len(self._fits) >= self.CACHE:
                self._fits.clear()
            fitted = self._fits[key] = self._fit(element, value)
        return fitted

    def _fit(self, element: TextElement, value: str) -> FittedText:
        text = value.strip()
        if not text:
            return FittedText(size=element.font_size, lines=(), truncated=False)
        lines: list[str] = []
        for size in range(element.font_size, element.min_font_size - 1, -1):
            allowed = lines_allowed(element, size)
            if allowed == 0:
                continue
            lines = text_wrap(text, measure=self.font(size).getlength, width=element.width)
            if len(lines) <= allowed:
                return FittedText(size=size, lines=tuple(lines), truncated=False)
        size = element.min_font_size  # validation made sure one line of it fits the box
        measure = self.font(size).getlength
        kept = lines[:lines_allowed(element, size)]
        kept[-1] = text_truncate(kept[-1], measure=measure, width=element.width)
        return FittedText(size=size, lines=tuple(kept), truncated=True)


def layout_check_fits(*, layout: PosterLayout, samples: Mapping[str, Any], font_path: str | None = None) -> list[str]:
    """Warnings, one per text box, for sample values (``{"store_name": "the brand's longest store name", …}``)
    and fixed texts that would be cut even at the box's smallest font size. Empty: everything fits."""
    fitter = TextFitter(font_path or poster_font_path())
    warnings = []
    for element in layout.texts:
        sample = element.text if element.field == FIXED_TEXT else str(samples.get(element.field) or "")
        if not sample.strip():
            continue
        fitted = fitter.fit(element, sample)
        if fitted.truncated:
            warnings.append(_("第 %(n)d 个元素（%(label)s）放不下「%(sample)s」：最小字号 %(size)d 也只能显示"
                              "「%(shown)s」") % {"n": element.index, "label": field_label(element.field),
                                                 "sample": sample, "size": fitted.size,
                                                 "shown": "".join(fitted.lines)})
    return warnings
