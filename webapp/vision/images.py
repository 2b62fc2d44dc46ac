"""Uploaded photos: the one decode every path uses, their browser renditions and thumbnails.

A photo is stored as it was uploaded, byte for byte. `decode` turns those bytes into the upright
RGB pixels that everything sees: detection on every path (an upload, a re-run, a retry, either
executor, the import, the DeepStack endpoint), the thumbnail, the rendition and every drawn image.
They come as a Pillow image (`Decoded.image`: what the web tier draws on) and, asked for, as a BGR
array (`Decoded.pixels`: what Ultralytics and OpenCV take). NumPy and OpenCV are imported only then
and in `vision.pixels` (thumbnails, renditions): the web tier needs neither, and its image carries
neither. Its rules:

- orientation: the EXIF orientation is applied (HEIF's own rotation and mirroring, which
  pillow-heif applies while decoding, likewise);
- transparency (RGBA, grey with alpha, a palette or a colour marked transparent) is laid over
  white;
- CMYK is converted to sRGB through the photo's ICC profile where it has one, else by Pillow's
  plain formula; an RGB photo's own profile is kept with it, not applied (as Ultralytics reads it);
- 16-bit samples keep their high byte (v >> 8); palettes are expanded.

A browser shows some originals as they are (upright JPEG, PNG or WebP in plain RGB or grey); for
the others (a portrait phone photo, HEIC, BMP, TIFF, CMYK, transparency, 16-bit) `rendition` makes
a copy from the decoded pixels for the pages to show (`vision.pixels.rendition`)."""
import dataclasses
import io
import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError

from webapp.vision.metadata import Facts, NotStrippable, facts, without_metadata

pillow_heif.register_heif_opener()


def _unpatched_open():
    """Pillow's own Image.open. Ultralytics replaces it process-wide with a wrapper that, on an
    unidentified file, tries to pip-install a HEIF plugin; uploads must never trigger that."""
    current = Image.open
    if current.__module__ == Image.__name__:
        return current
    return getattr(sys.modules.get(current.__module__), "_image_open", current)


_pil_open = _unpatched_open()

# Pillow plugin names tried when opening; anything else is never parsed at all.
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF")
SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP, TIFF or HEIC/HEIF"
NOT_AN_IMAGE = f"This file is not an image we can read. Upload a {SUPPORTED_TEXT} image."
DAMAGED = "The image file is damaged or truncated."
UNREADABLE_COLOURS = "The image's colours are in a form we cannot read."
DECODING_FOUND = (DAMAGED, UNREADABLE_COLOURS)  # what only decoding finds: the photo's run fails with it
# The original's file extension, by the format Pillow found in it.
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif",
              "HEIF": "heic"}
FORMAT_OF = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF", "heic": "HEIF"}
# Originals a browser shows exactly as decoded here: these formats, upright, in these modes.
BROWSER_FORMATS = ("JPEG", "MPO", "PNG", "WEBP")
BROWSER_MODES = ("RGB", "L", "P")
LOSSLESS_FORMATS = ("PNG", "BMP", "TIFF")
MAX_SIDE = 65_500  # the longest side a JPEG holds (the annotated image is a JPEG of the photo's size)
# EXIF orientation -> the Pillow transpose that makes the photo upright (as ImageOps does it).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SRGB = ImageCms.createProfile("sRGB")


class ImageRejected(ValueError):
    """The upload is not an image we accept; the message says why, for the person who sent it."""


@dataclass
class Decoded:
    """A photo decoded: its upright pixels and what the file says about itself."""

    image: Optional[Image.Image] = field(repr=False)  # upright RGB; given up once `pixels` are made
    format: str  # as Pillow names it: JPEG, MPO, PNG, WEBP, BMP, TIFF, HEIF
    orientation: int  # the EXIF (or HEIF) orientation the file was written with (1 = upright)
    browser_ready: bool  # a browser shows the original as these pixels: no rendition needed
    lossless: bool  # the original's pixels are exact (a rendition of it is a PNG)
    icc_profile: bytes | None = field(default=None, repr=False)  # an RGB photo's own profile
    facts: Facts = field(default_factory=Facts)
    geometry: "Geometry" = field(default_factory=lambda: Geometry())  # from the pixels to the photo's
    _pixels: object = field(default=None, repr=False)

    @property
    def pixels(self):
        """The same pixels as an H×W×3 BGR uint8 NumPy array (what detection and OpenCV take),
        made the first time it is asked for; the Pillow image is given up then, so a photo is
        held once. Imports NumPy and OpenCV: the detecting side's only."""
        if self._pixels is None:
            import cv2
            import numpy as np

            self._pixels, self.image = cv2.cvtColor(np.asarray(self.image), cv2.COLOR_RGB2BGR), None
        return self._pixels

    @property
    def decoded_size(self) -> tuple[int, int]:
        """(width, height) of the pixels as decoded (smaller than the photo's when reduced)."""
        if self._pixels is not None:
            return self._pixels.shape[1], self._pixels.shape[0]
        return self.image.size

    @property
    def reduced(self) -> bool:
        return self.geometry.scale != (1.0, 1.0)

    @property
    def width(self) -> int:
        """The photo's upright width (its pixels' own, unless they were decoded reduced)."""
        return self.geometry.size[0] if self.reduced else self.decoded_size[0]

    @property
    def height(self) -> int:
        return self.geometry.size[1] if self.reduced else self.decoded_size[1]

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.format, "img")


