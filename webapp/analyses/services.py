"""Analyses: accepting an upload, retrying, deleting, the gallery's queries, sending images.
Shared by the pages and the API.

Transaction rule (for every service, here and in `auth/services.py`, `auth/tokens.py` and
`analyses/pipeline.py`): **a service function commits its own work** before it returns, and
rolls back what it started before it raises, so a view never commits and never has to
remember to. A view calls services and turns their exceptions into a form error, a flash or a
JSON 4xx.
"""
import hashlib
import os
import re
import time
import unicodedata
import uuid
from collections import Counter
from urllib.parse import quote
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Optional

import sqlalchemy as sa
from flask import Response, abort, current_app, request, send_file
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.exc import ObjectDeletedError
from werkzeug.exceptions import NotFound

from webapp import detection, jobs, storage
from webapp.analyses import history, pipeline
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus, Photo, User, utcnow
from webapp.vision.detector import Box
from webapp.vision.draw import class_color_hex, draw_boxes, encode_jpeg
from webapp.vision.images import ImageRejected, LoadedImage, load_image, stored_original, thumbnail

VARIANTS = ("original", "annotated", "thumbnail")
PUBLIC_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as accept_upload makes them
NOT_FOUND = "This photo does not exist, or it was deleted."
RUN_NOT_FOUND = "This run does not exist, or it was deleted."
# How often `?wait=true` looks at rows that Celery workers finish: soon at first (a photo takes
# tens of milliseconds), then less and less often, up to the longest interval.
WAIT_POLL_SECONDS = (0.01, 0.25)


@dataclass
class Rejected:
    filename: str
    reason: str


@dataclass(frozen=True)
class DetectionParams:
    """Per-upload detection settings; None means the configured default."""

    conf: Optional[float] = None
    iou: Optional[float] = None
    imgsz: Optional[int] = None
    classes: Optional[tuple[str, ...]] = None
    model: Optional[str] = None  # a YOLO_MODELS name (detection.check_model); None: the default


class TooManyRuns(ValueError):
    """The photo has MAX_RUNS_PER_PHOTO runs already."""


class OnlyRun(ValueError):
    """A photo's only run cannot be deleted on its own."""


class UnknownClasses(ValueError):
    """Some requested class names are not classes of the model."""

    def __init__(self, unknown: list[str], known: list[str]):
        super().__init__(f"Unknown class names: {', '.join(unknown)}. Known classes: {', '.join(known)}.")
        self.unknown, self.known = unknown, known


QUEUE_DOWN = "The detection queue cannot be reached right now, so nothing was stored. Please try again later."
NOT_REQUEUED = "The detection queue could not be reached to retry it. Please try again later."


def refusal(exc: Exception) -> tuple[int, str]:
    """The HTTP status and the user's words for what refuses an upload or a run before anything
    is stored: one of REFUSED."""
    if isinstance(exc, detection.NotAvailable):
        return 503, f"{exc} The classes you named cannot be checked until it is back."
    if isinstance(exc, jobs.QueueUnavailable):
        return 503, QUEUE_DOWN
    return (413 if isinstance(exc, TooManyFiles) else 409 if isinstance(exc, TooManyRuns) else 422), str(exc)


# A user's photos are queued at a lower priority the more of theirs are queued already: the first
# few at the top (0), then 3, 6, 9 (jobs.PRIORITIES). Another user's first photos therefore go
# ahead of the rest of a long backlog, in the thread executor's stream and on the Celery broker
# alike, and nothing is held back while no one else is waiting.
FAIR_SHARE_STEPS = ((8, 0), (32, 3), (128, 6))  # (queued below this many, priority)


class TooManyFiles(ValueError):
    """More files in one upload than MAX_FILES_PER_UPLOAD: nothing was stored."""

    def __init__(self, count: int, limit: int):
        super().__init__(f"Send at most {limit} files per upload (this one had {count}); "
                         f"upload the rest in another request.")


# What upload_files and rerun raise before storing anything (refusal() says it to the user).
REFUSED = (TooManyFiles, TooManyRuns, UnknownClasses, detection.NotAvailable, jobs.QueueUnavailable)


class QuotaExceeded(ValueError):
    """The photo would take the user past QUOTA_PHOTOS or QUOTA_BYTES: nothing was stored."""


def fair_priority(queued: int) -> int:
    """The priority of a user's next photo when `queued` of theirs are pending or running."""
    for below, priority in FAIR_SHARE_STEPS:
        if queued < below:
            return priority
    return jobs.PRIORITIES[-1]


