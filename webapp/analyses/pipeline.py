"""What running an analysis does, from `pending` to `done` or `failed`: read the photo, detect,
draw, store. How a run is scheduled (a thread, inline) is `jobs/`'s business, not this module's.
Like the services, every function here commits its own work."""
import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Optional

import numpy as np
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import OperationalError, ProgrammingError

from webapp import detection, jobs, storage
from webapp.analyses import history
from webapp.detection import get_detector
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus, Detection, utcnow
from webapp.vision.detector import Detector, DetectorError, ModelUnavailable
from webapp.vision.draw import draw_boxes, encode_jpeg
from webapp.vision.images import ImageRejected, load_image

logger = logging.getLogger(__name__)

INTERRUPTED = "Interrupted by a server restart before it finished. It can be retried."
UNAVAILABLE = "Not analysed: detection was unavailable. It can be retried once it is back."
UNEXPECTED = "An unexpected error stopped the analysis."
GAVE_UP = "Detection stopped its worker {n} times on this photo, so it was given up."


class UnknownClasses(DetectorError):
    """The analysis asks for class names the model does not have."""

    def __init__(self, unknown: list[str]):
        super().__init__(f"This model has no class named {', '.join(unknown)}.")
        self.unknown = unknown


@jobs.background
def run_analysis(analysis_id: int, image_bgr: Optional[np.ndarray] = None) -> None:
    """Detect, draw and store. Commits; never raises for a failed analysis (it is marked failed).
    `image_bgr` (the decoded upright photo, when the caller has it) saves reading it again.
    Safe to run twice for one analysis (a redelivered Celery task): it runs only once claimed."""
    analysis = _claim(analysis_id)
    if analysis is None:
        return  # deleted meanwhile, already taken, or already finished
    if analysis.attempts > current_app.config["ANALYSIS_MAX_ATTEMPTS"]:
        analysis.fail(GAVE_UP.format(n=analysis.attempts - 1))
        db.session.commit()
        return
    started = time.perf_counter()
    annotated_path = f"{analysis.folder}/annotated.jpg"
    try:
        detector = get_detector()
        classes = class_ids(detector, analysis.classes)
        image = image_bgr if image_bgr is not None else _read_original(analysis)
        result = detector.detect(
            image, floor=min(detector.settings.floor, analysis.conf), iou=analysis.iou,
            imgsz=analysis.imgsz, classes=classes,
        )
        shown = [b for b in result.boxes if b.confidence >= analysis.conf]
        storage.save(annotated_path, encode_jpeg(draw_boxes(image, shown)))
        _store_result(analysis, detector, result, annotated_path, time.perf_counter() - started)
        history.record_labels(analysis, Counter(b.label for b in shown))
        db.session.commit()
    except ModelUnavailable as exc:
        logger.error("Analysis %s not run: %s", analysis_id, exc)
        _give_up(analysis_id, annotated_path, UNAVAILABLE)
    except (DetectorError, ImageRejected) as exc:
        _give_up(analysis_id, annotated_path, str(exc))
    except Exception:
        if _give_up(analysis_id, annotated_path, UNEXPECTED):
            logger.exception("Analysis %s failed", analysis_id)
        else:
            logger.info("Analysis %s was deleted while it ran", analysis_id)
    finally:
        detection.report()  # a Celery worker tells the web tier when its model's state changed


