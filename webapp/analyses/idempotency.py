"""Requests a client may send again safely (`Idempotency-Key`): a key is claimed with the
request's fingerprint; its first answer is kept for 24 hours and given again for the same key
and the same request; another request under the same key is refused. A first attempt that died
before it answered (its process is gone, or it has not been seen for LEASE) may be taken over:
what it stored is reused (the caller asks `resumed_since`), so nothing is stored twice."""
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp.errors import Refused
from webapp.extensions import db
from webapp.jobs.processes import is_alive, worker_id
from webapp.models import IdempotentRequest, utcnow

TTL = timedelta(hours=24)
LEASE = timedelta(minutes=3)  # longer than an upload with ?wait=true may take (API_WAIT_TIMEOUT)


class KeyInUse(Refused):
    """The first request with this key is still being answered."""

    kind = Refused.CONFLICT


class KeyReused(Refused):
    """The key came with another request."""

    kind = Refused.INVALID


@dataclass
class Claim:
    id: int
    answer: Optional[tuple[int, dict]] = None  # the first answer, to give again
    resumed_since: Optional[datetime] = None  # an earlier attempt died: what it stored since then counts


def fingerprint(*parts) -> str:
    """A request's fingerprint from its parts (method, path, query, fields, files' SHA-256)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def claim(user_id: int, key: str, print_: str) -> Claim:
    """Claim `key` for this request. Raises KeyReused (another request had it) or KeyInUse (its
    first request is being answered right now)."""
    now = utcnow()
    db.session.execute(sa.delete(IdempotentRequest).where(
        IdempotentRequest.user_id == user_id, IdempotentRequest.key == key, IdempotentRequest.created_at < now - TTL))
    row = IdempotentRequest(user_id=user_id, key=key, fingerprint=print_, owner=worker_id(), created_at=now,
                            touched_at=now)
    db.session.add(row)
    try:
        db.session.commit()
        return Claim(row.id)
    except IntegrityError:
        db.session.rollback()
    found = db.session.scalar(sa.select(IdempotentRequest).where(
        IdempotentRequest.user_id == user_id, IdempotentRequest.key == key).with_for_update())
    if found is None:  # expired and deleted meanwhile: claim it again
        db.session.rollback()
        return claim(user_id, key, print_)
    if found.fingerprint != print_:
        db.session.rollback()
        raise KeyReused("This Idempotency-Key was sent with another request: use a new key for a new request.")
    if found.status is not None:
        answer = (found.status, found.body)
        db.session.rollback()
        return Claim(found.id, answer=answer)
    if is_alive(found.owner) and now - found.touched_at < LEASE:
        db.session.rollback()
        raise KeyInUse("The first request with this Idempotency-Key is still being answered: send it again "
                       "in a few seconds.")
    since = found.created_at
    found.owner, found.touched_at = worker_id(), now  # taken over: its first attempt died
    db.session.commit()
    return Claim(found.id, resumed_since=since)


def answered(claimed: Claim, status: int, body: dict) -> None:
    """Keep the answer, to give again."""
    db.session.execute(sa.update(IdempotentRequest).where(IdempotentRequest.id == claimed.id)
                       .values(status=status, body=body, touched_at=utcnow()))
    db.session.commit()


def interrupted(claimed: Claim) -> None:
    """The request failed midway: the next one with its key takes over at once."""
    db.session.rollback()
    db.session.execute(sa.update(IdempotentRequest).where(IdempotentRequest.id == claimed.id)
                       .values(touched_at=utcnow() - 2 * LEASE))
    db.session.commit()


def release(claimed: Claim) -> None:
    """The request was refused (nothing done): the key may be sent again as if new."""
    db.session.rollback()
    db.session.execute(sa.delete(IdempotentRequest).where(IdempotentRequest.id == claimed.id))
    db.session.commit()
