""""Download everything": a zip of an account, built in the background (a job, like detection:
a thread of the web process, or a Celery worker) with its progress on its row, downloadable for
TAKEOUT_HOURS. In it:

- `originals/`: every photo exactly as uploaded (byte for byte, metadata included: it is the
  owner's), named `<name>-<photo id>.<ext>`, the Trash's too;
- `detections-coco.json`: COCO of the runs the gallery shows, at each run's own threshold, with
  `file_name`s of `originals/` (pycocotools loads it);
- `runs.json`: every run of every photo with its settings and every stored detection;
- `photos.json`, `share-links.json` and `api-keys.json` (no secret: neither links' tokens nor
  keys' hashes), `account.json`, `README.txt`.

Everything is written a batch at a time (memory stays flat whatever the library's size)."""
import io
import json
import logging
import os
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Iterator, Optional

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from webapp import storage
from webapp.analyses import exports, listing, trash
from webapp.auth import closing
from webapp.errors import Gone, NotFound
from webapp.extensions import db
from webapp.jobs.scheduling import background, get_runner
from webapp.models import ApiKey, Photo, Run, ShareLink, Takeout, TakeoutStatus, User, utcnow
from webapp.shares.links import lifetime_name

logger = logging.getLogger(__name__)

BATCH = 200
PROGRESS_SECONDS = 0.5
STALE_SECONDS = 3600  # a takeout queued or building this long was interrupted (its process died)
NOT_FOUND = "This download does not exist."
EXPIRED = "This download has expired: make a new one from your account page."

README = """Everything of the Spotter account {email}, as of {when} (UTC).

originals/             every photo exactly as you uploaded it (the Trash's too), named <name>-<photo id>
detections-coco.json   what the gallery shows of each photo (COCO; file_name is the photo in originals/;
                       boxes are in the upright photo's pixels, as a viewer that applies the photo's
                       orientation shows it)
runs.json              every run of every photo: its model, settings and every detection it stored
photos.json            each photo: its file here, when it was taken and uploaded, its camera and place
share-links.json       your share links (when made, until when, views; not the links themselves)
api-keys.json          your API keys (names, scopes, use; not the keys themselves)
account.json           the account
"""


class TakeoutBusy(Exception):
    """One is being built already."""


@background(name="webapp.auth.takeout.build")
def build(takeout_id: int) -> None:
    """The job: write the zip next to the account's photos, then mark it ready (or failed)."""
    takeout = db.session.get(Takeout, takeout_id)
    if takeout is None or takeout.status != TakeoutStatus.QUEUED:
        return
    user = db.session.get(User, takeout.user_id)
    takeout.status = TakeoutStatus.BUILDING
    takeout.total = db.session.scalar(sa.select(sa.func.count()).select_from(Photo).where(Photo.user_id == user.id))
    relative = f"{closing.user_folder(user.id)}/takeout-{takeout.public_id}.zip"
    db.session.commit()
    path = storage.absolute(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".tmp-{path.name}")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            _write(archive, takeout_id, user)
        os.replace(partial, path)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the row says so and the file goes
        partial.unlink(missing_ok=True)
        db.session.rollback()
        logger.exception("Takeout %s failed", takeout_id)
        _update(takeout_id, status=TakeoutStatus.FAILED, finished_at=utcnow(),
                error=f"It could not be made ({type(exc).__name__}): try again.")
        return
    hours = current_app.config["TAKEOUT_HOURS"]
    if not _update(takeout_id, status=TakeoutStatus.READY, path=relative, size=path.stat().st_size,
                   finished_at=utcnow(), expires_at=utcnow() + timedelta(hours=hours)):
        path.unlink(missing_ok=True)  # the account (or this takeout) was deleted meanwhile


def _update(takeout_id: int, **values) -> bool:
    """Write the takeout's row in a transaction of its own (the job's session keeps reading)."""
    with db.engine.begin() as connection:
        return connection.execute(sa.update(Takeout).where(Takeout.id == takeout_id).values(**values)).rowcount == 1


