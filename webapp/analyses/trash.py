"""The Trash: deleting a photo moves it there, where it waits TRASH_DAYS (counted by the quotas)
until it is restored, deleted for good, or purged by the running system (`purge_due`).

A photo in the Trash has no current run, so nothing that lists, counts or reads photos finds it
(they all go through the current run, or through `lookups`, which leaves trashed photos out);
its label counts are taken back, its files stay. Restoring makes its latest finished run (or
its first) current again, as when it last finished. Each change takes the photo's lock first,
as runs finishing and deletes do, so a run that finishes while its photo is in the Trash stores
its result without showing it. Everything one delete moved shares a batch id, which is what its
"Undo" restores."""
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Optional

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import selectinload

from webapp import storage
from webapp.analyses.lookups import NOT_FOUND, PUBLIC_ID
from webapp.analyses.removal import delete_photo, detach
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.library.counts import count_trashed, forget_labels
from webapp.library.current_run import latest_finished, lock_photos, make_current
from webapp.models import Photo, Run, User, utcnow

logger = logging.getLogger(__name__)

NOT_IN_TRASH = "This photo is not in the Trash (it may have been restored or deleted for good)."


@dataclass(frozen=True)
class Moved:
    """What one delete moved to the Trash: how many photos, the batch its Undo restores, and the
    first one's name (for the message)."""

    count: int
    batch: str
    name: Optional[str] = None


def move_to_trash(runs: list[Run]) -> Moved:
    """Move these runs' photos to the Trash, one batch (a photo gone or already there meanwhile
    is skipped). Commits after each photo."""
    batch, count, name = uuid.uuid4().hex, 0, None
    now = utcnow()
    for run in runs:
        photo_id, user_id, filename = run.photo_id, run.user_id, run.photo.original_filename
        detach(run)
        if not lock_photos([photo_id]):
            db.session.rollback()
            continue
        photo = db.session.scalar(sa.select(Photo).where(Photo.id == photo_id)
                                  .execution_options(populate_existing=True))
        if photo.trashed_at is not None:
            db.session.rollback()
            continue
        # its runs too: this waits for a run still committing its labels, so they are counted out
        for current in db.session.scalars(sa.select(Run).where(Run.photo_id == photo_id).order_by(Run.id)
                                          .with_for_update()):
            if current.current:
                forget_labels(current)
                current.current = False
        photo.trashed_at, photo.trash_batch = now, batch
        count_trashed(user_id, 1)
        db.session.commit()
        count, name = count + 1, name or filename
    return Moved(count, batch, name)


def move_one(run: Run) -> Moved:
    """Move the run's photo to the Trash; NotFound when another delete won."""
    moved = move_to_trash([run])
    if not moved.count:
        raise NotFound(NOT_FOUND)
    return moved


def in_trash(user: User, limit: Optional[int] = None) -> list[Photo]:
    """The user's photos in the Trash, most recently deleted first, with their runs."""
    return list(db.session.scalars(
        sa.select(Photo).where(Photo.user_id == user.id, Photo.trashed_at.is_not(None))
        .order_by(Photo.trashed_at.desc(), Photo.id.desc()).limit(limit).options(selectinload(Photo.runs))))


def trashed_photo(user: User, public_id: str) -> Photo:
    """The user's photo in the Trash by its id, or by the id of any of its runs (what the API
    called it before the delete). NotFound otherwise, anyone else's alike."""
    if not PUBLIC_ID.fullmatch(public_id or ""):
        raise NotFound(NOT_IN_TRASH)
    found = db.session.scalar(sa.select(Photo).where(
        Photo.user_id == user.id, Photo.trashed_at.is_not(None),
        sa.or_(Photo.public_id == public_id,
               Photo.id == sa.select(Run.photo_id).where(Run.public_id == public_id).scalar_subquery())))
    if found is None:
        raise NotFound(NOT_IN_TRASH)
    return found


def thumbnail_file(photo: Photo) -> Optional[Path]:
    """Where a trashed photo's thumbnail is stored (the Trash page shows it), or None."""
    return storage.absolute(photo.thumbnail_path) if photo.thumbnail_path else None


def trashed_with_bytes(user: User, sha256: str) -> Optional[Photo]:
    """The user's photo in the Trash with exactly these bytes (the most recently deleted), if any:
    the upload queue offers to restore it rather than keep the photo twice."""
    return db.session.scalars(sa.select(Photo).where(
        Photo.user_id == user.id, Photo.sha256 == sha256.lower(), Photo.trashed_at.is_not(None))
        .order_by(Photo.trashed_at.desc(), Photo.id.desc()).limit(1)).first()


def purge_at(photo: Photo, days: int) -> datetime:
    """When the running system deletes it for good."""
    return photo.trashed_at + timedelta(days=days)