def queued_count(user: User) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Analysis).where(
        Analysis.user_id == user.id, Analysis.status.in_(AnalysisStatus.active()))) or 0


def quota_message(config, photos: int, stored: int) -> Optional[str]:
    """Why a user with these totals is over a quota, or None."""
    most_photos, most_bytes = config["QUOTA_PHOTOS"], config["QUOTA_BYTES"]
    if most_photos and photos > most_photos:
        return (f"Your library is full: it may hold {most_photos:,} photos. "
                "Delete some to make room for new ones.")
    if most_bytes and stored > most_bytes:
        return (f"Your storage is full: your photos may take {human_bytes(most_bytes)}. "
                "Delete some to make room for new ones.")
    return None


@dataclass(frozen=True)
class Usage:
    """What a user keeps, against the quotas (0: no limit)."""

    photos: int
    stored_bytes: int
    quota_photos: int
    quota_bytes: int
    files_per_upload: int

    def share(self, used: int, most: int) -> Optional[float]:
        return min(1.0, used / most) if most else None


def usage(user: User) -> Usage:
    config = current_app.config
    photos, stored = db.session.execute(sa.select(User.photos, User.stored_bytes).where(User.id == user.id)).one()
    return Usage(photos, stored, config["QUOTA_PHOTOS"], config["QUOTA_BYTES"], config["MAX_FILES_PER_UPLOAD"])


def human_bytes(size: float) -> str:
    """1,234,567 → "1.2 MB" (decimal units, as disks are sold)."""
    if size < 1000:
        return f"{size:,.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:,.1f} {unit}".replace(".0 ", " ")


def check_classes(names: Optional[tuple[str, ...]], model: Optional[str] = None) -> None:
    """Raise UnknownClasses for names the model does not know. Needs the model's classes, so it
    may raise detection.NotAvailable. (A model no Celery worker has loaded yet is not checked
    here: its worker fails the analysis with the same message.)"""
    if not names:
        return
    known = detection.class_names(model=model)
    if not known:
        return
    unknown = [n for n in names if n not in known.values()]
    if unknown:
        raise UnknownClasses(unknown, list(known.values()))