def _batches(stmt, key) -> Iterator[list]:
    """Rows of `stmt` in order of `key`, BATCH at a time (keyset)."""
    last = None
    while True:
        rows = list(db.session.scalars((stmt if last is None else stmt.where(key > last)).order_by(key).limit(BATCH)))
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key.key)


def _write(archive: zipfile.ZipFile, takeout_id: int, user: User) -> None:
    archive.writestr("README.txt", README.format(email=user.email, when=utcnow().strftime("%Y-%m-%d %H:%M")))
    archive.writestr("account.json", json.dumps({
        "email": user.email, "created_at": user.created_at.isoformat(), "photos": user.photos,
        "exported_at": utcnow().isoformat()}, indent=2))
    done, told = 0, time.monotonic()
    photos = sa.select(Photo).where(Photo.user_id == user.id)
    for batch in _batches(photos, Photo.id):
        for photo in batch:
            try:
                archive.write(storage.absolute(photo.original_path), f"originals/{exports.photo_file_name(photo)}",
                              compress_type=zipfile.ZIP_STORED)  # already compressed
            except FileNotFoundError:  # deleted while the zip was being written
                pass
            done += 1
            if time.monotonic() - told >= PROGRESS_SECONDS:
                _update(takeout_id, done=done)
                told = time.monotonic()
    _update(takeout_id, done=done)
    with archive.open("photos.json", "w", force_zip64=True) as raw, _text(raw) as out:
        out.write('{"photos": [')
        exports.json_items(out, (_photo(p) for batch in _batches(photos, Photo.id) for p in batch), indent=2)
        out.write("\n]}\n")
    runs = sa.select(Run).where(Run.user_id == user.id).options(selectinload(Run.detections))
    with archive.open("runs.json", "w", force_zip64=True) as raw, _text(raw) as out:
        out.write('{"runs": [')
        exports.json_items(out, (_run(r) for batch in _batches(runs, Run.id) for r in batch), indent=2)
        out.write("\n]}\n")
    shown = listing.Filters()
    with archive.open("detections-coco.json", "w", force_zip64=True) as raw, _text(raw) as out:
        exports.write_coco(out, lambda: listing.batches_matching(user, shown, BATCH), None,
                           exports.classes_of(listing.stored_classes(user, shown)),
                           name_of=lambda run: f"originals/{exports.photo_file_name(run.photo)}")
    links = db.session.scalars(sa.select(ShareLink).where(ShareLink.user_id == user.id).order_by(ShareLink.id))
    archive.writestr("share-links.json", json.dumps({"share_links": [{
        "photo": exports.photo_file_name(link.run.photo), "analysis_id": link.run.public_id,
        "created_at": link.created_at.isoformat(), "lifetime": lifetime_name(link.lifetime_seconds),
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None, "views": link.views,
    } for link in links]}, indent=2))
    keys = db.session.scalars(sa.select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    archive.writestr("api-keys.json", json.dumps({"api_keys": [{
        "name": key.name, "prefix": key.prefix, "scope": key.scope, "save_to_gallery": key.save_to_gallery,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    } for key in keys]}, indent=2))


def _text(raw):
    return io.TextIOWrapper(raw, encoding="utf-8")


def _iso(moment) -> Optional[str]:
    return moment.isoformat() if moment is not None else None


def _photo(photo: Photo) -> dict:
    return {
        "file": f"originals/{exports.photo_file_name(photo)}", "original_filename": photo.original_filename,
        "sha256": photo.sha256, "width": photo.width, "height": photo.height, "uploaded_at": _iso(photo.created_at),
        "taken_at": _iso(photo.taken_at), "taken_offset_minutes": photo.taken_offset, "taken_from": photo.taken_source,
        "camera": {"make": photo.camera_make, "model": photo.camera_model},
        "location": {"latitude": photo.latitude, "longitude": photo.longitude} if photo.has_location else None,
        "in_trash_since": _iso(photo.trashed_at),
    }


def _run(run: Run) -> dict:
    return {
        "id": run.public_id, "photo": f"originals/{exports.photo_file_name(run.photo)}", "shown": run.current,
        "status": run.status.value, "error": run.error, "model": run.model or "default", "model_file": run.model_name,
        "settings": {"conf": run.conf, "iou": run.iou, "imgsz": run.imgsz, "classes": run.classes},
        "device": run.device, "queued_at": _iso(run.queued_at), "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "timings_ms": {"preprocess": run.preprocess_ms, "inference": run.inference_ms,
                       "postprocess": run.postprocess_ms, "total": run.total_ms},
        "detections": [d.as_dict() for d in run.detections],
    }


