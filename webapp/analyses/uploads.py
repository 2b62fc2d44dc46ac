"""Accepting work: an upload (each file stored as a photo with a pending first run), a re-run
of a photo with other settings, a retry of failed runs; each queued for detection.

Transaction rule (for every service, here and in the other service modules): **a service
function commits its own work** before it returns, and rolls back what it started before it
raises, so a view never commits and never has to remember to. Services raise the errors of
`webapp/errors.py`; the web layer answers them.
"""
import os
import unicodedata
import uuid
from concurrent.futures import Future
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.exc import ObjectDeletedError

from webapp import storage
from webapp.analyses.params import DetectionParams
from webapp.analyses.quotas import QuotaExceeded, check_quota
from webapp.analyses import lookups
from webapp.analyses.lookups import NOT_FOUND
from webapp.analyses.removal import delete_photo, delete_run
from webapp.detection.registry import UnknownClasses, check_size, run_size
from webapp.detection.availability import DetectionUnavailable, check_classes, expected_model_name
from webapp.errors import NotFound, Refused
from webapp.extensions import db
from webapp.jobs.priorities import FairShare
from webapp.jobs.queue import check_queue, queue_run, wait_for_runs
from webapp.jobs.scheduling import QueueUnavailable, get_runner
from webapp.library.counts import count_created
from webapp.library.current_run import lock_photos
from webapp.models import Photo, Run, RunStatus, User, utcnow
from webapp.vision.images import ImageRejected, read_header
from webapp.vision.metadata import Facts

QUEUE_DOWN = "The detection queue cannot be reached right now, so nothing was stored. Please try again later."
NOT_REQUEUED = "The detection queue could not be reached to retry it. Please try again later."
CLASSES_UNCHECKED = "The classes you named cannot be checked until it is back."


class TooManyFiles(Refused):
    """More files in one upload than MAX_FILES_PER_UPLOAD: nothing was stored."""

    kind = Refused.TOO_MANY

    def __init__(self, count: int, limit: int):
        super().__init__(f"Send at most {limit} files per upload (this one had {count}); "
                         f"upload the rest in another request.")


class TooManyRuns(Refused):
    """The photo has MAX_RUNS_PER_PHOTO runs already."""

    kind = Refused.CONFLICT


# What refuses an upload or a run before anything is stored.
REFUSED = (TooManyFiles, TooManyRuns, UnknownClasses, DetectionUnavailable, QueueUnavailable)


@dataclass
class Upload:
    """One file of an upload: the name the client gave it, and its bytes as a seekable stream
    (read a chunk at a time, when its turn comes)."""

    filename: Optional[str]
    stream: BinaryIO


@dataclass
class Rejected:
    """A file of an upload refused, and why: in words, and the kind (a `Refused` kind;
    UNAVAILABLE when the queue could not take it)."""

    filename: str
    reason: str
    kind: str = Refused.INVALID


@dataclass
class Queued:
    """What an upload, a re-run or a retry queued (`accepted`), and what it did not: files
    refused (`rejected`), runs that could not be queued again (`unqueued`: marked failed)."""

    accepted: list[Run] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    unqueued: list[Run] = field(default_factory=list)
    futures: list[Future] = field(default_factory=list)  # of each run queued in this process

    def add(self, run: Run, future: Optional[Future]) -> None:
        """A run queued (with its future when it runs in this process)."""
        self.accepted.append(run)
        if future is not None:
            self.futures.append(future)

    def ids(self) -> list[int]:
        """The accepted runs' ids, read without loading them (one may be deleted by now)."""
        return [sa.inspect(run).identity[0] for run in self.accepted]

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until the accepted runs are finished; False if `timeout` ran out first."""
        return wait_for_runs(self.ids(), self.futures, timeout)


def display_filename(name: Optional[str]) -> str:
    """The client's filename, for display only: base name, printable, at most 255 characters."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    return name.strip()[:255] or "photo"


def _ready_to_queue(params: DetectionParams) -> None:
    """Before anything is stored: the classes are the model's, the size one it runs at, and the
    queue answers."""
    check_size(params.imgsz, params.model)
    try:
        check_classes(params.classes, params.model)
    except DetectionUnavailable as exc:
        raise DetectionUnavailable(exc.diagnosis, CLASSES_UNCHECKED) from exc
    try:
        check_queue()
    except QueueUnavailable as exc:
        raise QueueUnavailable(QUEUE_DOWN) from exc