def display_filename(name: Optional[str]) -> str:
    """The client's filename, for display only: base name, printable, at most 255 characters."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    return name.strip()[:255] or "photo"


def accept_upload(
    user: User, filename: Optional[str], data: bytes, params: DetectionParams = DetectionParams()
) -> tuple[Analysis, LoadedImage]:
    """Validate an uploaded image, store it with a thumbnail and commit a `pending` Analysis.

    Raises ImageRejected or QuotaExceeded (nothing stored). If storing fails, no file or row is
    left behind.
    """
    config = current_app.config
    usage = db.session.execute(sa.select(User.photos, User.stored_bytes).where(User.id == user.id)).one()
    if message := quota_message(config, usage.photos + 1, usage.stored_bytes):
        raise QuotaExceeded(message)  # already full: before any work (the exact check is below)
    loaded = load_image(data, config["MAX_IMAGE_PIXELS"])
    public_id = uuid.uuid4().hex
    folder = f"{user.id}/{public_id}"
    original_bytes, ext = stored_original(loaded, data)
    thumbnail_bytes = thumbnail(loaded.bgr_array(), config["THUMBNAIL_SIZE"])
    photo = Photo(
        public_id=public_id,
        user_id=user.id,
        original_filename=display_filename(filename),
        original_path=f"{folder}/original.{ext}",
        thumbnail_path=f"{folder}/thumbnail.jpg",
        width=loaded.width,
        height=loaded.height,
        sha256=hashlib.sha256(data).hexdigest(),
        stored_bytes=len(original_bytes) + len(thumbnail_bytes),
        created_at=utcnow(),
    )
    analysis = _new_run(photo, user, params)
    analysis.public_id = public_id  # the first run shares the photo's id (and its folder's name)
    try:
        db.session.add(analysis)
        photos, stored = history.count_created(user.id, stored_bytes=photo.stored_bytes)  # locks the user
        if message := quota_message(config, photos, stored):
            raise QuotaExceeded(message)
        storage.save(photo.original_path, original_bytes)
        storage.save(photo.thumbnail_path, thumbnail_bytes)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        storage.delete([photo.original_path, photo.thumbnail_path])
        raise
    return analysis, loaded


def _new_run(photo: Photo, owner: User, params: DetectionParams, shown: bool = True) -> Analysis:
    """A pending run of the model on the photo, with these parameters (the defaults otherwise)."""
    config = current_app.config
    return Analysis(
        photo=photo, owner=owner, shown=shown, created_at=photo.created_at,
        model_name=detection.expected_model_name(model=params.model),
        model=params.model,
        conf=config["YOLO_CONF"] if params.conf is None else params.conf,
        iou=config["YOLO_IOU"] if params.iou is None else params.iou,
        imgsz=params.imgsz or config["YOLO_IMGSZ"],
        classes=list(params.classes) if params.classes else None,
        worker=jobs.get_runner().queued_by(),
    )


def rerun(analysis: Analysis, params: DetectionParams) -> "UploadResult":
    """Queue a new run of the analysis's photo with these parameters; its other runs stay. The
    gallery keeps showing the photo's current run until the new one has finished. Raises
    TooManyRuns, UnknownClasses (or detection.NotAvailable) and jobs.QueueUnavailable before
    storing anything."""
    photo = analysis.photo
    check_classes(params.classes, params.model)
    jobs.get_runner().check_broker()
    if not history.lock_photos([photo.id]):  # counted and added under the photo's lock: no overshoot
        db.session.rollback()
        abort(404, description=NOT_FOUND)
    runs = db.session.scalar(sa.select(sa.func.count()).select_from(Analysis).where(Analysis.photo_id == photo.id))
    limit = current_app.config["MAX_RUNS_PER_PHOTO"]
    if limit and runs >= limit:
        db.session.rollback()
        raise TooManyRuns(f"This photo already has {runs} runs (the most is {limit}): delete one first.")
    run = _new_run(photo, analysis.owner, params, shown=False)
    db.session.add(run)
    db.session.commit()
    try:  # read back now: the photo may be deleted from here on, and nothing below reloads it
        db.session.refresh(run)
    except ObjectDeletedError:
        abort(404, description=NOT_FOUND)
    result = UploadResult()
    try:
        _queue(run, None, result.futures, fair_priority(queued_count(analysis.owner) - 1))
    except jobs.QueueUnavailable:
        delete_run(run)
        raise
    result.accepted.append(run)
    return result


@dataclass
class UploadResult:
    accepted: list[Analysis] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    futures: list[Future] = field(default_factory=list)  # of each queued analysis (none when inline)

    def ids(self) -> list[int]:
        """The accepted analyses' ids, read without loading them (one may be deleted by now)."""
        return [sa.inspect(a).identity[0] for a in self.accepted]

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until the accepted analyses are finished; False if `timeout` ran out first.
        In-process runs are waited for directly; Celery's by watching their rows."""
        if jobs.get_runner().in_process:
            _, not_done = wait(self.futures, timeout=timeout)
            return not not_done
        ids = self.ids()
        deadline = time.monotonic() + (timeout or 0)
        interval, longest = WAIT_POLL_SECONDS
        while True:
            db.session.rollback()  # a new transaction, so the workers' commits are seen
            active = db.session.scalar(sa.select(sa.func.count()).select_from(Analysis).where(
                Analysis.id.in_(ids), Analysis.status.in_(AnalysisStatus.active())))
            if not active or time.monotonic() >= deadline:
                return not active
            time.sleep(interval)
            interval = min(interval * 1.5, longest)


def upload_files(user: User, files, params: DetectionParams = DetectionParams()) -> UploadResult:
    """Accept each uploaded file on its own and queue the accepted ones for detection.
    Before storing anything, raises UnknownClasses (or detection.NotAvailable) when
    `params.classes` names classes the model does not have, and jobs.QueueUnavailable when the
    broker cannot be reached, and TooManyFiles for more than MAX_FILES_PER_UPLOAD files. A file
    that cannot be queued is rejected, its row and files removed; so is every file past the
    user's quota."""
    limit = current_app.config["MAX_FILES_PER_UPLOAD"]
    if limit and len(files) > limit:
        raise TooManyFiles(len(files), limit)
    check_classes(params.classes, params.model)
    jobs.get_runner().check_broker()
    result = UploadResult()
    queued = queued_count(user)
    for file in files:
        name = display_filename(file.filename)
        try:
            analysis, loaded = accept_upload(user, name, file.read(), params)
        except (ImageRejected, QuotaExceeded) as exc:
            result.rejected.append(Rejected(name, str(exc)))
            continue
        try:  # an in-process run gets the decoded photo; a Celery task only the id
            _queue(analysis, loaded.bgr_array() if jobs.get_runner().in_process else None, result.futures,
                   fair_priority(queued))
        except jobs.QueueUnavailable:
            delete_analysis(analysis)
            result.rejected.append(Rejected(name, QUEUE_DOWN))
            continue
        # counted again (not just one more) while it still decides the priority, so uploads at
        # once from one user see each other's photos
        queued = queued_count(user) if queued < FAIR_SHARE_STEPS[-1][0] else queued + 1
        result.accepted.append(analysis)
    return result


