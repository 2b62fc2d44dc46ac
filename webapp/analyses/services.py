"""Analyses: accepting an upload, the gallery's queries, deleting. Shared by pages and API."""
import hashlib
import logging
import os
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import selectinload
from flask import abort, current_app
from flask_login import current_user

from webapp import jobs, storage
from webapp.extensions import db
from webapp.models import Analysis, Detection, User
from webapp.vision.detector import get_detector
from webapp.vision.images import ImageRejected, LoadedImage, load_image, stored_original, thumbnail

logger = logging.getLogger(__name__)


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


class UnknownClasses(ValueError):
    """Some requested class names are not classes of the model."""

    def __init__(self, unknown: list[str], known: list[str]):
        super().__init__(f"Unknown class names: {', '.join(unknown)}.")
        self.unknown, self.known = unknown, known


def check_classes(names: Optional[tuple[str, ...]]) -> None:
    """Raise UnknownClasses for names the model does not know (loads the model; may raise
    DetectorError when it cannot be loaded)."""
    if not names:
        return
    known = list(get_detector(current_app).names().values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownClasses(unknown, known)


def display_filename(name: Optional[str]) -> str:
    """The client's filename, for display only: base name, printable, at most 255 characters."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    return name.strip()[:255] or "photo"


def accept_upload(
    user: User, filename: Optional[str], data: bytes, params: DetectionParams = DetectionParams()
) -> tuple[Analysis, LoadedImage]:
    """Validate an uploaded image, store it with a thumbnail and commit a `pending` Analysis.

    Raises ImageRejected (nothing stored). If storing fails, no file or row is left behind.
    """
    config = current_app.config
    loaded = load_image(data, config["MAX_IMAGE_PIXELS"])
    public_id = uuid.uuid4().hex
    folder = f"{user.id}/{public_id}"
    original_bytes, ext = stored_original(loaded, data)
    analysis = Analysis(
        public_id=public_id,
        owner=user,
        original_filename=display_filename(filename),
        original_path=f"{folder}/original.{ext}",
        thumbnail_path=f"{folder}/thumbnail.jpg",
        width=loaded.width,
        height=loaded.height,
        sha256=hashlib.sha256(data).hexdigest(),
        model_name=config["YOLO_MODEL"],
        conf=config["YOLO_CONF"] if params.conf is None else params.conf,
        iou=config["YOLO_IOU"] if params.iou is None else params.iou,
        imgsz=params.imgsz or config["YOLO_IMGSZ"],
        classes=list(params.classes) if params.classes else None,
        worker=jobs.worker_id(),
    )
    try:
        storage.save(analysis.original_path, original_bytes)
        storage.save(analysis.thumbnail_path, thumbnail(loaded.bgr_array(), config["THUMBNAIL_SIZE"]))
        db.session.add(analysis)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        storage.delete([analysis.original_path, analysis.thumbnail_path])
        raise
    return analysis, loaded


@dataclass
class UploadResult:
    accepted: list[Analysis]
    rejected: list[Rejected]
    futures: list  # concurrent.futures.Future of each queued analysis (none when run inline)

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until the accepted analyses are finished; False if `timeout` ran out first."""
        from concurrent.futures import wait

        _, not_done = wait(self.futures, timeout=timeout)
        return not not_done


def upload_files(user: User, files, params: DetectionParams = DetectionParams()) -> UploadResult:
    """Accept each uploaded file on its own and queue the accepted ones for detection."""
    result = UploadResult([], [], [])
    runner = jobs.get_runner(current_app)
    for file in files:
        name = display_filename(file.filename)
        try:
            analysis, loaded = accept_upload(user, name, file.read(), params)
        except ImageRejected as exc:
            result.rejected.append(Rejected(name, str(exc)))
            continue
        result.accepted.append(analysis)
        future = runner.submit(analysis.id, loaded.bgr_array())
        if future is not None:
            result.futures.append(future)
    return result


def delete_analysis(analysis: Analysis) -> None:
    """Delete the row (its detections go with it) and then its files."""
    paths = analysis.stored_paths()
    db.session.delete(analysis)
    db.session.commit()
    storage.delete(paths)


def find_owned(user: User, public_id: str, with_detections: bool = False) -> Optional[Analysis]:
    """The user's analysis with this public id, or None (also when it is someone else's)."""
    stmt = sa.select(Analysis).where(Analysis.public_id == public_id, Analysis.user_id == user.id)
    if with_detections:
        stmt = stmt.options(selectinload(Analysis.detections))
    return db.session.scalar(stmt)


def get_owned_analysis(public_id: str) -> Analysis:
    """The signed-in user's analysis with this public id; 404 for anyone else's or none."""
    analysis = find_owned(current_user, public_id)
    if analysis is None:
        abort(404)
    return analysis


def _shown(label: Optional[str] = None):
    """Detections shown at their analysis's threshold (optionally of one label)."""
    condition = sa.and_(Detection.analysis_id == Analysis.id, Detection.confidence >= Analysis.conf)
    return sa.and_(condition, Detection.label == label) if label else condition


def gallery_query(user: User, label: Optional[str] = None, status: Optional[str] = None):
    stmt = sa.select(Analysis).where(Analysis.user_id == user.id)
    if label:
        stmt = stmt.where(sa.exists(sa.select(Detection.id).where(_shown(label))))
    if status:
        stmt = stmt.where(Analysis.status == status)
    return stmt.order_by(Analysis.created_at.desc(), Analysis.id.desc())


def label_counts(analyses: list[Analysis]) -> dict[int, list[tuple[str, int]]]:
    """{analysis id: [(label, count), ...]} for a page of analyses, in one query."""
    ids = [a.id for a in analyses]
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(Detection.analysis_id, Detection.label, sa.func.count())
        .join(Analysis, Analysis.id == Detection.analysis_id)
        .where(Detection.analysis_id.in_(ids), Detection.confidence >= Analysis.conf)
        .group_by(Detection.analysis_id, Detection.label)
    ).all()
    counts: dict[int, list[tuple[str, int]]] = {i: [] for i in ids}
    for analysis_id, label, count in rows:
        counts[analysis_id].append((label, count))
    for chips in counts.values():
        chips.sort(key=lambda c: (-c[1], c[0]))
    return counts


def user_labels(user: User) -> list[tuple[str, int]]:
    """Every label in the user's analyses with how many analyses show it, most common first."""
    rows = db.session.execute(
        sa.select(Detection.label, sa.func.count(sa.distinct(Detection.analysis_id)))
        .join(Analysis, Analysis.id == Detection.analysis_id)
        .where(Analysis.user_id == user.id, Detection.confidence >= Analysis.conf)
        .group_by(Detection.label)
    ).all()
    return sorted(((label, n) for label, n in rows), key=lambda r: (-r[1], r[0]))
