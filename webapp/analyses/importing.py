"""`flask import-photos`: a photo library added for one user through the same path as uploads
(validation, stored original, thumbnail, a pending run, the batched detection stream)."""
import hashlib
import io
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import sqlalchemy as sa
from flask import current_app

from webapp.analyses.quotas import QuotaExceeded
from webapp.analyses.uploads import accept_and_queue, retry
from webapp.extensions import db
from webapp.jobs.priorities import FairShare
from webapp.jobs.queue import run_statuses, wait_for_runs
from webapp.models import Photo, Run, RunStatus, User
from webapp.storage import human_size
from webapp.vision.images import ImageRejected

# What a library folder may hold that the app reads (by extension; the content is still checked).
# In-process detection is fed at most this many photos ahead of what it has finished: an import
# stopped midway leaves few pending runs (queued again at the next start), and uploads at the same
# time are not queued behind the whole library (see priorities.py).
AHEAD = 32
SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}


@dataclass
class ImportReport:
    found: int = 0  # supported files under the paths
    imported: list[int] = field(default_factory=list)  # run ids queued
    already: int = 0  # same content already in the user's library (or twice in this import)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    ignored: int = 0  # files of other kinds
    retried: list[int] = field(default_factory=list)  # already there, failed or interrupted: run again


OUTSIDE = "a link that leads out of the folder given: not followed"
UPLOADS = "inside the app's upload folder: photos there are already someone's, never imported"


def library_files(paths: Iterable[Path], uploads: Optional[Path] = None
                  ) -> tuple[list[Path], int, list[tuple[Path, str]]]:
    """The image files under `paths`, in a stable order; how many other entries were ignored;
    and the files refused, with the reason. A folder is searched recursively for supported
    extensions (hidden files and folders skipped; links to folders not followed, so a link loop
    is harmless; a link to a file outside that folder refused); a file named itself is taken
    whatever its extension (its content decides). Nothing in `uploads` (the app's own upload
    folder, every user's photos) is ever taken, however it is reached."""
    found, ignored, refused = [], 0, []
    uploads = uploads.resolve() if uploads is not None else None

    def take(candidate: Path, within: Optional[Path]) -> None:
        real = candidate.resolve()
        if uploads is not None and (real == uploads or uploads in real.parents):
            refused.append((candidate, UPLOADS))
        elif within is not None and within not in real.parents:
            refused.append((candidate, OUTSIDE))
        else:
            found.append(candidate)

    for path in paths:
        if not path.is_dir():
            take(path, None)
            continue
        root = path.resolve()
        for candidate in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in candidate.relative_to(path).parts) or candidate.is_dir():
                continue
            if candidate.suffix.lower() in SUFFIXES and candidate.is_file():
                take(candidate, root)
            else:
                ignored += 1  # other kinds of files, broken links, pipes, sockets
    return list(dict.fromkeys(found)), ignored, refused


def import_photos(user: User, files: list[Path], progress: Callable[[int], None] = lambda n: None) -> ImportReport:
    """Queue every file not already in the user's library (same sha256); a photo already there
    whose current run failed (or was interrupted) is run again. Only headers are read here; the
    detection stream decodes each photo, fed no faster than it runs (AHEAD photos ahead). Raises QueueUnavailable
    (nothing half-imported) when the broker goes down, KeyboardInterrupt as it comes."""
    report = ImportReport(found=len(files))
    config = current_app.config
    existing = _current_statuses(user)
    known = set(existing)
    outstanding: set[Future] = set()
    to_retry: set[str] = set()
    share = FairShare(user.id)
    for path in files:
        try:
            problem, data = _read(path, config["MAX_CONTENT_LENGTH"])
            if problem:
                report.refused.append((path, problem))
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in known:
                report.already += 1
                if existing.get(digest) == RunStatus.FAILED:
                    to_retry.add(digest)
                continue
            future = _import_one(user, path, data, share, report)
            if future is False:
                continue
            known.add(digest)
            if future is not None:
                outstanding.add(future)
                if len(outstanding) > AHEAD:
                    _, outstanding = wait(outstanding, return_when=FIRST_COMPLETED)
        finally:
            progress(1)
    if to_retry:
        report.retried = [r.id for r in retry(_failed_runs(user, to_retry)).accepted]
    return report


def _import_one(user: User, path: Path, data: bytes, share: FairShare, report: ImportReport):
    """Store one photo and queue its run: its Future (None on Celery), or False when refused.
    Raises QueueUnavailable (the photo deleted again: running the import again picks it up)."""
    try:
        run, future = accept_and_queue(user, path.name, io.BytesIO(data), None, share)
    except (ImageRejected, QuotaExceeded) as exc:
        report.refused.append((path, str(exc)))
        return False
    report.imported.append(run.id)
    return future


def _current_statuses(user: User) -> dict[str, RunStatus]:
    """{sha256: status of its current run} of every photo the user has."""
    return dict(db.session.execute(
        sa.select(Photo.sha256, Run.status).join(Run, Run.photo_id == Photo.id)
        .where(Photo.user_id == user.id, Run.current)).tuples().all())


def _failed_runs(user: User, digests: set[str]) -> list[Run]:
    return list(db.session.scalars(sa.select(Run).join(Photo, Photo.id == Run.photo_id).where(
        Photo.user_id == user.id, Photo.sha256.in_(digests), Run.current, Run.status == RunStatus.FAILED)))


def _read(path: Path, limit: int) -> tuple[Optional[str], bytes]:
    """(why the file is refused, or None; its bytes). Never reads more than `limit` bytes."""
    try:
        if not path.is_file():
            return "not a regular file (a folder link, a pipe, a device or a broken link)", b""
        size = path.stat().st_size
        if size > limit:
            return f"larger than the upload limit ({human_size(size)}, the limit is {human_size(limit)})", b""
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}", b""
    if len(data) > limit:
        return f"larger than the upload limit ({human_size(limit)})", b""
    return None, data


def wait_for(ids: list[int], progress: Callable[[int], None] = lambda n: None,
             timeout: Optional[float] = None) -> dict[RunStatus, int]:
    """Until none of these runs is pending or running (in this process or on workers); their
    count by status."""
    wait_for_runs(ids, timeout=timeout, progress=progress)
    return run_statuses(ids)
