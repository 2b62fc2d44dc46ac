"""What running an analysis does, from `pending` to `done` or `failed`, in four stages: prepare
(claim it, read the photo), detect, render (draw, store the annotated image), store (rows).
`run_analysis` runs them for one analysis; `batching.Stream` runs them in threads, several
analyses at a time. How a run is scheduled (a thread, Celery, inline) is `jobs/`'s business.
Like the services, every function here commits its own work."""
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Optional

import cv2
import numpy as np
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import OperationalError, ProgrammingError

from webapp import detection, jobs, storage
from webapp.analyses import history
from webapp.detection import get_detector
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus, Detection, utcnow
from webapp.vision.detector import Box, DetectionResult, Detector, DetectorError, ModelUnavailable
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


@dataclass
class Job:
    """One analysis on its way through the stages: prepare (claim, read the photo), detect,
    render (draw and store the annotated image), store (rows, one commit per batch). Only plain
    values: each stage runs in its own thread, with its own database session."""
    analysis_id: int
    image: Optional[np.ndarray] = None  # the upright BGR photo, from prepare until render
    key: tuple = ()  # what a batched prediction must share: model, floor, iou, imgsz, class ids
    conf: float = 0.0
    annotated_path: str = ""
    original_path: str = ""
    started: float = 0.0
    result: Optional[DetectionResult] = None
    shown: list[Box] = field(default_factory=list)
    error: Optional[str] = None  # the analysis fails with this message
    failure: Optional[BaseException] = None  # an unexpected exception behind `error`, to log
    skipped: bool = False  # not ours to run (deleted, taken, finished, or given up here)
    batch: tuple[int, int] = (0, 1)  # which prediction it was part of, and that batch's size

    @property
    def active(self) -> bool:
        return not self.skipped and self.error is None


def _stream(app):
    from webapp.analyses.batching import Stream

    return Stream(app)


@jobs.background(stream=_stream)
def run_analysis(analysis_id: int, image_bgr: Optional[np.ndarray] = None, redelivered: bool = False) -> None:
    """Detect, draw and store one analysis, here and now: the batched stream (`batching`) runs
    the same stages, several analyses at a time. Commits; never raises for a failed analysis (it
    is marked failed). `image_bgr` (the decoded upright photo, when the caller has it) saves
    reading it again. Safe to run twice for one analysis (a redelivered Celery task): it runs
    only once claimed."""
    job = prepare(analysis_id, image_bgr, redelivered)
    if job.skipped:
        return
    detect([job])
    render(job)
    store([job])


def prepare(analysis_id: int, image_bgr: Optional[np.ndarray] = None, redelivered: bool = False) -> Job:
    """Claim the analysis and read its photo (unless given). A job that is not ours is `skipped`."""
    job = Job(analysis_id, started=time.perf_counter())
    analysis = _claim(analysis_id, redelivered)
    if analysis is None:
        job.skipped = True  # deleted meanwhile, already taken, or already finished
        return job
    if analysis.attempts > current_app.config["ANALYSIS_MAX_ATTEMPTS"]:
        analysis.fail(GAVE_UP.format(n=analysis.attempts - 1))
        db.session.commit()
        job.skipped = True
        return job
    job.conf = analysis.conf
    job.annotated_path, job.original_path = analysis.annotated_target, analysis.original_path
    wanted, model = analysis.classes, analysis.model
    floor, iou, imgsz = analysis.conf, analysis.iou, analysis.imgsz
    db.session.commit()  # nothing held open while the photo is read
    try:
        detector = get_detector(model=model)
        classes = class_ids(detector, wanted)
        job.key = (model, min(detector.settings.floor, floor), iou, imgsz,
                   tuple(classes) if classes is not None else None)
        job.image = image_bgr if image_bgr is not None else read_original(job.original_path)
    except BaseException as exc:  # noqa: BLE001 - every failure is the analysis's, said in words
        _failed(job, exc)
    return job


def detect(batch: list[Job]) -> None:
    """One batched prediction per group of jobs that share their settings. When a batch fails,
    each of its photos is tried alone, so one bad photo does not fail the others."""
    groups: dict[tuple, list[Job]] = {}
    for job in batch:
        if job.active:
            groups.setdefault(job.key, []).append(job)
    for (model, floor, iou, imgsz, classes), jobs_ in groups.items():
        try:
            results = get_detector(model=model).detect_batch([j.image for j in jobs_], floor=floor, iou=iou,
                                                             imgsz=imgsz, classes=classes)
        except ModelUnavailable as exc:
            for job in jobs_:
                _failed(job, exc)
            continue
        except BaseException as exc:  # noqa: BLE001
            if len(jobs_) == 1:
                _failed(jobs_[0], exc)
                continue
            for job in jobs_:
                detect([job])
            continue
        for job, result in zip(jobs_, results, strict=True):
            job.result = result
            job.shown = [b for b in result.boxes if b.confidence >= job.conf]


