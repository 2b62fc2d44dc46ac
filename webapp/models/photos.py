"""Photos and the runs of a model on them: a photo (its owner, original, thumbnail) has one or
more runs; a run has its settings, status, timings and detections. The `analysis` tables keep
their names (a run was first called an analysis, and the API still says so)."""
import uuid
from collections import Counter
from datetime import datetime
from enum import StrEnum
from typing import Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from webapp.extensions import db
from webapp.models.accounts import User
from webapp.models.types import UTCDateTime, utcnow


class RunStatus(StrEnum):
    """Where a run is: queued, running, finished with results, or stopped with a reason."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @classmethod
    def active(cls) -> tuple["RunStatus", ...]:
        """Not finished yet: a worker has it queued or is running it."""
        return (cls.PENDING, cls.RUNNING)


class StatusType(sa.types.TypeDecorator):
    """A RunStatus stored as its string value (VARCHAR(16)), read back as the enum."""

    impl = sa.String(16)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else RunStatus(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else RunStatus(value)


def count_labels(boxes: Iterable) -> Counter:
    """{label: how many} of these detections or boxes (anything with a `label`)."""
    return Counter(box.label for box in boxes)


class Photo(db.Model):
    """What belongs to an uploaded photo, whatever is run on it: its owner, the original exactly
    as uploaded, the rendition the pages show where a browser cannot show the original upright,
    the thumbnail, the upright size, SHA-256 (of the original's bytes), when it was uploaded and
    taken, its camera and location."""

    __tablename__ = "photo"
    __table_args__ = (sa.Index("ix_photo_user_sha256", "user_id", "sha256"),
                      sa.Index("ix_photo_user_trashed", "user_id", "trashed_at"),
                      sa.Index("ix_photo_trashed", "trashed_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    original_filename: Mapped[str] = mapped_column(sa.String(255))  # the client's name, for display only
    # Paths relative to UPLOAD_DIR, all made by the server.
    original_path: Mapped[str] = mapped_column(sa.String(500))
    # The rendition pages show (upright JPEG or PNG, no metadata), or None: the original is one.
    display_path: Mapped[Optional[str]] = mapped_column(sa.String(500))
    thumbnail_path: Mapped[Optional[str]] = mapped_column(sa.String(500))
    width: Mapped[int]  # upright
    height: Mapped[int]
    # Bytes of the stored original, rendition and thumbnail (what counts towards QUOTA_BYTES).
    stored_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # uploaded
    # When it was taken, as the camera wrote it (local time, no zone), with the camera's offset
    # from UTC in minutes where it wrote one; without a date in the photo, the upload time (UTC,
    # offset 0) and `taken_source` "upload" instead of "exif".
    taken_at: Mapped[datetime] = mapped_column(sa.DateTime)
    taken_offset: Mapped[Optional[int]]
    taken_source: Mapped[str] = mapped_column(sa.String(8), default="upload", server_default="upload")
    camera_make: Mapped[Optional[str]] = mapped_column(sa.String(100))
    camera_model: Mapped[Optional[str]] = mapped_column(sa.String(100))
    # Where it was taken (degrees), from its EXIF: shown to the owner, never shared.
    latitude: Mapped[Optional[float]]
    longitude: Mapped[Optional[float]]
    # In the Trash since then (None: not in it): a trashed photo has no current run, so no
    # listing, count or read finds it; it is purged TRASH_DAYS later. What one delete moved
    # shares a batch, which its "Undo" restores.
    trashed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    trash_batch: Mapped[Optional[str]] = mapped_column(sa.String(32))

    runs: Mapped[list["Run"]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True,
        order_by="(desc(Run.queued_at), desc(Run.id))",  # newest first
    )

    @property
    def folder(self) -> str:
        """The photo's folder under UPLOAD_DIR: its original, thumbnail and runs' images."""
        return self.original_path.rsplit("/", 1)[0]

    @property
    def shown_path(self) -> str:
        """What pages show of it: the rendition, or the original where a browser shows that."""
        return self.display_path or self.original_path

    @property
    def in_trash(self) -> bool:
        return self.trashed_at is not None

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def taken_from_exif(self) -> bool:
        return self.taken_source == "exif"

    @property
    def files(self) -> list[str]:
        """Its stored files (not its runs' annotated images)."""
        return [p for p in (self.original_path, self.display_path, self.thumbnail_path) if p]


class Run(db.Model):
    """One run of a model on a photo: model, settings, status, timings, detections and the
    annotated image. Its public id is what `/analyses/<id>` takes (every run has its own; a
    photo's first run shares the photo's)."""

    __tablename__ = "analysis"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    # The photo's current run: the one the gallery (and the API's list) shows for it, one per
    # photo: the run that finished last, or the first until one has. Only a current run's labels
    # are counted and searched. (The column is still called `shown`, as in the API.)
    current: Mapped[bool] = mapped_column("shown", default=True, server_default=sa.true())
    annotated_path: Mapped[Optional[str]] = mapped_column(sa.String(500))
    status: Mapped[RunStatus] = mapped_column(StatusType, default=RunStatus.PENDING, index=True)
    error: Mapped[Optional[str]] = mapped_column(sa.Text)
    model_name: Mapped[str] = mapped_column(sa.String(500))  # the model's file name
    # Which configured model runs it: a YOLO_MODELS name; None for the default (YOLO_MODEL).
    model: Mapped[Optional[str]] = mapped_column(sa.String(32))
    conf: Mapped[float]
    iou: Mapped[float]
    imgsz: Mapped[int]
    # Class names the detection was limited to (None: all classes of the model).
    classes: Mapped[Optional[list[str]]] = mapped_column(sa.JSON)
    # Milliseconds spent in each stage of the detector, and end to end in the worker.
    preprocess_ms: Mapped[Optional[float]]
    inference_ms: Mapped[Optional[float]]
    postprocess_ms: Mapped[Optional[float]]
    total_ms: Mapped[Optional[float]]
    device: Mapped[Optional[str]] = mapped_column(sa.String(32))
    # Who has the job: "host:pid:start" of the process that queued or runs it in-process (so a
    # restart can find its orphans); "celery" while queued on the broker, "celery:host:pid:start"
    # while a Celery worker runs it.
    worker: Mapped[Optional[str]] = mapped_column(sa.String(255))
    # Runs started; a photo that keeps killing its worker is given up after ANALYSIS_MAX_ATTEMPTS.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    # The photo's upload time and date taken (the gallery's two orders: a run does not move its
    # photo); the run's own time is queued_at.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    taken_at: Mapped[datetime] = mapped_column(sa.DateTime)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    finished_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    owner: Mapped[User] = relationship(back_populates="runs")
    photo: Mapped[Photo] = relationship(back_populates="runs", lazy="selectin")
    detections: Mapped[list["Detection"]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(desc(Detection.confidence), Detection.id)",  # ties in the order they were found
    )

    @property
    def is_active(self) -> bool:
        return self.status in RunStatus.active()

    @property
    def is_done(self) -> bool:
        return self.status == RunStatus.DONE

    @property
    def is_failed(self) -> bool:
        return self.status == RunStatus.FAILED

    @property
    def annotated_target(self) -> str:
        """Where this run's annotated image is kept, in the photo's folder, once it has been asked
        for (it is drawn then): `annotated.jpg` for its first run (which shares the photo's public
        id), `annotated-<run id>.jpg` for others."""
        if self.public_id == self.photo.public_id:
            return f"{self.photo.folder}/annotated.jpg"
        return f"{self.photo.folder}/annotated-{self.public_id}.jpg"

    @property
    def annotated_thumbnail_path(self) -> str:
        """Where this run's annotated thumbnail is written (boxes drawn at thumbnail size, made
        by detection): beside `annotated_target`, named alike."""
        return self.annotated_target.replace("/annotated", "/annotated-thumb", 1)

    def fail(self, message: str) -> None:
        self.status = RunStatus.FAILED
        self.error = message
        self.finished_at = utcnow()

    def detections_at(self, min_conf: Optional[float] = None) -> list["Detection"]:
        """The detections at or above `min_conf` (default: the run's own threshold, `conf`):
        the boxes its page draws and its labels count."""
        threshold = self.conf if min_conf is None else min_conf
        return [d for d in self.detections if d.confidence >= threshold]

    def label_counts(self, min_conf: Optional[float] = None) -> Counter:
        """{label: boxes} at `min_conf` (default: the run's own threshold)."""
        return count_labels(self.detections_at(min_conf))

    def __repr__(self) -> str:
        return f"<Run {self.public_id} {self.status}>"


# The gallery's order, newest or oldest first, one run per photo (its current one), with the id
# breaking ties (keyset pages).
sa.Index("ix_analysis_user_shown_created", Run.user_id, Run.current, Run.created_at, Run.id)
sa.Index("ix_analysis_user_status", Run.user_id, Run.status, Run.created_at, Run.id)
sa.Index("ix_analysis_user_shown_taken", Run.user_id, Run.current, Run.taken_at, Run.id)
# (status, then current: a status filter names both, so this one is chosen over the order's own
# index even without planner statistics, as SQLite has none)
sa.Index("ix_analysis_user_status_taken", Run.user_id, Run.status, Run.current, Run.taken_at, Run.id)

# How many runs a photo has, read with it (one subquery on the photo_id index, not the runs).
Photo.run_count = column_property(
    sa.select(sa.func.count(Run.id)).where(Run.photo_id == Photo.id).correlate_except(Run).scalar_subquery())


class Detection(db.Model):
    __tablename__ = "detection"
    __table_args__ = (sa.Index("ix_detection_label_analysis", "label", "analysis_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column("analysis_id", sa.ForeignKey("analysis.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int]
    label: Mapped[str] = mapped_column(sa.String(100))
    confidence: Mapped[float]
    # Box in pixels of the upright original image.
    x1: Mapped[float]
    y1: Mapped[float]
    x2: Mapped[float]
    y2: Mapped[float]

    run: Mapped[Run] = relationship(back_populates="detections")

    def as_dict(self) -> dict:
        return {
            "name": self.label,
            "class": self.class_id,
            "confidence": round(self.confidence, 4),
            "box": {k: round(getattr(self, k), 2) for k in ("x1", "y1", "x2", "y2")},
        }


class RunLabel(db.Model):
    """A label a finished current run shows at its threshold, and how many times: what label
    search and the gallery's chips read instead of scanning detections. Kept by `library.counts`."""

    __tablename__ = "analysis_label"

    run_id: Mapped[int] = mapped_column("analysis_id", sa.ForeignKey("analysis.id", ondelete="CASCADE"),
                                        primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    count: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the run's, for ordering
    taken_at: Mapped[datetime] = mapped_column(sa.DateTime)  # likewise


sa.Index("ix_analysis_label_user_label", RunLabel.user_id, RunLabel.label, RunLabel.created_at, RunLabel.run_id)
sa.Index("ix_analysis_label_user_label_taken", RunLabel.user_id, RunLabel.label, RunLabel.taken_at, RunLabel.run_id)


class UserLabel(db.Model):
    """How many of a user's photos show a label: the filter bar's counts, kept in step."""

    __tablename__ = "user_label"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    photos: Mapped[int]
