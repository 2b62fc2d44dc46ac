"""A DeepStack / CodeProject.AI compatible detection endpoint: `POST /v1/vision/detection`, so
Home Assistant, Blue Iris, Frigate's `deepstack` detector and the `deepstack-python` client can
use this server as it is.

Multipart `image`, optional `min_confidence` (default 0.4) and `api_key` (or the `X-API-Key` /
`Authorization: Bearer spt_…` header): an API key of either scope. The answer is synchronous:
`{"success": true, "predictions": [{"label", "confidence", "x_min", "y_min", "x_max", "y_max"}],
"duration": <ms>}` with integer pixel coordinates of the upright photo, or `{"success": false,
"error": "..."}` with a 4xx/503 status. Nothing is stored, unless the key was created with "keep
detections in my gallery": then each call is an ordinary analysis (and counts towards quotas).

Where detection runs in this process (the thread executor), the photo goes straight to the
model. With Celery workers it goes to them: the photo is written to the shared uploads folder,
a `detect_stored` task runs it and answers through the result backend (Redis), the
web process waits up to DEEPSTACK_TIMEOUT seconds and removes the file (so does the worker once it
has read it; a task not started within the timeout expires; gunicorn workers sweep what a killed
process left). The tasks have a queue of their own, `deepstack`, which every worker also consumes.
The web process never imports torch.
"""
import io
import logging
import math
import time
import uuid
from typing import Optional

import cv2
import numpy as np
from celery import shared_task
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.datastructures import FileStorage

from webapp import detection, jobs, storage
from webapp.errors import ProblemError, deepstack_error
from webapp.vision.images import ImageRejected, load_image, stored_original

logger = logging.getLogger(__name__)
bp = Blueprint("deepstack", __name__)

DEFAULT_MIN_CONFIDENCE = 0.4
TEMP_FOLDER = "deepstack-tmp"
QUEUE = "deepstack"  # its own queue: never counted as analyses (pipeline.requeue_lost), never stale
TEMP_MAX_AGE_SECONDS = 3600


class Failed(Exception):
    def __init__(self, status: int, error: str, headers: Optional[dict] = None):
        super().__init__(error)
        self.status, self.error, self.headers = status, error, headers or {}


@bp.route("/v1/vision/detection", methods=["POST"])
def detection_endpoint():
    started = time.perf_counter()
    try:
        user = _authenticate()
        min_conf = _min_confidence()
        upload = request.files.get("image")
        if upload is None:
            raise Failed(400, "Send the photo in the multipart field `image`.")
        data = upload.read()
        if g.api_key.save_to_gallery:
            predictions = _detect_and_keep(user, upload.filename or "deepstack.jpg", data, min_conf)
        else:
            predictions = _detect(data, min_conf)
    except Failed as exc:
        return deepstack_error(exc.status, exc.error, exc.headers)
    return jsonify({"success": True, "predictions": predictions,
                    "duration": round((time.perf_counter() - started) * 1000)})


def _authenticate():
    from webapp.api.security import api_key_secret, user_from_key

    raw = api_key_secret() or (request.form.get("api_key") or "").strip()
    if not raw:
        raise Failed(401, "An API key is required: send it as the form field api_key (or the X-API-Key header). "
                          "Create one on the API keys page.")
    try:
        return user_from_key(raw, detection=True)
    except ProblemError as exc:
        raise Failed(exc.status, exc.detail, {k: v for k, v in exc.headers.items() if k == "Retry-After"}) from None


def _min_confidence() -> float:
    text = (request.form.get("min_confidence") or "").strip()
    if not text:
        return DEFAULT_MIN_CONFIDENCE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise Failed(400, "min_confidence must be a number from 0 to 1.")
    return value


def prediction(box) -> dict:
    return {"label": box.label, "confidence": round(float(box.confidence), 4),
            "x_min": int(round(box.x1)), "y_min": int(round(box.y1)),
            "x_max": int(round(box.x2)), "y_max": int(round(box.y2))}


def _loaded(data: bytes):
    try:
        return load_image(data, current_app.config["MAX_IMAGE_PIXELS"])
    except ImageRejected as exc:
        raise Failed(400, str(exc)) from None


