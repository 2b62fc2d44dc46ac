"""Test images made on the fly: every accepted format, every EXIF orientation, hostile files."""
import io
import struct
import zlib

import pillow_heif
from PIL import Image, ImageOps

pillow_heif.register_heif_opener()

# The inverse of what each EXIF orientation tells a viewer to do, so that applying the
# orientation brings the stored pixels back upright.
STORE_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def sample(width=96, height=64) -> Image.Image:
    """An asymmetric picture: a red block top-left, so a wrong orientation shows."""
    image = Image.new("RGB", (width, height), (30, 90, 200))
    image.paste((230, 20, 20), (0, 0, width // 3, height // 3))
    return image


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def with_orientation(upright: Image.Image, orientation: int, fmt="JPEG") -> bytes:
    """Store `upright` rotated/flipped so that the EXIF `orientation` undoes it."""
    transpose = STORE_AS[orientation]
    stored = upright.transpose(transpose) if transpose is not None else upright.copy()
    exif = Image.Exif()
    exif[ImageOps.ExifTags.Base.Orientation] = orientation
    return encode(stored, fmt, exif=exif, quality=95)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


HOSTILE = {
    "text named .jpg": ("notes.jpg", b"this is just some text, not a photo\n" * 20, "not an image"),
    "empty file": ("empty.jpg", b"", "empty"),
    "truncated JPEG": ("cut.jpg", encode(sample(400, 300), "JPEG")[:-400], "damaged or truncated"),
    "SVG": ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                           b'<rect width="10" height="10"/></svg>', "not an image"),
    "PDF": ("doc.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n"
                       b"trailer << /Root 1 0 R >>\n%%EOF\n", "not an image"),
    "GIF": ("anim.gif", encode(sample(), "GIF"), "not an image"),
    "decompression bomb": ("bomb.png", png_declaring(30000, 30000), "too many pixels|too large"),
}


def drawn(original_bgr, boxes):
    """`vision.draw.draw_boxes` on a BGR array (as the tests decode images with OpenCV), as one."""
    import numpy as np

    from webapp.vision.draw import draw_boxes

    return np.asarray(draw_boxes(Image.fromarray(np.ascontiguousarray(original_bgr[:, :, ::-1])), boxes))[:, :, ::-1]
