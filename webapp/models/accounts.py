"""Accounts and their credentials: users, API refresh tokens, API keys."""
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
