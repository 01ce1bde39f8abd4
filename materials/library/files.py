"""A material's file, judged by its content: what it is, whether the library takes it, and its thumbnail.

``file_inspect`` sniffs the bytes (the maintained ``filetype`` library, never the file name), refuses what
the kind does not take or what contradicts the file's name, checks the size against the kind's limit
(settings.XIAOER_MATERIAL_MAX_BYTES, WeCom's media/upload limits by default), and then opens the file with
the library that will later use it: Pillow decodes an image fully (with its decompression-bomb guard set
explicitly to settings.XIAOER_MATERIAL_MAX_PIXELS), pypdfium2 opens a PDF, PyAV opens a video and decodes its
first frame. What it learnt is a ``FileFacts``. ``thumbnail_make`` draws a JPEG at most 320 px on its long
side from an image, a PDF's first page or a video's first frame.

Kinds with a file, and what each takes (WeCom's media/upload accepts JPG/PNG images and MP4 videos):

    image, poster_template   JPG, PNG
    video                    MP4
    file                     PDF, DOCX, XLSX, PPTX, DOC, XLS, PPT

The bytes are given once (``data``) and read in place: BytesIO over bytes copies nothing, the sniffer
reads the first 8 KB, pdfium reads from the same buffer.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import av
import filetype
import pypdfium2 as pdfium
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, ImageOps, UnidentifiedImageError

from portal.errors import DomainError

KINDS_WITH_FILES = ("image", "poster_template", "video", "file")
KIND_LABELS = {"image": gettext_lazy("图片"), "poster_template": gettext_lazy("海报模板"),
               "video": gettext_lazy("视频"), "file": gettext_lazy("文件")}
IMAGE_EXTENSIONS = ("jpg", "png")
OFFICE_EXTENSIONS = ("docx", "xlsx", "pptx", "doc", "xls", "ppt")
ALLOWED_EXTENSIONS = {
    "image": IMAGE_EXTENSIONS,
    "poster_template": IMAGE_EXTENSIONS,
    "video": ("mp4",),
    "file": ("pdf", *OFFICE_EXTENSIONS),
}
EXTENSION_ALIASES = {"jpeg": "jpg", "jpe": "jpg"}  # names a file may carry for the same content
PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG"}
THUMBNAIL_SIZE = 320
# PDFium is not thread-safe: one document operation at a time in a process.
_PDFIUM_LOCK = threading.Lock()


class MaterialFileRefused(DomainError):
    """An uploaded material file that the library does not take; the message says why and what to do."""


@dataclass(frozen=True)
class FileFacts:
    mime: str
    extension: str  # as sniffed from the content, lower case, no dot: jpg, png, mp4, pdf, docx…
    size: int
    sha256: str
    width: int | None = None  # images and videos, in pixels
    height: int | None = None
    pages: int | None = None  # PDFs
    duration_seconds: float | None = None  # videos


def file_inspect(*, data: bytes, filename: str, kind: str) -> FileFacts:
    """The facts of ``data`` uploaded as ``filename`` for a material of ``kind``; MaterialFileRefused if the
    library does not take it (the message says which rule and what to do)."""
    if kind not in ALLOWED_EXTENSIONS:
        raise MaterialFileRefused(_("这类素材不带文件"))
    allowed = ALLOWED_EXTENSIONS[kind]
    label = KIND_LABELS[kind]
    allowed_text = "、".join(ext.upper() for ext in allowed)
    size = len(data)
    if size == 0:
        raise MaterialFileRefused(_("文件是空的（0 字节），请重新选择文件上传"))
    limit = settings.XIAOER_MATERIAL_MAX_BYTES[kind]
    if size > limit:
        raise MaterialFileRefused(
            _("文件过大：%(kind)s素材上限为 %(max)s，这个文件有 %(size)s。请压缩后再上传")
            % {"kind": label, "max": filesizeformat(limit), "size": filesizeformat(size)})

    named = _name_extension(filename)
    sniffed = filetype.guess(data)
    if sniffed is None:
        if named == "svg" or _looks_like_svg(data):
            raise MaterialFileRefused(
                _("不接受 SVG 图片：SVG 里可以带脚本，企业微信也不接收。请另存为 JPG 或 PNG 后上传"))
        raise MaterialFileRefused(_("无法识别文件内容：%(kind)s素材只接受 %(allowed)s 格式的文件")
                                  % {"kind": label, "allowed": allowed_text})
    extension = EXTENSION_ALIASES.get(sniffed.extension, sniffed.extension)
    if named and named != extension:
        raise MaterialFileRefused(
            _("文件内容是 %(actual)s，但文件名是 .%(named)s。请确认选对了文件，或改正文件名后再上传")
            % {"actual": extension.upper(), "named": named})
    if extension not in allowed:
        raise MaterialFileRefused(_("文件内容是 %(actual)s，%(kind)s素材只接受 %(allowed)s 格式的文件")
                                  % {"actual": extension.upper(), "kind": label, "allowed": allowed_text})

    facts = {"mime": sniffed.mime, "extension": extension, "size": size, "sha256": hashlib.sha256(data).hexdigest()}
    if extension in IMAGE_EXTENSIONS:
        width, height = _image_check(data, extension)
        return FileFacts(**facts, width=width, height=height)
    if extension == "pdf":
        return FileFacts(**facts, pages=_pdf_check(data))
    if extension == "mp4":
        width, height, duration = _video_check(data)
        return FileFacts(**facts, width=width, height=height, duration_seconds=duration)
    if extension in ("docx", "xlsx", "pptx"):
        _zip_check(data)
    return FileFacts(**facts)


def thumbnail_make(*, data: bytes, facts: FileFacts) -> bytes | None:
    """A JPEG at most 320 px on its long side: an image (turned as its EXIF orientation says), a PDF's first
    page, a video's first frame; None for Office files. ``facts`` is ``file_inspect``'s for the same bytes."""
    if facts.extension in IMAGE_EXTENSIONS:
        _pixel_guard()
        with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[facts.extension]]) as image:
            image.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))  # JPEG: decode at a smaller scale
            return _jpeg(ImageOps.exif_transpose(image))
    if facts.extension == "pdf":
        with _PDFIUM_LOCK:
            pdf = pdfium.PdfDocument(data)
            try:
                page = pdf[0]
                width, height = page.get_size()
                bitmap = page.render(scale=THUMBNAIL_SIZE / max(width, height, 1))
                image = bitmap.to_pil()
                page.close()
            finally:
                pdf.close()
        return _jpeg(image)
    if facts.extension == "mp4":
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0))
            return _jpeg(frame.to_image())
    return None


def _name_extension(filename: str) -> str:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")
    return EXTENSION_ALIASES.get(suffix, suffix)


def _looks_like_svg(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in head


def _pixel_guard() -> int:
    """Pillow's decompression-bomb guard, set from our setting rather than left to Pillow's default: an image
    past it warns (up to twice) and then fails in Image.open; file_inspect refuses from the limit on."""
    limit: int = settings.XIAOER_MATERIAL_MAX_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    return limit


def _image_check(data: bytes, extension: str) -> tuple[int, int]:
    limit = _pixel_guard()
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[extension]]) as image:
            width, height = image.size
            if width * height > limit:  # Pillow only warns up to twice the limit: a bomb warning is a refusal too
                bomb = True
            else:
                bomb = False
                image.load()  # a truncated or damaged file fails here, not later in a thumbnail or at WeCom
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        bomb = True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MaterialFileRefused(_("图片已损坏或不完整，无法读取。请重新导出为 JPG 或 PNG 后上传")) from exc
    if bomb:
        raise MaterialFileRefused(_("图片像素过多：上限为 %(max)s 像素（宽×高），请缩小尺寸后再上传")
                                  % {"max": f"{limit:,}"})
    return width, height


def _pdf_check(data: bytes) -> int:
    refused = MaterialFileRefused(_("PDF 文件已损坏或设置了密码，无法打开。请重新导出（不加密码）后上传"))
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise refused from exc
        try:
            pages = len(pdf)
        finally:
            pdf.close()
    if pages < 1:
        raise refused
    return pages


def _video_check(data: bytes) -> tuple[int, int, float | None]:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if container.duration:
                duration: float | None = container.duration / av.time_base
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = None
            next(container.decode(stream))  # the first frame decodes: the file is a playable video
    except (av.FFmpegError, IndexError, StopIteration, ValueError, OSError) as exc:
        raise MaterialFileRefused(_("视频文件已损坏或无法解码。请重新导出为 MP4（H.264）后上传")) from exc
    if not width or not height:
        raise MaterialFileRefused(_("视频文件已损坏或无法解码。请重新导出为 MP4（H.264）后上传"))
    return width, height, round(duration, 3) if duration is not None else None


def _zip_check(data: bytes) -> None:
    """An Office 2007+ file is a ZIP: its directory must be readable (a truncated upload is not)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise MaterialFileRefused(_("文件已损坏或不完整，无法打开。请重新保存后上传")) from exc


def _jpeg(image: Image.Image) -> bytes:
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))  # transparency on white
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=82, optimize=True)
    return out.getvalue()
