"""The DeepStack endpoint's Celery task, run by a worker: detection on a photo the web process
put in the shared uploads folder, answered through the result backend."""
from flask import current_app

from webapp import storage
from webapp.detection.registry import decode_size, get_detector
from webapp.detection.availability import DetectionUnavailable, explain
from webapp.jobs.celery import DEEPSTACK_QUEUE
from webapp.jobs.scheduling import remote
from webapp.vision.detector import Box, DetectorError, ModelUnavailable
from webapp.vision.images import Decoded, ImageRejected, decode


def prediction(box: Box) -> dict:
    """A box as DeepStack writes it: integer pixels of the upright photo."""
    return {"label": box.label, "confidence": round(float(box.confidence), 4),
            "x_min": int(round(box.x1)), "y_min": int(round(box.y1)),
            "x_max": int(round(box.x2)), "y_max": int(round(box.y2))}


def predictions(decoded: Decoded, min_conf: float) -> list[dict]:
    """Every box at or above `min_conf` in the decoded photo (`decode_size`: as an upload's), on
    the default model, in the photo's own pixels. Raises ModelUnavailable or DetectorError."""
    result = get_detector().detect(decoded.pixels, floor=min_conf)
    return [prediction(b) for b in decoded.geometry.place(result.boxes) if b.confidence >= min_conf]


def decoded_for_detection(data: bytes) -> Decoded:
    """The photo decoded as an upload of it is for the default model (ImageRejected if it cannot be)."""
    return decode(data, current_app.config["MAX_IMAGE_PIXELS"], at_least=decode_size())


# The task's name travels in broker messages (it is where the function lived first): keep it.
@remote(name="webapp.deepstack.detect_stored", queue=DEEPSTACK_QUEUE)
def detect_stored(relative: str, min_conf: float) -> dict:
    """On a worker: detect on a photo the web process put in the shared uploads folder (removed
    once read, even if the web process that wrote it is gone)."""
    try:
        data = storage.absolute(relative).read_bytes()
    except OSError:
        return {"success": False, "error": "The photo did not reach the worker (is the uploads folder shared?)."}
    finally:
        storage.delete([relative])
    try:
        decoded = decoded_for_detection(data)
    except ImageRejected as exc:  # damaged: what only decoding finds (the web tier read its header)
        return {"success": False, "error": str(exc), "rejected": True}
    try:
        return {"success": True, "predictions": predictions(decoded, min_conf)}
    except ModelUnavailable as exc:
        return {"success": False, "error": str(DetectionUnavailable(explain(exc, current_app.config)))}
    except DetectorError as exc:
        return {"success": False, "error": str(exc)}
