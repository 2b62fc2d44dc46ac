"""Requests a client may send again safely: an `Idempotency-Key` and what it was first answered."""
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow


class IdempotentRequest(db.Model):
    """One `Idempotency-Key` of a user: the request it came with (a fingerprint: method, path,
    query, fields and each file's SHA-256), and once answered, the answer (status and JSON body).
    Without an answer, the request is running, or died before it answered (`touched_at` says
    when it last was seen running)."""

    __tablename__ = "idempotent_request"
    __table_args__ = (sa.UniqueConstraint("user_id", "key", name="uq_idempotent_request_user_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[Optional[int]]
    body: Mapped[Optional[dict]] = mapped_column(sa.JSON)
    owner: Mapped[str] = mapped_column(sa.String(255))  # host:pid:start of the process answering it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
