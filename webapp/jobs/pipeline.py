"""What running one run does, from `pending` to `done` or `failed`, in four stages: prepare
(claim it, read and decode the photo; a new photo's thumbnail and rendition), detect, render
(let the photo's pixels go: the annotated images are drawn when first asked for,
`analyses.viewer`), store (rows). Uploads store photos as sent and decode nothing: every pixel
is decoded here.
`run_one` runs them for one run; `stream.Stream` runs them in threads, several runs at a time.
How a run is scheduled is `scheduling`'s business, how it is queued `queue`'s.
Like the services, every function here commits its own work."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
from flask import current_app

from webapp import storage
from webapp.detection.availability import explain
from webapp.detection.registry import UnknownClasses, class_ids, decode_size, fixed_input_size, get_detector
from webapp.extensions import db
from webapp.jobs.processes import process_state
from webapp.jobs.reports import report
from webapp.jobs import news, scheduling
from webapp.library.counts import count_created, record_labels
from webapp.library.current_run import lock_photos, make_current
from webapp.models import Detection, Photo, Run, RunStatus, count_labels, utcnow
from webapp.vision.detector import Box, DetectionResult, DetectorError, ModelUnavailable
from webapp.vision.images import Decoded, Geometry, ImageRejected, decode

if TYPE_CHECKING:  # NumPy is the detecting side's: imported where pixels are made
    import numpy as np

logger = logging.getLogger(__name__)

def unavailable_error(exc: ModelUnavailable) -> str:
    """What a run not run for want of a model says on its card: why, in the words the banner uses."""
    reason = explain(exc, current_app.config).reason
    return f"Not analysed: detection is unavailable ({reason}). It can be retried once it is back."
UNEXPECTED = "An unexpected error stopped the analysis."
GAVE_UP = "Detection stopped its worker {n} times on this photo, so it was given up."
DISABLED = "Not analysed: the account was disabled by the operator (retry it once it is enabled)."


@dataclass
class Work:
    """One run on its way through the stages: prepare (claim, read the photo), detect, render
    (draw and store the annotated image), store (rows, one commit per batch). Only plain values:
    each stage runs in its own thread, with its own database session."""
    run_id: int
    image: Optional[np.ndarray] = None  # the upright BGR photo, from prepare until render
    geometry: Geometry = field(default_factory=Geometry)  # from `image`'s pixels to the photo's (a reduced decode)
    key: tuple = ()  # what a batched prediction must share: model, floor, iou, imgsz, class ids
    conf: float = 0.0
    annotated_path: str = ""
    original_path: str = ""
    started: float = 0.0
    result: Optional[DetectionResult] = None
    drawn: list[Box] = field(default_factory=list)  # the boxes at the run's threshold
    error: Optional[str] = None  # the run fails with this message
    failure: Optional[BaseException] = None  # an unexpected exception behind `error`, to log
    skipped: bool = False  # not ours to run (deleted, taken, finished, or given up here)
    batch: tuple[int, int] = (0, 1)  # which prediction it was part of, and that batch's size
    laps: dict[str, float] = field(default_factory=dict)  # ms per stage, in order (see `lap`)
    _lapped: float = 0.0

    @property
    def active(self) -> bool:
        return not self.skipped and self.error is None

    def lap(self, stage: str) -> None:
        """The time since the previous lap (or `started`) was spent on `stage`."""
        now = time.perf_counter()
        self.laps[stage] = self.laps.get(stage, 0.0) + (now - (self._lapped or self.started)) * 1000
        self._lapped = now

    def timings(self) -> str:
        """Where the run's time went, one line for the log: `Run 7 done in 84 ms: queued 3.0 ms,
        claim 1.9 ms, ...`. `queued` is from the upload's commit to the claim (the broker's hop in
        Celery mode); `to detect` and `to store` are waits between stages; `model` looks up the
        detector (its first load included)."""
        total = sum(ms for stage, ms in self.laps.items() if stage != "queued")
        return f"Run {self.run_id} done in {total:.0f} ms: " + ", ".join(
            f"{stage} {ms:.1f} ms" for stage, ms in self.laps.items())


def run_one(run_id: int, redelivered: bool = False) -> None:
    """Detect, draw and store one run, here and now (the stream runs the same stages, several
    runs at a time). Commits; never raises for a failed run (it is marked failed). Safe to run
    twice for one run (a redelivered Celery task): it runs only once claimed."""
    work = prepare(run_id, redelivered)
    if work.skipped:
        return
    detect([work])
    render(work)
    store([work])


def prepare(run_id: int, redelivered: bool = False) -> Work:
    """Claim the run and decode its photo; a photo decoded for the first time gets its thumbnail
    and rendition (`finish_photo`). A photo that does not decode fails the run with the reason.
    Work that is not ours is `skipped`."""
    work = Work(run_id, started=time.perf_counter())
    run = _claim(run_id, redelivered)
    if run is None:
        work.skipped = True  # deleted meanwhile, already taken, or already finished
        return work
    work.laps["queued"] = max(0.0, (run.started_at - run.created_at).total_seconds() * 1000)
    work.lap("claim")
    given_up = run.attempts > current_app.config["ANALYSIS_MAX_ATTEMPTS"]
    if given_up or run.owner.is_disabled:
        run.fail(GAVE_UP.format(n=run.attempts - 1) if given_up else DISABLED)
        told = [news.Finished(run.user_id, run.id, run.public_id, RunStatus.FAILED.value)]
        db.session.commit()
        news.tell(told)
        work.skipped = True
        return work
    work.conf = run.conf
    work.annotated_path, work.original_path = run.annotated_target, run.photo.original_path
    wanted, model = run.classes, run.model
    floor, iou, imgsz = run.conf, run.iou, run.imgsz
    photo = (run.photo_id, run.user_id, run.photo.folder) if run.photo.thumbnail_path is None else None
    db.session.commit()  # nothing held open while the photo is read
    try:
        imgsz = fixed_input_size(model=model) or imgsz  # what it really runs at (and is recorded)
        data = storage.absolute(work.original_path).read_bytes()
        work.lap("read")
        decoded = decode(data, current_app.config["MAX_IMAGE_PIXELS"], at_least=decode_size(imgsz, model))
        work.image, work.geometry = decoded.pixels, decoded.geometry
        work.lap("decode")
        if photo is not None:
            finish_photo(*photo, decoded, data)
        work.lap("photo")
        detector = get_detector(model=model)
        classes = class_ids(wanted, detector.names())
        work.key = (model, min(detector.settings.floor, floor), iou, imgsz,
                    tuple(classes) if classes is not None else None)
        work.lap("model")
    except BaseException as exc:  # noqa: BLE001 - every failure is the run's, said in words
        work.image = None
        failed(work, exc)
    return work


def finish_photo(photo_id: int, user_id: int, folder: str, decoded: Decoded, data: bytes) -> None:
    """A photo decoded for the first time: its thumbnail, and its rendition where a browser cannot
    show the original as decoded (at its whole size: decoded again whole where detection's decode
    was reduced), written and recorded on it with its upright size and the bytes they add to its
    owner's total. A photo deleted meanwhile keeps nothing; one finished by another run meanwhile
    (same files, same bytes) is left as that run made it."""
    from webapp.vision.pixels import rendition, thumbnail  # NumPy and OpenCV: the detecting side's only

    files = {"thumbnail_path": (f"{folder}/thumbnail.jpg",
                                thumbnail(decoded.pixels, current_app.config["THUMBNAIL_SIZE"]))}
    shown = None
    if not decoded.browser_ready:
        whole = decode(data, current_app.config["MAX_IMAGE_PIXELS"]) if decoded.reduced else decoded
        shown = rendition(whole)
    if shown:
        files["display_path"] = (f"{folder}/display.{shown[1]}", shown[0])
    try:
        for path, data in files.values():
            storage.save(path, data)
        added = sum(len(data) for _, data in files.values())
        if not lock_photos([photo_id]):  # deleted meanwhile (its delete removed what it listed)
            db.session.rollback()
            storage.delete([path for path, _ in files.values()])
            return
        finished = db.session.execute(
            sa.update(Photo).where(Photo.id == photo_id, Photo.thumbnail_path.is_(None))
            .values(width=decoded.width, height=decoded.height, stored_bytes=Photo.stored_bytes + added,
                    **{column: path for column, (path, _) in files.items()})
            .execution_options(synchronize_session=False)).rowcount
        if finished:
            count_created(user_id, delta=0, stored_bytes=added)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def detect(batch: list[Work]) -> None:
    """One batched prediction per group of runs that share their settings. When a batch fails,
    each of its photos is tried alone, so one bad photo does not fail the others."""
    groups: dict[tuple, list[Work]] = {}
    for work in batch:
        if work.active:
            groups.setdefault(work.key, []).append(work)
    for (model, floor, iou, imgsz, classes), group in groups.items():
        for work in group:
            work.lap("to detect")
        try:
            results = get_detector(model=model).detect_batch([w.image for w in group], floor=floor, iou=iou,
                                                             imgsz=imgsz, classes=classes)
        except ModelUnavailable as exc:
            for work in group:
                failed(work, exc)
            continue
        except BaseException as exc:  # noqa: BLE001
            if len(group) == 1:
                failed(group[0], exc)
                continue
            for work in group:
                detect([work])
            continue
        for work, result in zip(group, results, strict=True):
            work.lap("detect")
            result.boxes = work.geometry.place(result.boxes)  # in the photo's own pixels
            work.result = result
            work.drawn = [b for b in result.boxes if b.confidence >= work.conf]


def render(work: Work) -> None:
    """The photo's pixels are let go. Nothing is drawn here: the annotated image (and thumbnail)
    is drawn by whoever first asks for it, then kept (`analyses.viewer.annotated_file`), so
    detection does not encode a full-size JPEG per photo that may never be looked at."""
    work.image = None


def store(batch: list[Work]) -> None:
    """Write the finished runs' results (every detection of the batch in one INSERT, one
    commit), and mark the failed ones failed. A run deleted meanwhile removes its annotated
    file. Falls back to one run at a time when the batch cannot be written."""
    finished = [w for w in batch if w.active]
    for work in finished:
        work.lap("to store")
    if len(finished) > 1:
        try:
            _store_finished(finished)
        except Exception:  # noqa: BLE001 - e.g. one run deleted between lock and write (SQLite)
            db.session.rollback()
            logger.warning("Storing a batch of %d failed; storing each alone", len(finished), exc_info=True)
            for work in finished:
                _store_one(work)
    elif finished:
        _store_one(finished[0])
    for work in batch:
        if work.error is not None:
            try:
                _give_up_work(work)
            except Exception:  # noqa: BLE001 - one run's trouble must not leave the others running
                db.session.rollback()
                logger.exception("Could not mark run %s failed", work.run_id)
    report()  # a Celery worker tells the web tier when its model's state changed


def failed(work: Work, exc: BaseException) -> None:
    """Remember why the run fails: a message for the person who uploaded; the log gets the rest."""
    if isinstance(exc, ModelUnavailable):
        logger.error("Run %s not run: %s", work.run_id, exc)
        work.error = unavailable_error(exc)
    elif isinstance(exc, UnknownClasses):
        work.error = f"This model has no class named {', '.join(exc.unknown)}."
    elif isinstance(exc, (DetectorError, ImageRejected)):
        work.error = str(exc)
    elif isinstance(exc, Exception):
        work.error, work.failure = UNEXPECTED, exc
    else:
        raise exc  # KeyboardInterrupt, SystemExit: not the photo's fault


def _store_one(work: Work) -> None:
    try:
        _store_finished([work])
    except Exception as exc:  # noqa: BLE001
        db.session.rollback()
        failed(work, exc)


def _store_finished(finished: list[Work]) -> None:
    by_id = {w.run_id: w for w in finished}
    # the photos first (as deletes lock them), then their runs: which run is current may change
    lock_photos(db.session.scalars(sa.select(Run.photo_id).where(Run.id.in_(by_id))))
    rows = db.session.scalars(sa.select(Run).where(Run.id.in_(by_id)).with_for_update()).all()
    # in the Trash: the result is stored, and shown once the photo is restored (trash.py)
    trashed = set(db.session.scalars(sa.select(Photo.id).where(
        Photo.id.in_({r.photo_id for r in rows}), Photo.trashed_at.is_not(None))))
    present = {r.id for r in rows}
    gone = [w for w in finished if w.run_id not in present]
    retaken = [r.id for r in rows if r.attempts > 1]
    if retaken:  # runs taken over: whatever an earlier attempt wrote goes first
        db.session.execute(sa.delete(Detection).where(Detection.run_id.in_(retaken)))
    detections = [
        {"run_id": r.id, "class_id": b.class_id, "label": b.label, "confidence": b.confidence,
         "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}
        for r in rows for b in by_id[r.id].result.boxes
    ]
    if detections:  # one multi-row INSERT for the batch; ORM objects cost more than the rest
        db.session.execute(sa.insert(Detection), detections)
    now = utcnow()
    for run in rows:
        work = by_id[run.id]
        _store_result(run, work, now)
        labels = count_labels(work.drawn)
        if run.current:
            record_labels(run, labels, replace=run.attempts > 1)
        elif run.photo_id not in trashed:  # a new run of a photo: the gallery shows it from now on
            make_current(run, labels)
    told = [news.Finished(run.user_id, run.id, run.public_id, RunStatus.DONE.value) for run in rows]
    db.session.commit()
    news.tell(told)
    for run in rows:
        by_id[run.id].lap("store")
        logger.info("%s", by_id[run.id].timings())
    for work in gone:
        logger.info("Run %s was deleted while it ran", work.run_id)
        storage.delete([work.annotated_path])


def _store_result(run: Run, work: Work, now) -> None:
    result = work.result
    run.annotated_path = work.annotated_path
    run.model_name = get_detector(model=work.key[0]).settings.model_name
    run.preprocess_ms = result.timings_ms.get("preprocess")
    run.inference_ms = result.timings_ms.get("inference")
    run.postprocess_ms = result.timings_ms.get("postprocess")
    run.total_ms = (time.perf_counter() - work.started) * 1000
    run.device = result.device
    run.imgsz = work.key[3]  # the size it ran at
    run.status = RunStatus.DONE
    run.finished_at = now


def _give_up_work(work: Work) -> None:
    if _give_up(work.run_id, work.annotated_path, work.error):
        if work.failure is not None:
            logger.error("Run %s failed", work.run_id, exc_info=work.failure)
    else:
        logger.info("Run %s was deleted while it ran", work.run_id)


def _give_up(run_id: int, annotated_path: str, message: str) -> bool:
    """Mark the run failed, leaving no annotated file; False when it was deleted meanwhile."""
    db.session.rollback()
    storage.delete([annotated_path])
    failed_rows = db.session.execute(  # one UPDATE: a run deleted meanwhile is simply not there
        sa.update(Run).where(Run.id == run_id)
        .values(status=RunStatus.FAILED, error=message, finished_at=utcnow())
        .returning(Run.user_id, Run.public_id)
        .execution_options(synchronize_session=False)).all()
    db.session.commit()
    news.tell([news.Finished(user_id, run_id, public_id, RunStatus.FAILED.value)
               for user_id, public_id in failed_rows])
    return bool(failed_rows)


def _claim(run_id: int, redelivered: bool = False) -> Optional[Run]:
    """Take the run for this process with one conditional UPDATE: a pending one, or, for a
    redelivered task, one left running by a worker that is gone. None when it is not ours."""
    run = db.session.get(Run, run_id)
    if run is None:
        return None
    previous = run.worker
    # The broker redelivers a task only when its worker died or kept it past the visibility
    # timeout: take the run over unless its claimant is known to be running on this host.
    takeover = (run.status == RunStatus.RUNNING and (redelivered or scheduling.redelivered())
                and not (previous and process_state(previous) == "alive"))
    if run.status != RunStatus.PENDING and not takeover:
        db.session.rollback()
        return None
    claimed = db.session.execute(
        sa.update(Run)
        .where(Run.id == run_id, Run.status == run.status, Run.worker == previous)
        .values(status=RunStatus.RUNNING, started_at=utcnow(), attempts=Run.attempts + 1,
                worker=scheduling.get_runner().running_as())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        return None
    if takeover:
        logger.warning("Run %s: taking over from %s, which is gone", run_id, previous)
    return db.session.get(Run, run_id)
