"""Material files made in code (no binary fixture committed): images with Pillow, a PDF with pypdfium2, a
1-second MP4 with PyAV, a docx with zipfile."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import av
import pypdfium2 as pdfium
from PIL import Image


def jpeg_bytes(width: int = 200, height: int = 100, *, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    out = io.BytesIO()
    if orientation is None:
        image.save(out, format="JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation  # Orientation
        image.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def png_bytes(width: int = 120, height: int = 80, *, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), (30, 120, 200, 0) if mode == "RGBA" else (30, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def pdf_bytes(pages: int = 2) -> bytes:
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(595, 842)  # A4, in points
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


def mp4_bytes(*, seconds: int = 1, fps: int = 10, width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(seconds * fps):
            frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), (index * 20 % 255, 120, 60)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def docx_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml",
                         '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                         'content-types"><Override PartName="/word/document.xml" ContentType="application/'
                         'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        archive.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships/>')
        archive.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
    return out.getvalue()


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG a few dozen bytes long that claims width × height pixels (10 billion by default):
    decoding it would need tens of gigabytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
            + chunk(b"IEND", b""))


SVG_WITH_SCRIPT = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                   b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                   b'<script>alert(document.cookie)</script><rect width="100" height="100"/></svg>')