def _queue(analysis: Analysis, image_bgr, futures: list[Future], priority: int = 0) -> None:
    """Queue the analysis: only its id travels; an in-process run also gets the decoded image."""
    local = {"image_bgr": image_bgr} if image_bgr is not None else None
    future = jobs.get_runner().submit(pipeline.run_analysis, analysis.id, local=local, priority=priority)
    if future is not None:
        futures.append(future)


def retry(analyses: list[Analysis]) -> UploadResult:
    """Queue failed analyses again with the same parameters (a failed run stored no detection
    and no annotated image); others are left as they are. Each is claimed by one conditional
    UPDATE, so two retries at once queue it once. The result lists the ones queued as `accepted`."""
    runner = jobs.get_runner()
    ids = [a.id for a in analyses if a.is_failed]
    if ids:
        runner.check_broker()
    claimed = set(db.session.scalars(
        sa.update(Analysis).where(Analysis.id.in_(ids), Analysis.status == AnalysisStatus.FAILED)
        .values(status=AnalysisStatus.PENDING, error=None, annotated_path=None, started_at=None,
                finished_at=None, preprocess_ms=None, inference_ms=None, postprocess_ms=None,
                total_ms=None, device=None, attempts=0, worker=runner.queued_by())
        .returning(Analysis.id)
    )) if ids else set()
    db.session.commit()
    result = UploadResult()
    queued: dict[int, int] = {}  # per owner: pending or running, for the fair share
    for analysis in (a for a in analyses if a.id in claimed):
        if analysis.user_id not in queued:
            queued[analysis.user_id] = queued_count(analysis.owner) - sum(
                1 for a in analyses if a.id in claimed and a.user_id == analysis.user_id)
        try:
            _queue(analysis, None, result.futures, fair_priority(queued[analysis.user_id]))
        except jobs.QueueUnavailable:
            analysis.fail(NOT_REQUEUED)
            db.session.commit()
            continue
        queued[analysis.user_id] += 1
        result.accepted.append(analysis)
    return result


def failed_analyses(user: User) -> list[Analysis]:
    """The runs the gallery shows that failed (a failed re-run is retried from its photo's page)."""
    return list(db.session.scalars(sa.select(Analysis).where(
        Analysis.user_id == user.id, Analysis.shown, Analysis.status == AnalysisStatus.FAILED)))


def count_failed(user: User) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Analysis).where(
        Analysis.user_id == user.id, Analysis.shown, Analysis.status == AnalysisStatus.FAILED)) or 0


def delete_analysis(analysis: Analysis) -> None:
    """Delete the analysis's photo with every run (their detections go with them) and then its
    folder, with whatever a run still going on has written there (a run that finishes later
    finds no row and removes its file). The photo's row is locked first, so of two deletes at
    once the second finds nothing: 404, and the kept counts go down once."""
    photo_id, user_id = analysis.photo_id, analysis.user_id  # its own columns: the photo may be gone
    _let_go(analysis)
    if not history.lock_photos([photo_id]):
        db.session.rollback()
        abort(404, description=NOT_FOUND)
    folder = db.session.scalar(sa.select(Photo).where(Photo.id == photo_id)
                               .execution_options(populate_existing=True)).folder
    # its runs too: this waits for a run still committing its labels, so they are counted out
    db.session.execute(sa.select(Analysis.id).where(Analysis.photo_id == photo_id).order_by(Analysis.id)
                       .with_for_update())
    for shown in db.session.scalars(sa.select(Analysis).where(Analysis.photo_id == photo_id, Analysis.shown)):
        history.forget_labels(shown)
    stored = db.session.scalar(sa.delete(Photo).where(Photo.id == photo_id).returning(Photo.stored_bytes))
    if stored is None:  # SQLite: another delete won between the two statements
        db.session.rollback()
        abort(404, description=NOT_FOUND)
    history.count_created(user_id, -1, -stored)
    db.session.commit()
    storage.delete_folder(folder)


