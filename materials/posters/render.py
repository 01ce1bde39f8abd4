"""Posters drawn: a template's background with its text boxes filled and its QR code, as a JPEG.

One ``PosterRenderer`` per template (background decoded once, fonts loaded once per size, fitted text kept for
values that repeat, a store's name on each of its staff's posters):

    renderer = PosterRenderer(background=png_bytes, layout=layout, font_path=poster_font_path())
    jpeg = renderer.render(values={"store_name": "徐家汇店", "staff_name": "王小二"}, qr_payload=contact_way_url)

``poster_inputs_key`` is the cache key of a rendered poster: a sha256 over every input that changes the image,
so the library re-renders exactly when one changes. ``posters_render_many`` renders thousands (a staff poster
for every staff member) in a process pool, holding a bounded number in memory whatever the count.

Values missing from ``values`` (or empty) leave their box empty; no QR element or no payload draws no code.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from importlib.metadata import version
from typing import Any

import billiard
from django.utils.translation import gettext as _
from PIL import Image, ImageDraw

from materials.posters.layout import (
    FIXED_TEXT,
    MAX_CANVAS,
    PosterLayout,
    TextElement,
    TextFitter,
    font_face_index,
    font_load,
    line_pitch,
    poster_font_path,
)
from portal.errors import DomainError
from portal.qr import qr_image

logger = logging.getLogger(__name__)

ENGINE_VERSION = "1"  # bump when a change here changes the images: every cached poster is re-rendered
JPEG_QUALITY = 85
# The QR codes' mask: fixed rather than chosen by qrcode's penalty score, which costs more than drawing the rest
# of the poster (5.7 ms of 10; bench/posters.py measures both). Every mask is valid for every reader; the score
# only avoids patterns that can slow a scanner, and the poster's codes are large (≥ 120 px, 3+ px a module).
QR_MASK_PATTERN: int | None = 0
QR_MIN_MODULE_PIXELS = 2  # below, a phone's camera cannot tell the modules apart
CHUNKSIZE = 16  # posters per task sent to a worker process
ANCHORS = {"left": "lm", "center": "mm", "right": "rm"}


class PosterBackgroundInvalid(DomainError):
    """The background is not an image we can read, or not the size the layout was checked against."""


class PosterQrTooDense(DomainError):
    """The QR payload needs more modules than the QR box has pixels."""


class _QrTooDense(ValueError):
    """Raised where Django may not be set up (a pool worker); the caller's process turns it into PosterQrTooDense."""

    def __init__(self, size: int, length: int) -> None:
        super().__init__(size, length)
        self.size, self.length = size, length

    def domain_error(self) -> PosterQrTooDense:
        return PosterQrTooDense(_("二维码内容太长（%(length)d 个字符），%(size)d 像素的二维码框放不下，请放大二维码框")
                                % {"length": self.length, "size": self.size})


def poster_qr(payload: str, *, size: int) -> Image.Image:
    """The QR code a poster shows for ``payload`` in a ``size``-pixel box. Raises ValueError if it cannot fit."""
    return qr_image(payload, size=size, mask_pattern=QR_MASK_PATTERN, min_scale=QR_MIN_MODULE_PIXELS)


def background_open(background: bytes) -> Image.Image:
    """The background image, checked: a readable image of at most MAX_CANVAS pixels a side (checked before it
    is decoded). Raises PosterBackgroundInvalid."""
    try:
        image = Image.open(io.BytesIO(background))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PosterBackgroundInvalid(_("底图不是可以读取的图片（支持 JPEG、PNG）")) from exc
    if image.width > MAX_CANVAS or image.height > MAX_CANVAS:
        raise PosterBackgroundInvalid(_("底图 %(width)d×%(height)d 像素太大，每边最多 %(max)d 像素")
                                      % {"width": image.width, "height": image.height, "max": MAX_CANVAS})
    return image


def background_size(background: bytes) -> tuple[int, int]:
    """(width, height) of a background, read from its header (what ``layout_validate`` checks against)."""
    image = background_open(background)
    return image.width, image.height


def _background_decode(background: bytes, layout: PosterLayout) -> Image.Image:
    image = background_open(background)
    if image.size != (layout.width, layout.height):
        raise PosterBackgroundInvalid(_("底图是 %(width)d×%(height)d 像素，版式是按 %(layout_width)d×%(layout_height)d "
                                        "像素检查的") % {"width": image.width, "height": image.height,
                                                        "layout_width": layout.width, "layout_height": layout.height})
    try:
        return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise PosterBackgroundInvalid(_("底图不是可以读取的图片（支持 JPEG、PNG）")) from exc