def _detect(data: bytes, min_conf: float) -> list[dict]:
    loaded = _loaded(data)
    if detection.runs_here():
        from webapp.vision.detector import DetectorError, ModelUnavailable

        try:
            result = detection.get_detector().detect(loaded.bgr_array(), floor=min_conf)
        except ModelUnavailable as exc:
            raise Failed(503, str(detection.NotAvailable(detection.explain(exc, current_app.config))),
                         {"Retry-After": "30"}) from None
        except DetectorError as exc:
            raise Failed(422, str(exc)) from None
        return [prediction(b) for b in result.boxes if b.confidence >= min_conf]
    return _detect_on_a_worker(loaded, data, min_conf)


def _detect_on_a_worker(loaded, data: bytes, min_conf: float) -> list[dict]:
    body, ext = stored_original(loaded, data)
    relative = f"{TEMP_FOLDER}/{uuid.uuid4().hex}.{ext}"
    storage.save(relative, body)
    try:
        timeout = current_app.config["DEEPSTACK_TIMEOUT"]
        pending = detect_stored.apply_async(args=[relative, min_conf], queue=QUEUE, expires=timeout, retry=True,
                                            retry_policy=jobs.PUBLISH_RETRY)
    except Exception:  # noqa: BLE001 - the broker cannot be reached
        storage.delete([relative])
        raise Failed(503, "The detection queue cannot be reached right now. Please try again later.",
                     {"Retry-After": "30"}) from None
    try:
        answer = pending.get(timeout=current_app.config["DEEPSTACK_TIMEOUT"], propagate=False)
    except Exception:  # noqa: BLE001 - celery.exceptions.TimeoutError, or the backend went away
        raise Failed(503, f"No detection worker answered within {current_app.config['DEEPSTACK_TIMEOUT']} s. "
                          "Please try again later.", {"Retry-After": "30"}) from None
    finally:
        storage.delete([relative])
        pending.forget()
    if not isinstance(answer, dict) or not answer.get("success"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise Failed(503, error or "Detection failed on a worker; its log has the details.", {"Retry-After": "30"})
    return answer["predictions"]


@shared_task(name="webapp.deepstack.detect_stored", ignore_result=False, acks_late=False)
def detect_stored(relative: str, min_conf: float) -> dict:
    """On a worker: detect on a photo the web process put in the shared uploads folder."""
    from webapp.vision.detector import DetectorError, ModelUnavailable

    path = storage.absolute(relative)
    try:
        image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    except OSError:
        return {"success": False, "error": "The photo did not reach the worker (is the uploads folder shared?)."}
    finally:
        storage.delete([relative])  # read once: gone, even if the web process that wrote it is not
    if image is None:
        return {"success": False, "error": "The photo could not be read on the worker."}
    try:
        result = detection.get_detector().detect(image, floor=min_conf)
    except ModelUnavailable as exc:
        return {"success": False, "error": str(detection.NotAvailable(detection.explain(exc, current_app.config)))}
    except DetectorError as exc:
        return {"success": False, "error": str(exc)}
    return {"success": True, "predictions": [prediction(b) for b in result.boxes if b.confidence >= min_conf]}


def sweep_temp(max_age: float = TEMP_MAX_AGE_SECONDS) -> int:
    """Remove photos left in the temporary folder by a web process that died while it waited
    (at a gunicorn worker's start). How many were removed."""
    folder = storage.root() / TEMP_FOLDER
    now, removed = time.time(), 0
    for path in folder.glob("*") if folder.is_dir() else ():
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _detect_and_keep(user, filename: str, data: bytes, min_conf: float) -> list[dict]:
    """The key keeps detections: an ordinary analysis, waited for, its boxes answered."""
    from webapp.analyses import services
    from webapp.extensions import db
    from webapp.models import Analysis, AnalysisStatus

    _loaded(data)  # refused before anything is stored
    try:
        result = services.upload_files(user, [FileStorage(io.BytesIO(data), filename=filename)],
                                       services.DetectionParams(conf=min_conf))
    except jobs.QueueUnavailable:
        raise Failed(503, services.QUEUE_DOWN, {"Retry-After": "30"}) from None
    if not result.accepted:
        raise Failed(400 if result.rejected else 503, result.rejected[0].reason if result.rejected else "Not stored.")
    if not result.wait(current_app.config["DEEPSTACK_TIMEOUT"]):
        raise Failed(503, "The photo is kept in your gallery, but its detection did not finish in time.",
                     {"Retry-After": "30"})
    db.session.rollback()
    analysis = db.session.get(Analysis, result.accepted[0].id)
    if analysis is None or analysis.status != AnalysisStatus.DONE:
        raise Failed(503, (analysis.error if analysis is not None else None) or "Detection failed.")
    return [prediction(d) for d in analysis.visible_detections(min_conf)]
