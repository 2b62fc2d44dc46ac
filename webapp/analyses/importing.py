"""`flask import-photos`: a photo library added for one user through the same path as uploads
(validation, stored original, thumbnail, a pending analysis, the batched detection stream)."""
import hashlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import sqlalchemy as sa
from flask import current_app

from webapp import jobs
from webapp.analyses import services
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus, Photo, User
from webapp.vision.images import ImageRejected

# What a library folder may hold that the app reads (by extension; the content is still checked).
SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
POLL_SECONDS = 0.5


@dataclass
class ImportReport:
    found: int = 0  # supported files under the paths
    imported: list[int] = field(default_factory=list)  # analysis ids queued
    already: int = 0  # same content already in the user's library (or twice in this import)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    ignored: int = 0  # files of other kinds
    retried: list[int] = field(default_factory=list)  # already there, failed or interrupted: run again


def library_files(paths: Iterable[Path]) -> tuple[list[Path], int]:
    """The image files under `paths`, in a stable order, and how many other entries were
    ignored. A folder is searched recursively for supported extensions (hidden files and folders
    skipped; links to folders not followed, so a link loop is harmless); a file named itself is
    taken whatever its extension (its content decides)."""
    found, ignored = [], 0
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in candidate.relative_to(path).parts) or candidate.is_dir():
                continue
            if candidate.suffix.lower() in SUFFIXES and candidate.is_file():
                found.append(candidate)
            else:
                ignored += 1  # other kinds of files, broken links, pipes, sockets
    return list(dict.fromkeys(found)), ignored


def import_photos(user: User, files: list[Path], progress: Callable[[int], None] = lambda n: None) -> ImportReport:
    """Queue every file not already in the user's library (same sha256); a photo already there
    whose analysis failed (or was interrupted) is run again. In-process detection is fed no
    faster than it runs (a few photos ahead), so decoded photos are handed to it rather than
    read twice, and memory stays flat however large the library. Raises jobs.QueueUnavailable
    (nothing half-imported) when the broker goes down, KeyboardInterrupt as it comes."""
    report = ImportReport(found=len(files))
    config = current_app.config
    existing = dict(db.session.execute(  # each photo's shown run's status
        sa.select(Photo.sha256, Analysis.status).join(Analysis, Analysis.photo_id == Photo.id)
        .where(Photo.user_id == user.id, Analysis.shown)).tuples().all())
    known = set(existing)
    runner = jobs.get_runner()
    ahead = config["DETECT_WINDOW"] + 2
    outstanding: set[Future] = set()
    to_retry: set[str] = set()
    queued = services.queued_count(user)
    for path in files:
        problem, data = _read(path, config["MAX_CONTENT_LENGTH"])
        if problem:
            report.refused.append((path, problem))
            progress(1)
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in known:
            report.already += 1
            if existing.get(digest) == AnalysisStatus.FAILED:
                to_retry.add(digest)
            progress(1)
            continue
        try:
            analysis, loaded = services.accept_upload(user, path.name, data)
        except (ImageRejected, services.QuotaExceeded) as exc:
            report.refused.append((path, str(exc)))
            progress(1)
            continue
        known.add(digest)
        try:
            future = runner.submit(services.pipeline.run_analysis, analysis.id,
                                   local={"image_bgr": loaded.bgr_array()} if runner.in_process else None,
                                   priority=services.fair_priority(queued))
        except jobs.QueueUnavailable:
            services.delete_analysis(analysis)  # nothing half-imported: re-running picks it up
            raise
        del loaded
        queued += 1
        report.imported.append(analysis.id)
        if future is not None:
            outstanding.add(future)
            if len(outstanding) > ahead:
                _, outstanding = wait(outstanding, return_when=FIRST_COMPLETED)
        progress(1)
    if to_retry:
        failed = list(db.session.scalars(sa.select(Analysis).join(Photo, Photo.id == Analysis.photo_id).where(
            Photo.user_id == user.id, Photo.sha256.in_(to_retry), Analysis.shown,
            Analysis.status == AnalysisStatus.FAILED)))
        retried = services.retry(failed)
        report.retried = [a.id for a in retried.accepted]
    return report


def _read(path: Path, limit: int) -> tuple[Optional[str], bytes]:
    """(why the file is refused, or None; its bytes). Never reads more than `limit` bytes."""
    try:
        if not path.is_file():
            return "not a regular file (a folder link, a pipe, a device or a broken link)", b""
        size = path.stat().st_size
        if size > limit:
            return f"larger than the upload limit ({size / 2**20:.1f} MB, the limit is {limit / 2**20:g} MB)", b""
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}", b""
    if len(data) > limit:
        return f"larger than the upload limit ({limit / 2**20:g} MB)", b""
    return None, data


def wait_for(ids: list[int], progress: Callable[[int], None] = lambda n: None,
             timeout: Optional[float] = None) -> dict[AnalysisStatus, int]:
    """Until none of these analyses is pending or running (in this process or on workers);
    their count by status."""
    deadline = time.monotonic() + timeout if timeout else None
    finished = 0
    while True:
        db.session.rollback()  # a new transaction: what the workers committed is seen
        counts = _counts(ids)
        now_finished = sum(n for status, n in counts.items() if status not in AnalysisStatus.active())
        progress(now_finished - finished)
        finished = now_finished
        if finished >= sum(counts.values()) or (deadline and time.monotonic() > deadline):
            return counts
        time.sleep(POLL_SECONDS)


def _counts(ids: list[int]) -> dict[AnalysisStatus, int]:
    counts: dict[AnalysisStatus, int] = {}
    for start in range(0, len(ids), 1000):
        for status, n in db.session.execute(sa.select(Analysis.status, sa.func.count()).where(
                Analysis.id.in_(ids[start:start + 1000])).group_by(Analysis.status)):
            counts[status] = counts.get(status, 0) + n
    return counts