def upload_files(user: User, files: list[Upload], params: Optional[DetectionParams] = None,
                 reuse_since: Optional[datetime] = None) -> Queued:
    """Accept each uploaded file on its own and queue the accepted ones for detection.
    Before storing anything, raises TooManyFiles for more than MAX_FILES_PER_UPLOAD files,
    UnknownClasses (or DetectionUnavailable) when `params.classes` names classes the model does not
    have, and QueueUnavailable when the broker cannot be reached. A file that cannot be queued
    is rejected, its row and files removed; so is every file past the user's quota. With
    `reuse_since` (the same upload sent again after an attempt that died midway), a file whose
    bytes the user has stored since then is answered with that photo, not stored twice."""
    params = params or DetectionParams()
    limit = current_app.config["MAX_FILES_PER_UPLOAD"]
    if limit and len(files) > limit:
        raise TooManyFiles(len(files), limit)
    _ready_to_queue(params)
    result = Queued()
    share = FairShare(user.id)
    earlier = lookups.current_runs_since(user, reuse_since) if reuse_since else {}
    for file in files:
        name = display_filename(file.filename)
        stored = earlier.get(storage.sha256_of(file.stream)) if earlier else None
        if stored:
            result.add(stored.pop(0), None)
            continue
        try:
            run, future = accept_and_queue(user, name, file.stream, params, share)
        except (ImageRejected, QuotaExceeded) as exc:
            result.rejected.append(Rejected(name, str(exc), getattr(exc, "kind", Refused.INVALID)))
            continue
        except QueueUnavailable:
            result.rejected.append(Rejected(name, QUEUE_DOWN, Refused.UNAVAILABLE))
            continue
        result.add(run, future)
    return result


def accept_and_queue(user: User, filename: Optional[str], source: BinaryIO, params: Optional[DetectionParams],
                     share: FairShare) -> tuple[Run, Optional[Future]]:
    """`accept` the photo, then queue its run at the user's fair share. Raises what `accept`
    raises, and QueueUnavailable, after deleting the photo again: nothing half-stored."""
    run = accept(user, filename, source, params)
    try:
        future = queue_run(run.id, share.next())
    except QueueUnavailable:
        delete_photo(run)
        raise
    share.queued_one()
    return run, future


def accept(user: User, filename: Optional[str], source: BinaryIO,
           params: Optional[DetectionParams] = None) -> Run:
    """Store an uploaded photo exactly as uploaded and commit it with a pending first run, from
    what its header says: no pixel is decoded here (the detection stream decodes it, makes its
    thumbnail and rendition, or fails the run of a damaged file with the reason). The bytes are
    streamed to the photo's folder and hashed on the way. Raises ImageRejected (not an image we
    read, or over the size limits) or QuotaExceeded, with nothing stored; if storing fails, no
    file or row is left behind."""
    totals = db.session.execute(sa.select(User.photos, User.stored_bytes).where(User.id == user.id)).one()
    check_quota(totals.photos + 1, totals.stored_bytes)  # already full: before any work (exact check below)
    public_id = uuid.uuid4().hex
    folder = f"{user.id}/{public_id}"
    written: list[str] = []
    try:
        received = storage.receive(source, folder)
        written.append(received.path)
        with storage.absolute(received.path).open("rb") as file:
            header = read_header(file, current_app.config["MAX_IMAGE_PIXELS"])
        uploaded = utcnow()
        photo = Photo(
            public_id=public_id, user_id=user.id, original_filename=display_filename(filename),
            original_path=f"{folder}/original.{header.extension}", width=header.width, height=header.height,
            sha256=received.sha256, stored_bytes=received.size, created_at=uploaded,
            **described(header.facts, uploaded),
        )
        run = _new_run(photo, user, params or DetectionParams())
        run.public_id = public_id  # the first run shares the photo's id (and its folder's name)
        db.session.add(run)
        check_quota(*count_created(user.id, stored_bytes=photo.stored_bytes))  # locks the user
        storage.move(received.path, photo.original_path)
        written.append(photo.original_path)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        storage.delete(written)
        if not written:  # receive failed midway (a full disk, say): its folder goes too
            storage.delete_folder(folder)
        raise
    return run


def described(facts: Facts, uploaded: datetime) -> dict:
    """A photo's date taken (the camera's, else the upload time in UTC), camera and location."""
    if facts.taken_at is not None:
        taken = {"taken_at": facts.taken_at, "taken_offset": facts.taken_offset, "taken_source": "exif"}
    else:
        taken = {"taken_at": uploaded.astimezone(timezone.utc).replace(tzinfo=None), "taken_offset": 0,
                 "taken_source": "upload"}
    return {**taken, "camera_make": facts.camera_make, "camera_model": facts.camera_model,
            "latitude": facts.latitude, "longitude": facts.longitude}


