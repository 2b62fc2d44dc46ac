"""Share links: read-only links to one run's result."""
import uuid
from datetime import datetime, timedelta
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.photos import Run
from webapp.models.types import UTCDateTime, utcnow


class ShareLink(db.Model):
    """A read-only link to one run's result, for anyone who has it (no sign-in). The link is an
    itsdangerous timed token carrying `share_id` (see webapp/shares/links.py); the row says for
    how long it lives and whether it was revoked. Deleting the run deletes its links."""

    __tablename__ = "share_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random, in the signed token only: never an id any other route takes.
    share_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=lambda: uuid.uuid4().hex)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column("analysis_id", sa.ForeignKey("analysis.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifetime_seconds: Mapped[Optional[int]]  # None: never expires
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    views: Mapped[int] = mapped_column(default=0, server_default="0")

    run: Mapped[Run] = relationship()

    @property
    def expires_at(self) -> Optional[datetime]:
        return None if self.lifetime_seconds is None else self.created_at + timedelta(seconds=self.lifetime_seconds)
