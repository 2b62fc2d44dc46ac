"""Accounts and their credentials: users, API refresh tokens, API keys, invitations, and the
"Download everything" archives (takeouts)."""
import hashlib
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Optional

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow


class User(UserMixin, db.Model):
    __tablename__ = "user"
    # SQLite's AUTOINCREMENT: a deleted account's id is never given to a new one (a login carries
    # the id, so an old cookie or token must not pass for someone else); PostgreSQL never reuses one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored normalised (trimmed, lower case), so the unique index is case-insensitive.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many photos the user has, kept in step by the services (not recounted per page).
    photos: Mapped[int] = mapped_column(default=0, server_default="0")
    # The bytes its photos keep on disk (originals and thumbnails), kept in step alike.
    stored_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # How many of those photos are in the Trash (counted in `photos`, which quotas read, and not
    # shown anywhere else), kept in step alike.
    trashed: Mapped[int] = mapped_column(default=0, server_default="0")
    # Part of every login's id (session and remember-me cookies) and of every access token:
    # raising it (a log-out, a log-out of all devices, a new password) ends all of them at once.
    # Refresh tokens are ended separately, by a log-out of all devices or a new password.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Disabled by the operator (`flask users disable`): it cannot sign in, its keys, tokens and
    # share links stop working and its queued work is not run, until `flask users enable`.
    disabled_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # Reset and email-change links issued before this stop working (set when the account is
    # disabled, and when its address changes: a link mailed to the old address dies with it).
    links_after: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    runs: Mapped[list["Run"]] = relationship(  # noqa: F821 - models/photos.py (which imports this module)
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True)
    refresh_tokens: Mapped[list["RefreshToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str, method: str = "scrypt") -> None:
        """Keep only a salted hash of the password (werkzeug's `method`: scrypt by default)."""
        self.password_hash = generate_password_hash(password, method=method)

    def get_id(self) -> str:
        """Flask-Login's alternative id: "<id>:<session version>", so a login ends with its version."""
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """Every login of this user issued so far stops working (the caller commits)."""
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def password_stamp(self) -> str:
        """A short digest of the password's hash (which has a new salt at every change): a
        password-reset link carries it, so the link stops working once any new password is set."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class RefreshToken(db.Model):
    __tablename__ = "refresh_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    # SHA-256 hex digest of the token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    family: Mapped[str] = mapped_column(sa.String(36), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="refresh_tokens")


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
    # The DeepStack endpoint keeps each call as a photo in the owner's gallery.
    save_to_gallery: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    @property
    def detect_only(self) -> bool:
        return self.scope == ApiKeyScope.DETECT_ONLY


class Invite(db.Model):
    """An invitation to sign up with one email (`flask users invite`), while SIGNUP is "invite".
    The link is a timed token carrying `nonce`; signing up with it sets `used_at` (once)."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # The account it made: deleting the account deletes its invitation too.
    user_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)


class TakeoutStatus(StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class Takeout(db.Model):
    """"Download everything": a zip of an account's photos and results, built in the background
    (webapp/auth/takeout.py) under the account's folder, downloadable until `expires_at`."""

    __tablename__ = "takeout"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=TakeoutStatus.QUEUED.value)
    done: Mapped[int] = mapped_column(default=0)  # photos written so far
    total: Mapped[int] = mapped_column(default=0)
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # bytes of the finished zip
    path: Mapped[Optional[str]] = mapped_column(sa.String(500))  # relative to UPLOAD_DIR
    error: Mapped[Optional[str]] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    expires_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        return 100 if self.status == TakeoutStatus.READY else int(100 * self.done / self.total) if self.total else 0