def _new_run(photo: Photo, owner: User, params: DetectionParams, current: bool = True) -> Run:
    """A pending run of the model on the photo, with these settings (the defaults otherwise)."""
    config = current_app.config
    return Run(
        photo=photo, owner=owner, current=current, created_at=photo.created_at, taken_at=photo.taken_at,
        model_name=expected_model_name(model=params.model),
        model=params.model,
        conf=config["YOLO_CONF"] if params.conf is None else params.conf,
        iou=config["YOLO_IOU"] if params.iou is None else params.iou,
        imgsz=run_size(params.imgsz, params.model),
        classes=list(params.classes) if params.classes else None,
        worker=get_runner().queued_by(),
    )


def rerun(run: Run, params: DetectionParams, reuse_since: Optional[datetime] = None) -> Queued:
    """Queue a new run of the run's photo with these settings; its other runs stay. The gallery
    keeps showing the photo's current run until the new one has finished. Raises TooManyRuns,
    UnknownClasses (or DetectionUnavailable) and QueueUnavailable before storing anything, NotFound
    when the photo was deleted meanwhile. With `reuse_since` (the same request sent again after
    an attempt that died midway), a run of the photo asked for since then is the answer."""
    photo = run.photo
    if reuse_since is not None:
        made = lookups.runs_of_photo_since(photo.id, reuse_since)
        if made is not None:
            result = Queued()
            result.add(made, None)
            return result
    _ready_to_queue(params)
    if not lock_photos([photo.id]):  # counted and added under the photo's lock: no overshoot
        db.session.rollback()
        raise NotFound(NOT_FOUND)
    runs = db.session.scalar(sa.select(sa.func.count()).select_from(Run).where(Run.photo_id == photo.id))
    limit = current_app.config["MAX_RUNS_PER_PHOTO"]
    if limit and runs >= limit:
        db.session.rollback()
        raise TooManyRuns(f"This photo already has {runs} runs (the most is {limit}): delete one first.")
    new = _new_run(photo, run.owner, params, current=False)
    db.session.add(new)
    db.session.commit()
    try:  # read back now: the photo may be deleted from here on, and nothing below reloads it
        db.session.refresh(new)
    except ObjectDeletedError:
        raise NotFound(NOT_FOUND) from None
    result = Queued()
    try:
        future = queue_run(new.id, FairShare(run.user_id, waiting=1).next())
    except QueueUnavailable:
        delete_run(new)
        raise QueueUnavailable(QUEUE_DOWN) from None
    result.add(new, future)
    return result


def retry(runs: list[Run]) -> Queued:
    """Queue failed runs again with the same settings (a failed run stored no detection and no
    annotated image); others are left as they are. Each is claimed by one conditional UPDATE, so
    two retries at once queue it once. The result lists the ones queued as `accepted`. Raises
    QueueUnavailable when there is something to retry and the queue cannot be reached."""
    runner = get_runner()
    ids = [r.id for r in runs if r.is_failed]
    if ids:
        try:
            check_queue()
        except QueueUnavailable as exc:
            raise QueueUnavailable(NOT_REQUEUED) from exc
    claimed = set(db.session.scalars(
        sa.update(Run).where(Run.id.in_(ids), Run.status == RunStatus.FAILED)
        .values(status=RunStatus.PENDING, error=None, annotated_path=None, started_at=None,
                finished_at=None, preprocess_ms=None, inference_ms=None, postprocess_ms=None,
                total_ms=None, device=None, attempts=0, worker=runner.queued_by())
        .returning(Run.id)
    )) if ids else set()
    db.session.commit()
    result = Queued()
    runs = [r for r in runs if r.id in claimed]
    shares = FairShare.of_each([r.user_id for r in runs])  # the claimed runs are pending already
    for run in runs:
        try:
            future = queue_run(run.id, shares[run.user_id].next())
        except QueueUnavailable:
            run.fail(NOT_REQUEUED)
            db.session.commit()
            result.unqueued.append(run)
            continue
        shares[run.user_id].queued_one()
        result.add(run, future)
    return result


def retry_all_failed(user: User) -> Queued:
    """Retry every failed current run of the user (a failed re-run is retried from its photo's page)."""
    return retry(list(db.session.scalars(sa.select(Run).where(
        Run.user_id == user.id, Run.current, Run.status == RunStatus.FAILED))))