class PosterRenderer:
    """Renders one template: built once, then ``render`` per poster.

    The background is decoded once, with the fixed texts drawn on it; fonts are loaded once per size; the
    text of a box is kept as a mask for values that repeat (a store's name on each of its staff's posters).
    """

    MASKS = 256  # text masks kept (a 630×120 box is 75 KB)

    def __init__(self, *, background: bytes, layout: PosterLayout, font_path: str) -> None:
        self.layout = layout
        self._fitter = TextFitter(font_path)
        self._masks: OrderedDict[tuple[TextElement, str], Image.Image | None] = OrderedDict()
        base = _background_decode(background, layout)
        for element in layout.texts:
            if element.field == FIXED_TEXT:
                self._draw_text(base, element, element.text)
        self._background = base
        self._fields = tuple(element for element in layout.texts if element.field != FIXED_TEXT)

    def render(self, *, values: Mapping[str, Any], qr_payload: str | None) -> bytes:
        """The poster as a baseline RGB JPEG of the background's size. Raises PosterQrTooDense."""
        try:
            return self._render(values, qr_payload)
        except _QrTooDense as exc:
            raise exc.domain_error() from None

    def _mask(self, element: TextElement, value: str) -> Image.Image | None:
        """The box's text as coverage (0–255) in an "L" image the size of the box; None when nothing shows."""
        key = (element, value)
        if key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        fitted = self._fitter.fit(element, value)
        mask = None
        if fitted.lines:
            mask = Image.new("L", (element.width, element.height), 0)
            draw = ImageDraw.Draw(mask)
            font = self._fitter.font(fitted.size)
            pitch = line_pitch(fitted.size)
            x = {"left": 0, "center": element.width / 2, "right": element.width}[element.align]
            for number, line in enumerate(fitted.lines):
                draw.text((x, number * pitch + pitch / 2), line, font=font, fill=255, anchor=ANCHORS[element.align])
        self._masks[key] = mask
        if len(self._masks) > self.MASKS:
            self._masks.popitem(last=False)
        return mask

    def _draw_text(self, image: Image.Image, element: TextElement, value: str) -> None:
        mask = self._mask(element, value)
        if mask is not None:
            image.paste(element.color, (element.x, element.y, element.x + element.width, element.y + element.height),
                        mask)

    def _render(self, values: Mapping[str, Any], qr_payload: str | None) -> bytes:
        image = self._background.copy()
        for element in self._fields:
            self._draw_text(image, element, str(values.get(element.field) or "").strip())
        qr = self.layout.qr
        if qr is not None and qr_payload:
            try:
                code = poster_qr(qr_payload, size=qr.size)
            except ValueError:
                raise _QrTooDense(qr.size, len(qr_payload)) from None
            image.paste(code, (qr.x, qr.y))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, progressive=False, optimize=False)
        return buffer.getvalue()


# --- the cache key ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _font_identity(path: str) -> str:
    """The font by what it is, not where it lies: the same font file gives the same key on every machine."""
    family, style = font_load(path, 12).getname()
    return f"{family}/{style}/{font_face_index(path)}/{os.path.getsize(path)}"


def poster_inputs_key(*, template_version_id: int, values: Mapping[str, Any], qr_payload: str | None,
                      font_path: str | None = None) -> str:
    """sha256 (hex) of what the image is made from: the template version (background and layout), the values
    (empty ones draw nothing, so they count as absent; spaces around a value are not drawn either), the QR
    payload, the font and the versions of this engine, Pillow and qrcode. Raises PosterFontMissing."""
    cleaned = {str(key): str(value).strip() for key, value in values.items()
               if value is not None and str(value).strip()}
    inputs = {
        "engine": [ENGINE_VERSION, QR_MASK_PATTERN, version("pillow"), version("qrcode")],
        "font": _font_identity(font_path or poster_font_path()),
        "template_version": template_version_id,
        "values": cleaned,
        "qr": qr_payload or None,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --- many posters ----------------------------------------------------------------------------------------------

Item = tuple[int, Mapping[str, Any], str | None]
_worker_renderer: PosterRenderer | None = None


def _worker_init(background: bytes, layout: PosterLayout, font_path: str) -> None:
    global _worker_renderer
    _worker_renderer = PosterRenderer(background=background, layout=layout, font_path=font_path)


def _worker_render(chunk: list[Item]) -> list[tuple[int, bytes]]:
    assert _worker_renderer is not None
    return [(key, _worker_renderer._render(values, payload)) for key, values, payload in chunk]


def posters_render_many(*, background: bytes, layout: PosterLayout, items: Iterable[Item],
                        processes: int | None = None, font_path: str | None = None,
                        chunksize: int = CHUNKSIZE) -> Iterator[tuple[int, bytes]]:
    """(key, JPEG) for every (key, values, qr_payload) of ``items``, in their order, rendered by ``processes``
    worker processes (default: one per CPU; 1 renders here, without a pool).

    Items are read lazily and at most ``4 × processes`` chunks of ``chunksize`` are in flight, so memory stays
    bounded whatever the count and however slowly the caller consumes the posters. Each worker builds its
    renderer once. Stopping the iteration early stops the workers. Raises PosterFontMissing,
    PosterBackgroundInvalid (before any work starts) and PosterQrTooDense.

    The pool is billiard's (Celery's own multiprocessing) in the forkserver context: the standard library
    refuses to start processes from a daemonic process, which a Celery prefork worker's child is, and billiard
    does not. Forkserver, not fork: the workers start from a clean server process, so they inherit neither the
    caller's database and Redis connections nor the locks of its threads (Celery's, gunicorn's).
    """
    font = font_path or poster_font_path()
    processes = processes or os.cpu_count() or 1
    renderer = PosterRenderer(background=background, layout=layout, font_path=font)  # refuses bad input here
    iterator = iter(items)
    if processes == 1:
        try:
            for key, values, payload in iterator:
                yield key, renderer._render(values, payload)
        except _QrTooDense as exc:
            raise exc.domain_error() from None
        return
    del renderer
    context = billiard.get_context("forkserver")
    context.set_forkserver_preload(["materials.posters.render"])
    pool = context.Pool(processes, initializer=_worker_init, initargs=(background, layout, font))
    in_flight: deque = deque()
    finished = False
    try:
        while True:
            while len(in_flight) < 4 * processes:
                chunk = list(itertools.islice(iterator, chunksize))
                if not chunk:
                    break
                in_flight.append(pool.apply_async(_worker_render, (chunk,)))
            if not in_flight:
                break
            yield from in_flight.popleft().get()
        finished = True
    except _QrTooDense as exc:
        raise exc.domain_error() from None
    finally:
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