def render(job: Job) -> None:
    """Draw the boxes shown at the analysis's threshold and store the annotated JPEG; the
    photo's pixels are let go here, whatever happens."""
    try:
        if job.active:
            storage.save(job.annotated_path, encode_jpeg(draw_boxes(job.image, job.shown)))
    except BaseException as exc:  # noqa: BLE001
        _failed(job, exc)
    finally:
        job.image = None


def store(batch: list[Job]) -> None:
    """Write the finished jobs' results (every detection of the batch in one INSERT, one
    commit), and mark the failed ones failed. A run whose analysis was deleted meanwhile removes
    its annotated file. Falls back to one job at a time when the batch cannot be written."""
    finished = [j for j in batch if j.active]
    if len(finished) > 1:
        try:
            _store_finished(finished)
        except Exception:  # noqa: BLE001 - e.g. one analysis deleted between lock and write (SQLite)
            db.session.rollback()
            logger.warning("Storing a batch of %d failed; storing each alone", len(finished), exc_info=True)
            for job in finished:
                _store_one(job)
    elif finished:
        _store_one(finished[0])
    for job in batch:
        if job.error is not None:
            try:
                _give_up_job(job)
            except Exception:  # noqa: BLE001 - one job's trouble must not leave the others running
                db.session.rollback()
                logger.exception("Could not mark analysis %s failed", job.analysis_id)
    detection.report()  # a Celery worker tells the web tier when its model's state changed


def _store_one(job: Job) -> None:
    try:
        _store_finished([job])
    except Exception as exc:  # noqa: BLE001
        db.session.rollback()
        _failed(job, exc)


