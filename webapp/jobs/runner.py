"""One analysis, from `pending` to `done` or `failed`."""
import logging
import time
from typing import Optional

import numpy as np
import sqlalchemy as sa
from flask import current_app

from webapp import storage
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus, Detection, utcnow
from webapp.vision.detector import DetectorError, get_detector
from webapp.vision.draw import draw_boxes, encode_jpeg
from webapp.vision.images import ImageRejected, load_image

logger = logging.getLogger(__name__)


def run_analysis(analysis_id: int, image_bgr: Optional[np.ndarray] = None) -> None:
    """Detect, draw and store. Commits; never raises for a failed analysis (it is marked failed)."""
    analysis = db.session.get(Analysis, analysis_id)
    if analysis is None or analysis.status != AnalysisStatus.PENDING:
        return  # deleted meanwhile, or already taken
    analysis.status = AnalysisStatus.RUNNING
    analysis.started_at = utcnow()
    db.session.commit()
    started = time.perf_counter()
    annotated_path = f"{_folder(analysis)}/annotated.jpg"
    try:
        image = image_bgr if image_bgr is not None else _read_original(analysis)
        detector = get_detector(current_app)
        result = detector.detect(
            image, floor=min(detector.settings.floor, analysis.conf), iou=analysis.iou,
            imgsz=analysis.imgsz, classes=_class_ids(detector, analysis.classes),
        )
        shown = [b for b in result.boxes if b.confidence >= analysis.conf]
        storage.save(annotated_path, encode_jpeg(draw_boxes(image, shown)))
        _store_result(analysis, result, annotated_path, time.perf_counter() - started)
        db.session.commit()
    except (DetectorError, ImageRejected) as exc:
        _give_up(analysis_id, annotated_path, str(exc))
    except Exception:
        logger.exception("Analysis %s failed", analysis_id)
        _give_up(analysis_id, annotated_path, "An unexpected error stopped the analysis.")


def _store_result(analysis: Analysis, result, annotated_path: str, seconds: float) -> None:
    if result.boxes:  # one multi-row INSERT; ORM objects cost more than the rest of the step
        db.session.execute(sa.insert(Detection), [
            {"analysis_id": analysis.id, "class_id": b.class_id, "label": b.label,
             "confidence": b.confidence, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}
            for b in result.boxes
        ])
    analysis.annotated_path = annotated_path
    analysis.preprocess_ms = result.timings_ms.get("preprocess")
    analysis.inference_ms = result.timings_ms.get("inference")
    analysis.postprocess_ms = result.timings_ms.get("postprocess")
    analysis.total_ms = seconds * 1000
    analysis.device = result.device
    analysis.status = AnalysisStatus.DONE
    analysis.finished_at = utcnow()


def _give_up(analysis_id: int, annotated_path: str, message: str) -> None:
    db.session.rollback()
    storage.delete([annotated_path])
    analysis = db.session.get(Analysis, analysis_id)
    if analysis is not None:
        fail_analysis(analysis, message)
        db.session.commit()


def fail_analysis(analysis: Analysis, message: str) -> None:
    analysis.status = AnalysisStatus.FAILED
    analysis.error = message
    analysis.finished_at = utcnow()


def _class_ids(detector, names: Optional[list[str]]) -> Optional[list[int]]:
    if not names:
        return None
    ids = {name: class_id for class_id, name in detector.names().items()}
    return [ids[name] for name in names if name in ids]


def _folder(analysis: Analysis) -> str:
    return analysis.original_path.rsplit("/", 1)[0]


def _read_original(analysis: Analysis) -> np.ndarray:
    data = storage.absolute(analysis.original_path).read_bytes()
    max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
    return load_image(data, max_pixels).bgr_array()