# Per EXIF orientation: which stored axis each upright one comes from, and whether it runs backwards
# (the transposes of _UPRIGHT): ((x from, x flipped), (y from, y flipped)).
_UPRIGHT_AXES = {1: ((0, False), (1, False)), 2: ((0, True), (1, False)), 3: ((0, True), (1, True)),
                 4: ((0, False), (1, True)), 5: ((1, False), (0, False)), 6: ((1, True), (0, False)),
                 7: ((1, True), (0, True)), 8: ((1, False), (0, True))}


@dataclass(frozen=True)
class Geometry:
    """Where a position in decoded pixels is in the photo's own: x' = x·scale + offset, per axis.
    libjpeg's reduced pixel j (factor s) covers the photo's [s·j, s·j + s); the last one of a side
    that is no multiple of s covers less, and where turning the photo upright reverses that side,
    the partial pixel comes first: the offset (between -s and 0) accounts for it."""
    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)
    size: tuple[int, int] = (0, 0)  # the photo's upright size (positions are kept within it)

    @classmethod
    def reduced(cls, factor: int, stored: tuple[int, int], decoded: tuple[int, int], orientation: int) -> "Geometry":
        short = [full - factor * part for full, part in zip(stored, decoded, strict=True)]  # per stored axis, <= 0
        axes = _UPRIGHT_AXES.get(orientation, _UPRIGHT_AXES[1])
        offset = tuple(float(short[axis]) if flipped else 0.0 for axis, flipped in axes)
        size = tuple(stored[axis] for axis, _ in axes)
        return cls((float(factor), float(factor)), offset, size)

    def corners(self, x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
        if self.scale == (1.0, 1.0):
            return x1, y1, x2, y2
        (sx, sy), (ox, oy), (width, height) = self.scale, self.offset, self.size

        def x(v: float) -> float:
            return min(max(v * sx + ox, 0.0), float(width))

        def y(v: float) -> float:
            return min(max(v * sy + oy, 0.0), float(height))

        return x(x1), y(y1), x(x2), y(y2)

    def place(self, boxes: list) -> list:
        """Boxes found on the decoded pixels (any dataclass with x1, y1, x2, y2), in the photo's."""
        if self.scale == (1.0, 1.0):
            return boxes
        placed = []
        for box in boxes:
            x1, y1, x2, y2 = self.corners(box.x1, box.y1, box.x2, box.y2)
            placed.append(dataclasses.replace(box, x1=x1, y1=y1, x2=x2, y2=y2))
        return placed


@dataclass
class Header:
    """What a photo's header says, before any pixel is decoded: enough to accept or refuse it."""

    format: str  # as Pillow names it
    width: int  # upright (after the EXIF orientation), as `decode` will return it
    height: int
    facts: Facts

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.format, "img")


def read_header(source: bytes | BinaryIO, max_pixels: Optional[int] = None) -> Header:
    """The format, upright size and metadata of a photo, read from its header alone (the web tier
    accepts uploads with this; decoding is the detection stream's). Raises ImageRejected for an
    empty file, one that is not a supported image, or one whose declared size is over the limits
    (with `max_pixels`; None: a photo stored already, whatever its size): what `decode` refuses
    before it decodes a pixel. A damaged file passes; `decode` refuses it."""
    image = _checked(source, max_pixels)
    try:
        if image.format == "PNG" and "exif" not in image.info:
            # Pillow looks for a PNG's EXIF past its pixel data by decoding them: not here (an
            # eXIf chunk after the pixels is rare; `decode` finds it, and the size is corrected)
            return Header("PNG", image.width, image.height, Facts())
        _, applied = _orientation(image)
        turned = applied in (5, 6, 7, 8) and image.format != "TIFF"  # Pillow's TIFF size is upright already
        width, height = (image.height, image.width) if turned else (image.width, image.height)
        return Header(image.format or "", width, height, facts(image))
    finally:
        image.close()