def restore(user: User, public_ids: list[str]) -> int:
    """Take these photos of the user out of the Trash (by photo or run id; anything else is left
    out); how many came back. Commits after each photo."""
    wanted = [pid for pid in public_ids if PUBLIC_ID.fullmatch(pid)]
    if not wanted:
        return 0
    ids = db.session.scalars(sa.select(Photo.id).where(
        Photo.user_id == user.id, Photo.trashed_at.is_not(None),
        sa.or_(Photo.public_id.in_(wanted),
               Photo.id.in_(sa.select(Run.photo_id).where(Run.public_id.in_(wanted)))))).all()
    return _restore_ids(list(ids))


def restore_one(user: User, photo: Photo) -> str:
    """Take this photo of the user's Trash out of it; the public id of the run it shows again
    (its latest finished). NotFound when it left the Trash meanwhile."""
    if not _restore_ids([photo.id]):
        raise NotFound(NOT_IN_TRASH)
    return db.session.scalar(sa.select(Run.public_id).where(Run.photo_id == photo.id, Run.current))


def undo(user: User, batch: str) -> int:
    """Restore what one delete moved to the Trash (whatever of it is still there)."""
    ids = db.session.scalars(sa.select(Photo.id).where(
        Photo.user_id == user.id, Photo.trashed_at.is_not(None), Photo.trash_batch == batch)).all()
    return _restore_ids(list(ids))


def _restore_ids(photo_ids: list[int]) -> int:
    restored = 0
    for photo_id in sorted(photo_ids):
        if not lock_photos([photo_id]):
            db.session.rollback()
            continue
        photo = db.session.scalar(sa.select(Photo).where(Photo.id == photo_id)
                                  .execution_options(populate_existing=True))
        if photo.trashed_at is None:
            db.session.rollback()
            continue
        runs = list(db.session.scalars(sa.select(Run).where(Run.photo_id == photo_id).order_by(Run.id)
                                       .with_for_update().execution_options(populate_existing=True)))
        photo.trashed_at, photo.trash_batch = None, None
        make_current(latest_finished(runs) or runs[0])
        count_trashed(photo.user_id, -1)
        db.session.commit()
        restored += 1
    return restored


def delete_for_good(user: User, public_ids: list[str]) -> int:
    """Delete these photos of the user's Trash now, with their files; how many."""
    deleted = 0
    for public_id in public_ids:
        try:
            photo = trashed_photo(user, public_id)
        except NotFound:
            continue
        deleted += _delete(photo)
    return deleted


def empty(user: User) -> int:
    """Delete everything in the user's Trash now; how many photos."""
    return sum(_delete(photo) for photo in in_trash(user))


def purge_expired(days: int, now: Optional[datetime] = None, limit: int = 500) -> int:
    """Delete, for every user, what has been in the Trash `days` days or more (at most `limit`
    photos a call); how many."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    due = list(db.session.scalars(sa.select(Photo).where(Photo.trashed_at <= cutoff)
                                  .order_by(Photo.trashed_at).limit(limit)))
    purged = sum(_delete(photo) for photo in due)
    if purged:
        logger.info("Purged %d photo(s) kept in the Trash %d days", purged, days)
    return purged


def purge_all_expired(days: int) -> int:
    """`purge_expired` until nothing is due; how many photos in all."""
    purged = 0
    while found := purge_expired(days):
        purged += found
    return purged


def _delete(photo: Photo) -> int:
    run = db.session.scalar(sa.select(Run).where(Run.photo_id == photo.id).order_by(Run.id).limit(1))
    if run is None:
        return 0
    try:
        delete_photo(run, from_trash=True)
    except NotFound:  # restored, or deleted by another, meanwhile
        return 0
    return 1



# More that expires, purged by the same thread (an account's "Download everything" zips, which
# auth/takeout.py adds here: this layer does not import that one).
ALSO_PURGED: list[Callable[[], int]] = []


class _Purger:
    """What `purge_soon` starts: at most one purge at a time per process, at most one every
    TRASH_PURGE_SECONDS, in a thread of its own (no request waits for it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last: Optional[float] = None
        self._running = False

    def soon(self, app: Flask) -> bool:
        interval = app.config["TRASH_PURGE_SECONDS"]
        if interval <= 0:
            return False
        now = time.monotonic()
        with self._lock:
            if self._running or (self._last is not None and now - self._last < interval):
                return False
            self._last, self._running = now, True
        threading.Thread(target=self._purge, args=(app,), daemon=True, name="trash-purge").start()
        return True

    def _purge(self, app: Flask) -> None:
        try:
            with app.app_context():
                try:
                    purge_all_expired(app.config["TRASH_DAYS"])
                    for purge in ALSO_PURGED:
                        purge()
                except Exception:  # noqa: BLE001 - the database is down: the next request's turn
                    logger.warning("Could not purge the Trash; trying again later", exc_info=True)
                finally:
                    db.session.remove()
        finally:
            with self._lock:
                self._running = False


_purger = _Purger()


def purge_soon(app: Flask) -> bool:
    """Purge what has been in the Trash TRASH_DAYS, in the background, if this process has not
    looked for TRASH_PURGE_SECONDS (every request calls it; it starts at most one purge)."""
    return _purger.soon(app)