def _claim(analysis_id: int) -> Optional[Analysis]:
    """Take the analysis for this process with one conditional UPDATE: a pending one, or, for a
    redelivered task, one left running by a worker that is gone. None when it is not ours."""
    analysis = db.session.get(Analysis, analysis_id)
    if analysis is None:
        return None
    previous = analysis.worker
    # The broker redelivers a task only when its worker died or kept it past the visibility
    # timeout: take the analysis over unless its claimant is known to be running on this host.
    takeover = (analysis.status == AnalysisStatus.RUNNING and jobs.redelivered()
                and not (previous and jobs.process_state(previous) == "alive"))
    if analysis.status != AnalysisStatus.PENDING and not takeover:
        db.session.rollback()
        return None
    claimed = db.session.execute(
        sa.update(Analysis)
        .where(Analysis.id == analysis_id, Analysis.status == analysis.status, Analysis.worker == previous)
        .values(status=AnalysisStatus.RUNNING, started_at=utcnow(), attempts=Analysis.attempts + 1,
                worker=jobs.get_runner().running_as())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        return None
    if takeover:
        logger.warning("Analysis %s: taking over from %s, which is gone", analysis_id, previous)
    return db.session.get(Analysis, analysis_id)

def class_ids(detector: Detector, names: Optional[list[str]]) -> Optional[list[int]]:
    """The model's ids of these class names; None (every class) when no names are given.
    Raises UnknownClasses rather than dropping a name, so a list never turns into "every class"."""
    if not names:
        return None
    ids = {name: class_id for class_id, name in detector.names().items()}
    unknown = [name for name in names if name not in ids]
    if unknown:
        raise UnknownClasses(unknown)
    return [ids[name] for name in names]


def _store_result(analysis: Analysis, detector: Detector, result, annotated_path: str, seconds: float) -> None:
    if analysis.attempts > 1:  # a run taken over: whatever an earlier one wrote goes first
        db.session.execute(sa.delete(Detection).where(Detection.analysis_id == analysis.id))
    if result.boxes:  # one multi-row INSERT; ORM objects cost more than the rest of the step
        db.session.execute(sa.insert(Detection), [
            {"analysis_id": analysis.id, "class_id": b.class_id, "label": b.label,
             "confidence": b.confidence, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}
            for b in result.boxes
        ])
    analysis.annotated_path = annotated_path
    analysis.model_name = detector.settings.model_name
    analysis.preprocess_ms = result.timings_ms.get("preprocess")
    analysis.inference_ms = result.timings_ms.get("inference")
    analysis.postprocess_ms = result.timings_ms.get("postprocess")
    analysis.total_ms = seconds * 1000
    analysis.device = result.device
    analysis.status = AnalysisStatus.DONE
    analysis.finished_at = utcnow()


def _give_up(analysis_id: int, annotated_path: str, message: str) -> bool:
    """Mark the analysis failed, leaving no annotated file; False when it was deleted meanwhile."""
    db.session.rollback()
    storage.delete([annotated_path])
    analysis = db.session.get(Analysis, analysis_id)
    if analysis is None:
        return False
    analysis.fail(message)
    db.session.commit()
    return True


def _read_original(analysis: Analysis) -> np.ndarray:
    data = storage.absolute(analysis.original_path).read_bytes()
    return load_image(data, current_app.config["MAX_IMAGE_PIXELS"]).bgr_array()


def recover_interrupted() -> int:
    """Mark as failed the pending/running analyses whose process on this host is gone. Run at a
    process's start (`flask recover-interrupted`, gunicorn's worker start), never implicitly.
    Analyses on the Celery broker are not a process's: Celery hands them to another worker."""
    try:
        active = db.session.scalars(
            sa.select(Analysis).where(
                Analysis.status.in_(AnalysisStatus.active()),
                sa.or_(Analysis.worker.is_(None), ~Analysis.worker.startswith(jobs.CELERY_OWNER)),
            )
        ).all()
    except (OperationalError, ProgrammingError):
        db.session.rollback()
        logger.warning("No analyses table yet: run `flask db upgrade`")
        return 0
    orphans = [a for a in active if not a.worker or not jobs.is_alive(a.worker)]
    for analysis in orphans:
        analysis.fail(INTERRUPTED)
    db.session.commit()
    if orphans:
        logger.warning("Marked %d interrupted analyses as failed", len(orphans))
    return len(orphans)


def requeue_lost() -> int:
    """With Celery, at a worker's start: queue again what no message will bring back. An analysis
    left running by a dead process of this host, or by another host's past the visibility
    timeout, goes back to pending; and when the broker holds fewer tasks than there are pending
    analyses (a message was lost: Redis without persistence, a web process killed between commit
    and publish), every pending one is queued again. Claims are conditional, so a duplicate
    message finds its analysis taken and does nothing."""
    runner = jobs.get_runner()
    expired = utcnow() - timedelta(seconds=current_app.config["CELERY_VISIBILITY_TIMEOUT"] + 60)
    running = db.session.scalars(sa.select(Analysis).where(
        Analysis.status == AnalysisStatus.RUNNING, Analysis.worker.startswith(f"{jobs.CELERY_OWNER}:"))).all()
    stale = [a for a in running if jobs.process_state(a.worker) == "dead"
             or (jobs.process_state(a.worker) == "unknown" and a.started_at and a.started_at < expired)]
    for analysis in stale:
        analysis.status, analysis.worker = AnalysisStatus.PENDING, jobs.CELERY_OWNER
    db.session.commit()
    pending = db.session.scalars(sa.select(Analysis.id).where(
        Analysis.status == AnalysisStatus.PENDING, Analysis.worker == jobs.CELERY_OWNER)).all()
    held = runner.queued_count() or 0
    lost = set(pending) if held < len(pending) + len(running) - len(stale) else {a.id for a in stale}
    for analysis_id in sorted(lost):
        runner.submit(run_analysis, analysis_id)
    if lost:
        logger.warning("Queued %d analyses again that no task on the broker would have run", len(lost))
    return len(lost)