def _store_finished(finished: list[Job]) -> None:
    by_id = {j.analysis_id: j for j in finished}
    # the photos first (as deletes lock them), then their runs: which run a photo shows may change
    history.lock_photos(db.session.scalars(sa.select(Analysis.photo_id).where(Analysis.id.in_(by_id))))
    rows = db.session.scalars(sa.select(Analysis).where(Analysis.id.in_(by_id)).with_for_update()).all()
    present = {a.id for a in rows}
    gone = [j for j in finished if j.analysis_id not in present]
    retaken = [a.id for a in rows if a.attempts > 1]
    if retaken:  # runs taken over: whatever an earlier one wrote goes first
        db.session.execute(sa.delete(Detection).where(Detection.analysis_id.in_(retaken)))
    detections = [
        {"analysis_id": a.id, "class_id": b.class_id, "label": b.label, "confidence": b.confidence,
         "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}
        for a in rows for b in by_id[a.id].result.boxes
    ]
    if detections:  # one multi-row INSERT for the batch; ORM objects cost more than the rest
        db.session.execute(sa.insert(Detection), detections)
    now = utcnow()
    for analysis in rows:
        job = by_id[analysis.id]
        model_name = get_detector(model=job.key[0]).settings.model_name
        _store_result(analysis, model_name, job.result, job.annotated_path, time.perf_counter() - job.started, now)
        labels = Counter(b.label for b in job.shown)
        if analysis.shown:
            history.record_labels(analysis, labels, replace=analysis.attempts > 1)
        else:  # a new run of a photo: the gallery shows it from now on
            history.show_run(analysis, labels)
    db.session.commit()
    for job in gone:
        logger.info("Analysis %s was deleted while it ran", job.analysis_id)
        storage.delete([job.annotated_path])


def _failed(job: Job, exc: BaseException) -> None:
    """Remember why the job fails: a message for the person who uploaded; the log gets the rest."""
    if isinstance(exc, ModelUnavailable):
        logger.error("Analysis %s not run: %s", job.analysis_id, exc)
        job.error = UNAVAILABLE
    elif isinstance(exc, (DetectorError, ImageRejected)):
        job.error = str(exc)
    elif isinstance(exc, Exception):
        job.error, job.failure = UNEXPECTED, exc
    else:
        raise exc  # KeyboardInterrupt, SystemExit: not the photo's fault


def _give_up_job(job: Job) -> None:
    if _give_up(job.analysis_id, job.annotated_path, job.error):
        if job.failure is not None:
            logger.error("Analysis %s failed", job.analysis_id, exc_info=job.failure)
    else:
        logger.info("Analysis %s was deleted while it ran", job.analysis_id)


def _claim(analysis_id: int, redelivered: bool = False) -> Optional[Analysis]:
    """Take the analysis for this process with one conditional UPDATE: a pending one, or, for a
    redelivered task, one left running by a worker that is gone. None when it is not ours."""
    analysis = db.session.get(Analysis, analysis_id)
    if analysis is None:
        return None
    previous = analysis.worker
    # The broker redelivers a task only when its worker died or kept it past the visibility
    # timeout: take the analysis over unless its claimant is known to be running on this host.
    takeover = (analysis.status == AnalysisStatus.RUNNING and (redelivered or jobs.redelivered())
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


def _store_result(analysis: Analysis, model_name: str, result: DetectionResult, annotated_path: str,
                  seconds: float, now) -> None:
    analysis.annotated_path = annotated_path
    analysis.model_name = model_name
    analysis.preprocess_ms = result.timings_ms.get("preprocess")
    analysis.inference_ms = result.timings_ms.get("inference")
    analysis.postprocess_ms = result.timings_ms.get("postprocess")
    analysis.total_ms = seconds * 1000
    analysis.device = result.device
    analysis.status = AnalysisStatus.DONE
    analysis.finished_at = now


def _give_up(analysis_id: int, annotated_path: str, message: str) -> bool:
    """Mark the analysis failed, leaving no annotated file; False when it was deleted meanwhile."""
    db.session.rollback()
    storage.delete([annotated_path])
    failed = db.session.execute(  # one UPDATE: a run deleted meanwhile is simply not there
        sa.update(Analysis).where(Analysis.id == analysis_id)
        .values(status=AnalysisStatus.FAILED, error=message, finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(failed)


def read_original(original_path: str) -> np.ndarray:
    """The stored original's pixels. It was validated when it was uploaded and is stored upright
    as JPEG, PNG or WebP, so OpenCV decodes it straight to BGR (twice as fast as Pillow plus a
    conversion); anything OpenCV cannot read goes through the upload's own checks."""
    data = storage.absolute(original_path).read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is not None:
        return image
    return load_image(data, current_app.config["MAX_IMAGE_PIXELS"]).bgr_array()


def recover_interrupted(requeue: bool = False) -> int:
    """The pending/running analyses whose process on this host is gone: queued again in this
    process (`requeue`: a gunicorn worker starting with the thread executor, so neither a restart
    nor gunicorn replacing a worker after `max_requests` loses queued work), or marked failed,
    retryable (`flask recover-interrupted`). Each is taken with one conditional UPDATE, so of
    several processes starting at once one takes it. A photo that keeps killing its process is
    given up after ANALYSIS_MAX_ATTEMPTS runs. Run at a process's start, never implicitly.
    Analyses on the Celery broker are not a process's: Celery hands them to another worker."""
    try:
        active = db.session.scalars(
            sa.select(Analysis).where(
                Analysis.status.in_(AnalysisStatus.active()),
                sa.or_(Analysis.worker.is_(None), ~Analysis.worker.startswith(jobs.CELERY_OWNER)),
            ).order_by(Analysis.id)
        ).all()
    except (OperationalError, ProgrammingError):
        db.session.rollback()
        logger.warning("No analyses table yet: run `flask db upgrade`")
        return 0
    orphans = [a for a in active if not a.worker or not jobs.is_alive(a.worker)]
    if not requeue:
        for analysis in orphans:
            analysis.fail(INTERRUPTED)
        db.session.commit()
        if orphans:
            logger.warning("Marked %d interrupted analyses as failed", len(orphans))
        return len(orphans)
    from webapp.analyses.services import fair_priority

    runner = jobs.get_runner()
    taken: list[tuple[int, int]] = []
    for analysis in orphans:
        previous = analysis.worker
        claimed = db.session.execute(
            sa.update(Analysis).where(
                Analysis.id == analysis.id, Analysis.status.in_(AnalysisStatus.active()),
                Analysis.worker.is_(None) if previous is None else Analysis.worker == previous)
            .values(status=AnalysisStatus.PENDING, worker=runner.queued_by(), started_at=None)
            .execution_options(synchronize_session=False)).rowcount
        if claimed:
            taken.append((analysis.id, analysis.user_id))
    db.session.commit()
    per_user: dict[int, int] = {}
    for analysis_id, user_id in taken:  # oldest first, each user's at a lower priority the more they have
        runner.submit(run_analysis, analysis_id, priority=fair_priority(per_user.get(user_id, 0)))
        per_user[user_id] = per_user.get(user_id, 0) + 1
    if taken:
        logger.warning("Queued again %d analyses a stopped process left unfinished", len(taken))
    return len(taken)


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