# ---- what the account page calls ----

def latest(user: User) -> Optional[Takeout]:
    """The account's latest takeout, if it is still of use (an expired one is purged here)."""
    takeout = db.session.scalar(sa.select(Takeout).where(Takeout.user_id == user.id)
                                .order_by(Takeout.id.desc()).limit(1))
    if takeout is None:
        return None
    if takeout.expires_at is not None and takeout.expires_at <= utcnow():
        _discard([takeout])
        return None
    if _stale(takeout):
        takeout.status, takeout.error = TakeoutStatus.FAILED.value, "It was interrupted: try again."
        db.session.commit()
    return takeout


def _stale(takeout: Takeout) -> bool:
    return (takeout.status in (TakeoutStatus.QUEUED, TakeoutStatus.BUILDING)
            and (utcnow() - takeout.created_at).total_seconds() > STALE_SECONDS)


def start(user: User) -> Takeout:
    """Queue a new takeout (the older ones go). Raises TakeoutBusy while one is being made, and
    QueueUnavailable (the row says it failed)."""
    current = latest(user)
    if current is not None and current.status in (TakeoutStatus.QUEUED, TakeoutStatus.BUILDING):
        raise TakeoutBusy()
    _discard(list(db.session.scalars(sa.select(Takeout).where(Takeout.user_id == user.id))))
    takeout = Takeout(user_id=user.id)
    db.session.add(takeout)
    db.session.commit()
    try:
        get_runner().submit(build, takeout.id)
    except Exception:
        _update(takeout.id, status=TakeoutStatus.FAILED, error="The job queue cannot be reached: try again later.")
        raise
    takeout_id = takeout.id
    db.session.rollback()  # a new transaction: what the job wrote (inline) is seen
    return db.session.get(Takeout, takeout_id)


def file_of(user: User, public_id: str) -> tuple[Takeout, Path]:
    """The ready zip of this account's takeout. Raises NotFound, or Gone once it has expired."""
    takeout = db.session.scalar(sa.select(Takeout).where(Takeout.public_id == public_id, Takeout.user_id == user.id))
    if takeout is None or takeout.status != TakeoutStatus.READY or not takeout.path:
        raise NotFound(NOT_FOUND)
    if takeout.expires_at is not None and takeout.expires_at <= utcnow():
        _discard([takeout])
        raise Gone(EXPIRED)
    path = storage.absolute(takeout.path)
    if not path.is_file():
        raise NotFound(NOT_FOUND)
    return takeout, path


def _discard(takeouts: list[Takeout]) -> None:
    files = [t.path for t in takeouts if t.path]
    for takeout in takeouts:
        db.session.delete(takeout)
    db.session.commit()
    storage.delete(files)


def purge_expired() -> int:
    """Delete every account's takeouts past their time (the Trash's purging thread calls this)."""
    expired = list(db.session.scalars(sa.select(Takeout).where(Takeout.expires_at <= utcnow())))
    if expired:
        _discard(expired)
    return len(expired)


trash.ALSO_PURGED.append(purge_expired)
