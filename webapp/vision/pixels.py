"""What the side that detects (the Celery worker, or the web process in the thread executor) makes
of a decoded photo: the thumbnail, with OpenCV from the BGR array detection takes anyway, and the
rendition. NumPy and OpenCV are imported here (and where `Decoded.pixels` are made), so the web
tier, which draws with Pillow, carries neither (its image has neither installed)."""
import cv2
import numpy as np
from PIL import Image

from webapp.vision.images import Decoded, encode


def rendition(decoded: Decoded) -> tuple[bytes, str] | None:
    """(bytes, extension) of a copy the browser shows as `decoded`'s pixels, upright, without the
    original's metadata: a PNG of a lossless original, else a JPEG (quality 92) carrying the
    original's colour profile. None when the original itself is one (`browser_ready`)."""
    if decoded.browser_ready:
        return None
    image = decoded.image if decoded.image is not None else Image.fromarray(
        cv2.cvtColor(decoded.pixels, cv2.COLOR_BGR2RGB))
    extra = {"icc_profile": decoded.icc_profile} if decoded.icc_profile else {}
    if decoded.lossless:
        return encode(image, "PNG", compress_level=3, **extra), "png"
    return encode(image, "JPEG", quality=92, **extra), "jpg"


def thumbnail(image_bgr: np.ndarray, size: int) -> bytes:
    """A JPEG about `size` pixels on the long side (never enlarged). Made with OpenCV from the
    array detection uses anyway: a third of Pillow's time, which every upload feels."""
    return encode_small(shrink(image_bgr, size))


def shrink(image_bgr: np.ndarray, size: int) -> np.ndarray:
    """The image about `size` pixels on the long side (never enlarged), by area averaging."""
    height, width = image_bgr.shape[:2]
    scale = min(1.0, size / max(height, width))
    return cv2.resize(image_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA)


def encode_small(image_bgr: np.ndarray) -> bytes:
    """A thumbnail's JPEG (quality 80)."""
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("could not encode the thumbnail")
    return buffer.tobytes()
