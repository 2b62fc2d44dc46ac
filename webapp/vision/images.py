"""Decoding and validating uploaded images; EXIF orientation; stored encodings and thumbnails."""
import io
import sys
import warnings
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

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
# Formats a browser shows as they are: an upright file in one of these is stored unchanged.
WEB_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
LOSSLESS_FORMATS = {"PNG", "BMP", "TIFF"}


class ImageRejected(ValueError):
    """The upload is not an image we accept; the message says why, for the person who sent it."""


@dataclass
class LoadedImage:
    image: Image.Image  # upright, RGB
    format: str  # as Pillow names it: JPEG, MPO, PNG, WEBP, BMP, TIFF, HEIF
    orientation: int  # the EXIF orientation that was applied (1 = none)
    _bgr: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def bgr_array(self) -> np.ndarray:
        """The pixels as Ultralytics and OpenCV expect them (H×W×3, BGR, uint8); made once."""
        if self._bgr is None:
            self._bgr = cv2.cvtColor(np.asarray(self.image), cv2.COLOR_RGB2BGR)
        return self._bgr


def load_image(data: bytes, max_pixels: int) -> LoadedImage:
    """Decode `data` into an upright RGB image.

    Raises ImageRejected for an empty file, a file that is not a supported image, an image whose
    declared size exceeds `max_pixels` (checked from the header, before any pixel is decoded),
    or a damaged or truncated image.
    """
    if not data:
        raise ImageRejected("The file is empty.")
    image = _open(data)
    if image.width * image.height > max_pixels:
        raise ImageRejected(
            f"The image is too large: {image.width}×{image.height} pixels "
            f"(the limit is {max_pixels / 1e6:g} megapixels)."
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("The image file is damaged or truncated.") from exc
    orientation = _orientation(image)
    try:
        upright = ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("The image's EXIF data is damaged.") from exc
    return LoadedImage(image=_to_rgb(upright), format=image.format or "", orientation=orientation)


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _pil_open(io.BytesIO(data), formats=OPEN_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("The image declares far too many pixels to be decoded.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(NOT_AN_IMAGE) from exc


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1) or 1)
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode.startswith("I;16") or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def stored_original(loaded: LoadedImage, data: bytes) -> tuple[bytes, str]:
    """The bytes and extension to keep as the original: the upload itself when a browser can show
    it and it is already upright, else the upright pixels re-encoded."""
    if loaded.orientation == 1 and loaded.format in WEB_FORMATS:
        return data, WEB_FORMATS[loaded.format]
    if loaded.format in LOSSLESS_FORMATS:
        return encode(loaded.image, "PNG"), "png"
    return encode(loaded.image, "JPEG", quality=92), "jpg"


def stored_pixels(data: bytes, max_pixels: int) -> np.ndarray:
    """A stored original's upright BGR pixels. It was validated when it was uploaded and is
    stored upright as JPEG, PNG or WebP, so OpenCV decodes it straight to BGR (twice as fast as
    Pillow plus a conversion); anything OpenCV cannot read goes through the upload's own checks."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is not None:
        return image
    return load_image(data, max_pixels).bgr_array()


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def thumbnail(image_bgr: np.ndarray, size: int) -> bytes:
    """A JPEG about `size` pixels on the long side (never enlarged). Made with OpenCV from the
    array detection uses anyway: a third of Pillow's time, which every upload feels."""
    height, width = image_bgr.shape[:2]
    scale = min(1.0, size / max(height, width))
    small = cv2.resize(image_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("could not encode the thumbnail")
    return buffer.tobytes()
