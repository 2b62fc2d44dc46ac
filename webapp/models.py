"""Database models (SQLAlchemy 2.0, typed)."""
import uuid
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Optional

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class User(UserMixin, db.Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored normalised (trimmed, lower case), so the unique index is case-insensitive.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many analyses the user has, kept in step by the services (not recounted per page).
    photos: Mapped[int] = mapped_column(default=0, server_default="0")
    # The bytes its analyses keep on disk (originals and thumbnails), kept in step alike.
    stored_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Part of every login's id (session and remember-me cookies) and of every access token:
    # raising it (a log-out, a log-out of all devices, a new password) ends all of them at once.
    # Refresh tokens are ended separately, by a log-out of all devices or a new password.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    analyses: Mapped[list["Analysis"]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )
    refresh_tokens: Mapped[list["RefreshToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")

    def get_id(self) -> str:
        """Flask-Login's alternative id: "<id>:<session version>", so a login ends with its version."""
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """Every login of this user issued so far stops working (the caller commits)."""
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class AnalysisStatus(StrEnum):
    """Where an analysis is: queued, running, finished with results, or stopped with a reason."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @classmethod
    def active(cls) -> tuple["AnalysisStatus", ...]:
        """Not finished yet: a worker has it queued or is running it."""
        return (cls.PENDING, cls.RUNNING)


class StatusType(sa.types.TypeDecorator):
    """An AnalysisStatus stored as its string value (VARCHAR(16)), read back as the enum."""

    impl = sa.String(16)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else AnalysisStatus(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else AnalysisStatus(value)


class Photo(db.Model):
    """What belongs to an uploaded photo, whatever is run on it: its owner, the stored upright
    original and thumbnail, size, SHA-256 and upload time. Its runs are analyses."""

    __tablename__ = "photo"
    __table_args__ = (sa.Index("ix_photo_user_sha256", "user_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    original_filename: Mapped[str] = mapped_column(sa.String(255))
    # Paths relative to UPLOAD_DIR, all made by the server.
    original_path: Mapped[str] = mapped_column(sa.String(500))
    thumbnail_path: Mapped[Optional[str]] = mapped_column(sa.String(500))
    width: Mapped[int]
    height: Mapped[int]
    # Bytes of the stored original and thumbnail (what counts towards QUOTA_BYTES).
    stored_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # uploaded

    runs: Mapped[list["Analysis"]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True,
        order_by="(desc(Analysis.queued_at), desc(Analysis.id))",  # newest first
    )

    @property
    def folder(self) -> str:
        """The photo's folder under UPLOAD_DIR: its original, thumbnail and runs' images."""
        return self.original_path.rsplit("/", 1)[0]


class Analysis(db.Model):
    """One run of the model on a photo: model, parameters, status, timings, detections and the
    annotated image. Its public id is what `/analyses/<id>` takes (every run has its own). The
    photo's fields read through (`original_filename`, `width`, ...), so an analysis still answers
    as it did before photos had several runs."""

    __tablename__ = "analysis"
    __table_args__ = (
        # The gallery's order, newest or oldest first, one run per photo (the one it shows), with
        # the id breaking ties (keyset pages).
        sa.Index("ix_analysis_user_shown_created", "user_id", "shown", "created_at", "id"),
        sa.Index("ix_analysis_user_status", "user_id", "status", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        sa.String(32), unique=True, default=lambda: uuid.uuid4().hex
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    # The run the gallery shows for its photo (one per photo): the one that finished last, or
    # the first until one has. Only a shown run's labels are counted and searched.
    shown: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    annotated_path: Mapped[Optional[str]] = mapped_column(sa.String(500))
    status: Mapped[AnalysisStatus] = mapped_column(
        StatusType, default=AnalysisStatus.PENDING, index=True
    )
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
    # The photo's upload time (the gallery's order: a run does not move its photo); the run's
    # own time is queued_at.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    finished_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    owner: Mapped[User] = relationship(back_populates="analyses")
    photo: Mapped[Photo] = relationship(back_populates="runs", lazy="selectin")
    detections: Mapped[list["Detection"]] = relationship(
        back_populates="analysis",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(desc(Detection.confidence), Detection.id)",  # ties in the order they were found
    )

    @property
    def is_active(self) -> bool:
        return self.status in AnalysisStatus.active()

    @property
    def is_done(self) -> bool:
        return self.status == AnalysisStatus.DONE

    @property
    def is_failed(self) -> bool:
        return self.status == AnalysisStatus.FAILED

    # The photo's fields, read through (and settable on a new run's photo).
    original_filename = property(lambda self: self.photo.original_filename)
    original_path = property(lambda self: self.photo.original_path)
    thumbnail_path = property(lambda self: self.photo.thumbnail_path)
    width = property(lambda self: self.photo.width)
    height = property(lambda self: self.photo.height)
    stored_bytes = property(lambda self: self.photo.stored_bytes)
    sha256 = property(lambda self: self.photo.sha256)
    folder = property(lambda self: self.photo.folder)

    @property
    def annotated_target(self) -> str:
        """Where this run's annotated image is written, in the photo's folder: `annotated.jpg` for
        its first run (which shares the photo's public id), `annotated-<run id>.jpg` for others."""
        if self.public_id == self.photo.public_id:
            return f"{self.folder}/annotated.jpg"
        return f"{self.folder}/annotated-{self.public_id}.jpg"

    def fail(self, message: str) -> None:
        self.status = AnalysisStatus.FAILED
        self.error = message
        self.finished_at = utcnow()

    def visible_detections(self, min_conf: Optional[float] = None) -> list["Detection"]:
        threshold = self.conf if min_conf is None else min_conf
        return [d for d in self.detections if d.confidence >= threshold]

    def __repr__(self) -> str:
        return f"<Analysis {self.public_id} {self.status}>"


# How many runs a photo has, read with it (one subquery on the photo_id index, not the runs).
Photo.run_count = column_property(
    sa.select(sa.func.count(Analysis.id)).where(Analysis.photo_id == Photo.id).correlate_except(Analysis)
    .scalar_subquery())


class Detection(db.Model):
    __tablename__ = "detection"
    __table_args__ = (sa.Index("ix_detection_label_analysis", "label", "analysis_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(
        sa.ForeignKey("analysis.id", ondelete="CASCADE"), index=True
    )
    class_id: Mapped[int]
    label: Mapped[str] = mapped_column(sa.String(100))
    confidence: Mapped[float]
    # Box in pixels of the upright original image.
    x1: Mapped[float]
    y1: Mapped[float]
    x2: Mapped[float]
    y2: Mapped[float]

    analysis: Mapped[Analysis] = relationship(back_populates="detections")

    def as_dict(self) -> dict:
        return {
            "name": self.label,
            "class": self.class_id,
            "confidence": round(self.confidence, 4),
            "box": {k: round(getattr(self, k), 2) for k in ("x1", "y1", "x2", "y2")},
        }


class AnalysisLabel(db.Model):
    """A label a finished analysis shows at its threshold, and how many times: what label search
    and the gallery's chips read instead of scanning detections. Kept by `analyses/history.py`."""

    __tablename__ = "analysis_label"
    __table_args__ = (
        sa.Index("ix_analysis_label_user_label", "user_id", "label", "created_at", "analysis_id"),
    )

    analysis_id: Mapped[int] = mapped_column(sa.ForeignKey("analysis.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    count: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the analysis's, for ordering


class UserLabel(db.Model):
    """How many of a user's photos show a label: the filter bar's counts, kept in step."""

    __tablename__ = "user_label"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    photos: Mapped[int]


class ApiKeyScope(StrEnum):
    """What an API key may call: everything the owner may, or only detection."""

    FULL = "full"
    DETECT_ONLY = "detect-only"


class ApiKey(db.Model):
    """A long-lived credential for scripts and devices (`Authorization: Bearer spt_…` or
    `X-API-Key`). Only its SHA-256 is stored; revoking deletes the row."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16))  # shown in lists: "spt_" and 8 characters
    secret_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scope: Mapped[str] = mapped_column(sa.String(16), default=ApiKeyScope.FULL.value)
    # The DeepStack endpoint keeps each call as an analysis in the owner's gallery.
    save_to_gallery: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    @property
    def detect_only(self) -> bool:
        return self.scope == ApiKeyScope.DETECT_ONLY


class ShareLink(db.Model):
    """A read-only link to one analysis's result, for anyone who has it (no sign-in). The link
    is an itsdangerous timed token carrying `share_id` (see webapp/shares.py); the row says for
    how long it lives and whether it was revoked. Deleting the analysis deletes its links."""

    __tablename__ = "share_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random, in the signed token only: never an id any other route takes.
    share_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    analysis_id: Mapped[int] = mapped_column(sa.ForeignKey("analysis.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifetime_seconds: Mapped[Optional[int]]  # None: never expires
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    views: Mapped[int] = mapped_column(default=0, server_default="0")

    analysis: Mapped["Analysis"] = relationship()

    @property
    def expires_at(self) -> Optional[datetime]:
        return None if self.lifetime_seconds is None else self.created_at + timedelta(seconds=self.lifetime_seconds)


class RefreshToken(db.Model):
    __tablename__ = "refresh_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 hex digest of the token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    family: Mapped[str] = mapped_column(sa.String(36), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="refresh_tokens")
