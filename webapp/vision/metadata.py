"""What a photo's metadata says (date taken, camera, location) and the same photo without it.

`facts` reads EXIF once, from the image Pillow opened. `without_metadata` returns the photo's own
bytes with only what decoding needs (no EXIF, XMP, IPTC, comments, colour profile, thumbnails,
text or private chunks) and the coded pixels untouched: what leaves the owner's account (a share
link, a dataset). Pillow cannot do that without decoding and encoding again (which changes a
JPEG's pixels), so the three container formats a browser shows are walked here: JPEG segments,
PNG chunks, RIFF chunks; what is kept is named, anything else is left out."""
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from PIL import Image

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL = 0x010F, 0x0110
DATE_TAKEN, OFFSET_TAKEN = 0x9003, 0x9011  # DateTimeOriginal, OffsetTimeOriginal
EXIF_DATE = re.compile(r"\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
EXIF_OFFSET = re.compile(r"\s*([+-])(\d{2}):(\d{2})")
EARLIEST_YEAR = 1826  # the oldest surviving photograph; "0000:00:00" and the like mean "unknown"


@dataclass(frozen=True)
class Facts:
    """What the photo says about itself; None where it says nothing (or nothing readable)."""

    taken_at: Optional[datetime] = None  # the local time it was taken, as written (naive)
    taken_offset: Optional[int] = None  # minutes east of UTC, where the camera wrote it
    camera_make: Optional[str] = None
    camera_model: Optional[str] = None
    latitude: Optional[float] = None
    longitude: Optional[float] = None


def facts(image: Image.Image) -> Facts:
    """Date taken, camera and location from the image's EXIF; a damaged field is left out."""
    try:
        exif = image.getexif()
        details = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on broken EXIF: it says nothing then
        return Facts()
    taken = _when(details.get(DATE_TAKEN))
    latitude, longitude = _degrees(gps.get(2), gps.get(1), "S"), _degrees(gps.get(4), gps.get(3), "W")
    if latitude is None or longitude is None or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        latitude = longitude = None
    return Facts(taken_at=taken, taken_offset=_offset(details.get(OFFSET_TAKEN)) if taken else None,
                 camera_make=_text(exif.get(MAKE)), camera_model=_text(exif.get(MODEL)),
                 latitude=latitude, longitude=longitude)


def _text(value) -> Optional[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = "".join(ch for ch in value if ch.isprintable()).strip().lstrip("\ufeff\xff\xfe")
    return value[:100] or None


def _when(value) -> Optional[datetime]:
    match = EXIF_DATE.match(_text(value) or "")
    if not match:
        return None
    try:
        moment = datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None
    if moment.year < EARLIEST_YEAR or moment > datetime.now() + timedelta(days=2):  # a clock never set, or wrong
        return None
    return moment


def _offset(value) -> Optional[int]:
    match = EXIF_OFFSET.match(_text(value) or "")
    if not match:
        return None
    minutes = int(match[2]) * 60 + int(match[3])
    return (-minutes if match[1] == "-" else minutes) if minutes <= 14 * 60 else None


def _degrees(value, reference, negative: str) -> Optional[float]:
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    total = degrees + minutes / 60 + seconds / 3600
    if total != total:  # NaN from a 0/0 rational
        return None
    return -total if _text(reference) == negative else total


# ---- the same bytes without metadata ----

class NotStrippable(ValueError):
    """Not a JPEG, PNG or WebP this module can walk."""


# What is kept is what decoding needs, by name; everything else goes (EXIF, XMP, IPTC, comments,
# colour profiles, whose descriptions are free text, thumbnails, private and unknown chunks).
# JPEG: tables, frames, scans, restart intervals (every marker below APP0), JFIF without its
# thumbnail, Adobe's colour transform flag; nothing after the first end of image (a multi-picture
# file's other pictures, trailing data).
_ADOBE = 0xEE
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"bKGD", b"pHYs",
             b"cICP", b"acTL", b"fcTL", b"fdAT"}
_WEBP_KEEP = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"}
_WEBP_METADATA_FLAGS = 0x20 | 0x08 | 0x04  # VP8X: ICC profile, EXIF, XMP


def without_metadata(data: bytes, fmt: str) -> bytes:
    """`data` (a JPEG, PNG or WebP, as Pillow names the format) with only what decoding needs.
    Raises NotStrippable for a file it cannot walk (then make a copy from the pixels instead)."""
    if fmt in ("JPEG", "MPO"):
        return _jpeg(data)
    if fmt == "PNG":
        return _png(data)
    if fmt == "WEBP":
        return _webp(data)
    raise NotStrippable(fmt)


def _jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise NotStrippable("not a JPEG")
    out, at, size = [b"\xff\xd8"], 2, len(data)
    while True:
        at = data.find(b"\xff", at)  # stray bytes between segments (decoders skip them) left out
        while 0 <= at < size - 1 and data[at + 1] == 0xFF:  # fill bytes
            at += 1
        if at < 0 or at + 1 >= size:
            raise NotStrippable("no end of image in the JPEG")
        marker = data[at + 1]
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            return b"".join(out)
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # not a segment: skipped
            at += 2
            continue
        if at + 4 > size:
            raise NotStrippable("a JPEG segment is cut short")
        end = at + 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
        segment = data[at:end]
        if marker == 0xDA:  # a scan: its header and coded data, up to the next marker
            end = _after_scan(data, end)
            out.append(data[at:end])
        elif marker == 0xE0 and segment[4:9] == b"JFIF\x00" and len(segment) >= 18:
            out.append(b"\xff\xe0\x00\x10" + segment[4:16] + b"\x00\x00")  # no thumbnail
        elif marker < 0xE0 or (marker == _ADOBE and segment[4:9] == b"Adobe"):
            out.append(segment)
        at = end


def _after_scan(data: bytes, at: int) -> int:
    """Where a scan's coded data ends: the next 0xFF that is neither stuffing (FF 00), a restart
    marker (FF D0-D7) nor fill."""
    while True:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= len(data):
            return len(data)
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            at += 1
            continue
        return at


def _png(data: bytes) -> bytes:
    signature = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(signature):
        raise NotStrippable("not a PNG")
    out, at = [signature], len(signature)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        end = at + 12 + length
        if kind in _PNG_KEEP:
            out.append(data[at:end])
        if kind == b"IEND":
            return b"".join(out)
        at = end
    raise NotStrippable("no end in the PNG")


def _webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise NotStrippable("not a WebP")
    chunks, at, end = [], 12, min(len(data), 8 + struct.unpack("<I", data[4:8])[0])  # nothing past the RIFF
    while at + 8 <= end:
        kind, length = struct.unpack("<4sI", data[at:at + 8])
        chunk = data[at:at + 8 + length + (length & 1)]
        if kind == b"VP8X":  # the extended header's flags say which metadata follows: none now
            chunk = chunk[:8] + bytes([chunk[8] & ~_WEBP_METADATA_FLAGS & 0xFF]) + chunk[9:]
        if kind in _WEBP_KEEP:
            chunks.append(chunk)
        at += 8 + length + (length & 1)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