def _let_go(analysis: Analysis) -> None:
    """Take the analysis, its photo and the photo's runs out of the session: they are read again
    (or deleted) under the photo's lock, and nothing stale of them is ever flushed."""
    photo = analysis.__dict__.get("photo")
    for obj in [analysis, photo, *(photo.__dict__.get("runs") or [] if photo is not None else [])]:
        if obj is not None and obj in db.session:
            db.session.expunge(obj)


def delete_run(run: Analysis) -> None:
    """Delete one run of a photo (its detections, labels and annotated image), not the photo:
    when the gallery showed it, it shows the photo's latest finished run instead. Raises
    OnlyRun for a photo's only run (delete the photo instead); 404 when it is gone already."""
    photo_id, run_id = run.photo_id, run.id  # its own columns: the photo may be gone
    _let_go(run)
    if not history.lock_photos([photo_id]):
        db.session.rollback()
        abort(404, description=NOT_FOUND)
    run = db.session.scalar(sa.select(Analysis).where(Analysis.id == run_id).with_for_update())
    if run is None:
        db.session.rollback()
        abort(404, description=NOT_FOUND)
    annotated = run.annotated_path or run.annotated_target
    others = [r for r in run.photo.runs if r.id != run.id]
    if not others:
        db.session.rollback()
        raise OnlyRun("This is the photo's only run: delete the photo instead.")
    if run.shown:
        history.forget_labels(run)
        history.show_run(history.latest_finished(others) or others[0])
    db.session.delete(run)
    db.session.commit()
    storage.delete([annotated])


def get_owned_analysis(user: User, public_id: str, with_detections: bool = False, exact: bool = False) -> Analysis:
    """The user's analysis with this public id. Anyone else's, or none, answers 404 (a page or a
    problem document, by who asks), exactly alike; so does anything not shaped like a public id
    (32 lower-case hex digits), which never reaches the database (PostgreSQL refuses NUL).
    A photo's own id (`photo.id`: its first run's) still finds the photo once that run has been
    deleted: the run the gallery shows for it; not with `exact`, for what acts on one run (delete
    it, retry it, share it), which must never act on another."""
    if not PUBLIC_ID.fullmatch(public_id):
        abort(404, description=NOT_FOUND)
    stmt = sa.select(Analysis).where(Analysis.user_id == user.id).options(
        joinedload(Analysis.photo, innerjoin=True))  # in the same statement: never a run without its photo
    if with_detections:
        stmt = stmt.options(selectinload(Analysis.detections))
    found = db.session.scalar(stmt.where(Analysis.public_id == public_id))
    if found is None and not exact:
        found = db.session.scalar(stmt.where(Analysis.shown, Analysis.photo_id == sa.select(Photo.id).where(
            Photo.public_id == public_id).scalar_subquery()))
    if found is None:
        abort(404, description=RUN_NOT_FOUND if exact else NOT_FOUND)
    return found


def viewer(analysis: Analysis) -> dict:
    """What the box viewer (`_viewer.html`, the detail and shared pages) is drawn from: each
    detection with its exact confidence (not the 4 decimals of as_dict, so the page's slider
    counts the boxes exactly as the server draws them) and index, the labels, their colours and
    how many boxes of each the run shows at its own threshold."""
    return {
        "detections": [{**d.as_dict(), "confidence": d.confidence, "index": i}
                       for i, d in enumerate(analysis.detections)],
        "labels": sorted({d.label for d in analysis.detections}),
        "colors": {d.label: class_color_hex(d.class_id) for d in analysis.detections},
        "shown": Counter(d.label for d in analysis.visible_detections()),
    }


def _private(response: Response) -> Response:
    """`private, no-cache`: a browser keeps it but asks again each time; no shared cache keeps it."""
    response.cache_control.public = False
    response.cache_control.max_age = None
    response.cache_control.private = True
    response.cache_control.no_cache = True
    return response


def view_params(analysis: Analysis, args) -> tuple[float, Optional[frozenset[str]]]:
    """`conf` (0-1) and `classes` (comma-separated names; empty: none) of an annotated view, from
    a query; 400 when they are not what the page sends."""
    raw = args.get("conf")
    try:
        min_conf = analysis.conf if raw is None else float(raw)
    except ValueError:
        min_conf = -1.0
    if not 0.0 <= min_conf <= 1.0:  # NaN fails too
        abort(400, description="`conf` must be a number from 0 to 1.")
    names = args.get("classes")
    if names is not None and len(names) > 4000:
        abort(400, description="`classes` is too long.")
    return min_conf, (None if names is None else frozenset(n.strip() for n in names.split(",") if n.strip()))