def decode(data: bytes, max_pixels: int, at_least: Optional[int] = None) -> Decoded:
    """The one decode: `data` as upright RGB pixels, by the rules above (`Decoded.image`, and
    `Decoded.pixels` as a BGR array when asked for).

    With `at_least` (what detection needs: `detection.registry.decode_size`), a JPEG at least
    twice that on its long side is decoded reduced, by libjpeg's own scaling (1/2, 1/4 or 1/8: the
    smallest still at least `at_least` long), several times faster than decoding all of a 12 MP
    photo to shrink it for the model anyway; `width` and `height` still say the photo's own size,
    and `geometry` where a position in the pixels is in the photo. Other formats, and smaller JPEGs, are decoded whole.

    Raises ImageRejected for an empty file, a file that is not a supported image, an image whose
    declared size exceeds `max_pixels` (checked from the header, before any pixel is decoded),
    or a damaged or truncated image.
    """
    image = _checked(data, max_pixels)
    full, factor = image.size, 1
    if at_least and image.format in ("JPEG", "MPO") and max(full) >= 2 * at_least:
        ratio = at_least / max(full)
        if image.draft(image.mode, (math.ceil(full[0] * ratio), math.ceil(full[1] * ratio))):
            factor = image.decoderconfig[0]
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(DAMAGED) from exc
    fmt, mode = image.format or "", image.mode
    written, applied = _orientation(image)
    try:
        rgb = _to_rgb(image)
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        raise ImageRejected(UNREADABLE_COLOURS) from exc
    if applied in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[applied])
    geometry = Geometry.reduced(factor, full, image.size, applied) if factor > 1 else Geometry()
    plain = mode in BROWSER_MODES and "transparency" not in image.info
    return Decoded(
        image=rgb, format=fmt, orientation=written,
        browser_ready=fmt in BROWSER_FORMATS and written == 1 and plain,
        lossless=fmt in LOSSLESS_FORMATS or mode.startswith("I"),
        icc_profile=image.info.get("icc_profile") if mode != "CMYK" else None,
        facts=facts(image), geometry=geometry,
    )


def _checked(source: bytes | BinaryIO, max_pixels: Optional[int]) -> Image.Image:
    """The image opened (its header read, no pixel decoded) and its declared size checked."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageRejected("The file is empty.")
        source = io.BytesIO(source)
    elif not source.read(1):
        raise ImageRejected("The file is empty.")
    else:
        source.seek(0)
    image = _open(source)
    if max_pixels is None:
        return image
    if max(image.width, image.height) > MAX_SIDE:
        raise ImageRejected(f"The image is {image.width}×{image.height} pixels: a photo may be at most "
                            f"{MAX_SIDE:,} pixels wide and {MAX_SIDE:,} tall.")
    if image.width * image.height > max_pixels:
        raise ImageRejected(
            f"The image is too large: {image.width}×{image.height} pixels "
            f"(the limit is {max_pixels / 1e6:g} megapixels)."
        )
    return image


def _open(source: BinaryIO) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _pil_open(source, formats=OPEN_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("The image declares far too many pixels to be decoded.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(NOT_AN_IMAGE) from exc


def _orientation(image: Image.Image) -> tuple[int, int]:
    """(the orientation the file was written with, the one still to apply to its pixels).
    pillow-heif applies HEIF's own and says which it was in `original_orientation`."""
    try:
        value = int(image.getexif().get(0x0112, 1) or 1)
    except (OSError, SyntaxError, ValueError, TypeError):
        value = 1
    applied = value if value in _UPRIGHT else 1
    written = int(image.info.get("original_orientation") or applied)
    return written, applied


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode == "CMYK":
        profile = image.info.get("icc_profile")
        if profile:
            return ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(profile)), _SRGB,
                                             renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
        return image.convert("RGB")
    if mode.startswith("I"):  # 16-bit (or wider) grey: the high byte
        return _high_byte(image).convert("RGB")
    return image.convert("RGB")


def _high_byte(grey: Image.Image) -> Image.Image:
    """The high byte of 16-bit grey values (wider ones clipped to 0-65535 first: Pillow's I to
    I;16 conversion clips), as an 8-bit grey image: every second byte of its little-endian samples."""
    if grey.mode != "I;16":
        grey = grey.convert("I").convert("I;16")
    return Image.frombytes("L", grey.size, grey.tobytes("raw", "I;16")[1::2])


def public_copy(data: bytes, extension: str, max_pixels: int) -> bytes:
    """What leaves the owner's account of a stored photo (an original a browser shows, or a
    rendition): its own bytes with only what decoding needs (`stripped`), or, for a file that
    cannot be walked, `encoded_again` from its pixels."""
    copy = stripped(data, extension)
    return copy if copy is not None else encoded_again(data, extension, max_pixels)


def stripped(data: bytes, extension: str) -> Optional[bytes]:
    """The photo's own bytes with only what decoding needs (see `metadata.without_metadata`);
    None for a file that cannot be walked. No decoding: cheap."""
    try:
        return without_metadata(data, FORMAT_OF[extension])
    except NotStrippable:
        return None


# How `encoded_again` writes each kind: a JPEG at quality 92, a PNG, a lossless WebP (pixels kept).
_AGAIN = {"jpg": ("JPEG", {"quality": 92}), "png": ("PNG", {}), "webp": ("WEBP", {"lossless": True})}


def encoded_again(data: bytes, extension: str, max_pixels: int) -> bytes:
    """The photo decoded and encoded again (as a JPEG at quality 92, a PNG or a lossless WebP, by
    `extension`): it carries nothing but its pixels. Pixel work: costs what a decode costs."""
    fmt, params = _AGAIN.get(extension, ("PNG", {}))
    try:
        return encode(decode(data, max_pixels).image, fmt, **params)
    except (OSError, ValueError) as exc:
        raise ImageRejected("The photo could not be encoded again.") from exc


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()
