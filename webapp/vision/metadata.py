"""What a photo's metadata says (date taken, camera, location) and the same photo without it.

`facts` reads EXIF once, from the image Pillow opened. `without_metadata` returns the photo's own
bytes with every metadata block left out (EXIF, XMP, IPTC, comments, text chunks) and the coded
pixels untouched: what a share link serves of a photo whose original a browser shows as it is.
Pillow cannot do that without decoding and encoding again (which changes a JPEG's pixels), so the
three container formats a browser shows are walked here: JPEG segments, PNG chunks, RIFF chunks."""
import re
import struct
from dataclasses import dataclass
from datetime import datetime
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
    value = "".join(ch for ch in value if ch.isprintable()).strip()
    return value[:100] or None


def _when(value) -> Optional[datetime]:
    match = EXIF_DATE.match(_text(value) or "")
    if not match:
        return None
    try:
        moment = datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None
    return moment if moment.year >= EARLIEST_YEAR else None


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


# JPEG segments kept: what decoding needs (tables, frame, scan, restart interval), JFIF, the
# colour profile (APP2 ICC_PROFILE) and Adobe's colour transform flag (APP14). APP1 (EXIF, XMP),
# APP13 (IPTC), COM and every other APPn are left out.
_KEEP_APP = {0xE0: (b"JFIF\x00", b"JFXX\x00"), 0xE2: (b"ICC_PROFILE\x00",), 0xEE: (b"Adobe",)}
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
_WEBP_DROP = {b"EXIF", b"XMP "}


def without_metadata(data: bytes, fmt: str) -> bytes:
    """`data` (a JPEG, PNG or WebP, as Pillow names the format) with its metadata left out."""
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
    out, at = [b"\xff\xd8"], 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise NotStrippable("broken JPEG segment")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        segment = data[at:at + 2 + length]
        if marker == 0xDA:  # start of scan: the coded image up to the first end of image
            end = data.find(b"\xff\xd9", at + 2 + length)
            out.append(data[at:] if end < 0 else data[at:end + 2])
            return b"".join(out)  # a multi-picture file's other pictures (and their EXIF) left out
        keep = marker < 0xE0 or (marker <= 0xEF and marker in _KEEP_APP
                                 and data[at + 4:at + 4 + 16].startswith(_KEEP_APP[marker]))
        if keep:
            out.append(segment)
        at += 2 + length
    raise NotStrippable("no image data in the JPEG")


def _png(data: bytes) -> bytes:
    signature = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(signature):
        raise NotStrippable("not a PNG")
    out, at = [signature], len(signature)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        end = at + 12 + length
        if kind not in _PNG_DROP:
            out.append(data[at:end])
        if kind == b"IEND":
            break
        at = end
    return b"".join(out)


def _webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise NotStrippable("not a WebP")
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[at:at + 8])
        chunk = data[at:at + 8 + length + (length & 1)]
        if kind == b"VP8X":  # the extended header's flags say which metadata follows: none now
            chunk = chunk[:8] + bytes([chunk[8] & ~0x0C]) + chunk[9:]
        if kind not in _WEBP_DROP:
            chunks.append(chunk)
        at += 8 + length + (length & 1)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