def send_annotated_view(analysis: Analysis, min_conf: float, classes: Optional[frozenset[str]],
                        download: bool = False) -> Response:
    """The annotated image as the detail page shows it: the stored boxes at `min_conf` and above,
    of `classes` only (None: every class), drawn on the upright original, exactly as the stored
    annotated image is drawn. 404 until the analysis is done."""
    if not analysis.is_done or not storage.absolute(analysis.original_path).is_file():
        abort(404, description="This analysis has no annotated image (yet).")
    tag = hashlib.sha256(repr((analysis.public_id, analysis.finished_at, min_conf,
                               sorted(classes) if classes is not None else None)).encode()).hexdigest()[:32]
    if tag in request.if_none_match:
        return _private(Response(status=304, headers={"ETag": f'"{tag}"'}))
    boxes = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2)
             for d in analysis.visible_detections(min_conf) if classes is None or d.label in classes]
    body = encode_jpeg(draw_boxes(pipeline.read_original(analysis.original_path), boxes))
    response = Response(body, mimetype="image/jpeg")
    response.set_etag(tag)
    if download:
        attach(response, f"{download_stem(analysis.original_filename)}-annotated-{min_conf:.2f}.jpg")
    return _private(response)


def download_stem(filename: str, max_bytes: int = 80) -> str:
    """How a photo's downloads are named: its name without the extension, cut to `max_bytes` of
    UTF-8 (at a character); "photo" when it has no letter or digit."""
    stem = filename.rsplit(".", 1)[0].encode()[:max_bytes].decode(errors="ignore")
    return stem if any(ch.isalnum() for ch in stem) else "photo"


def attach(response: Response, name: str) -> Response:
    """`Content-Disposition: attachment` with this file name, as send_file writes it: an ASCII
    name, plus the exact one as `filename*` (RFC 5987) when it is not ASCII (a header must be
    Latin-1, and browsers read UTF-8 only from `filename*`)."""
    try:
        name.encode("ascii")
        names = {"filename": name}
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        if not simple[:1].isalnum():  # nothing of the name was left, or only its tail ("-1a2b3c4d.json")
            simple = "download" + simple
        names = {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='')}"}
    response.headers.set("Content-Disposition", "attachment", **names)
    return response


def send_image(analysis: Analysis, variant: str, download: bool = False) -> Response:
    """One of the analysis's images: `private, no-cache` with an ETag, so a browser keeps it but
    asks again each time (a 304 while it is unchanged; a 404 once it is deleted, or a redirect
    to the login page after logging out), and no shared cache ever keeps it. 404 for an unknown
    variant or one not made (yet)."""
    relative = getattr(analysis, f"{variant}_path", None) if variant in VARIANTS else None
    path = storage.absolute(relative) if relative else None
    if path is None or not path.is_file():
        abort(404, description=f"This analysis has no {variant} image (yet).")
    name = f"{download_stem(analysis.original_filename)}-{variant}{path.suffix}"
    return _private(send_file(path, as_attachment=download, download_name=name,
                              conditional=True, etag=True, max_age=None))


def owned_analyses(user: User, public_ids: list[str], with_detections: bool = False) -> list[Analysis]:
    """The user's analyses among these public ids (anything else, and anyone else's, left out),
    newest first."""
    wanted = {pid for pid in public_ids if PUBLIC_ID.fullmatch(pid)}
    if not wanted:
        return []
    stmt = sa.select(Analysis).where(Analysis.user_id == user.id, Analysis.public_id.in_(wanted)).order_by(
        Analysis.created_at.desc(), Analysis.id.desc()).options(joinedload(Analysis.photo, innerjoin=True))
    if with_detections:
        stmt = stmt.options(selectinload(Analysis.detections))
    return list(db.session.scalars(stmt))


def delete_analyses(analyses: list[Analysis]) -> int:
    """Delete each (as delete_analysis); how many were deleted (one deleted meanwhile is skipped)."""
    deleted = 0
    for analysis in analyses:
        try:
            delete_analysis(analysis)
        except NotFound:
            continue
        deleted += 1
    return deleted


def find_duplicate(user: User, sha256: str) -> Optional[Analysis]:
    """The run the gallery shows of the user's newest photo with these exact bytes, if any."""
    return db.session.scalars(sa.select(Analysis).join(Photo, Photo.id == Analysis.photo_id).where(
        Photo.user_id == user.id, Photo.sha256 == sha256.lower(), Analysis.shown).order_by(
        Photo.created_at.desc(), Photo.id.desc()).limit(1)).first()
