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
from webapp.models import Analysis, AnalysisStatus, User
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


def library_files(paths: Iterable[Path]) -> tuple[list[Path], int]:
    """Supported image files under `paths` (files, and folders recursively; hidden ones skipped),
    in a stable order, and how many other files were ignored."""
    found, ignored = [], 0
    for path in paths:
        candidates = [path] if path.is_file() else sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        for candidate in candidates:
            if candidate.suffix.lower() in SUFFIXES:
                found.append(candidate)
            else:
                ignored += 1
    return list(dict.fromkeys(found)), ignored


def import_photos(user: User, files: list[Path], progress: Callable[[int], None] = lambda n: None) -> ImportReport:
    """Queue every file not already in the user's library (same sha256). In-process detection
    is fed no faster than it runs (a few photos ahead), so decoded photos are handed to it
    rather than read twice, and memory stays flat however large the library."""
    report = ImportReport(found=len(files))
    known = set(db.session.scalars(sa.select(Analysis.sha256).where(Analysis.user_id == user.id)))
    runner = jobs.get_runner()
    ahead = current_app.config["DETECT_WINDOW"] + 2
    outstanding: set[Future] = set()
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.refused.append((path, f"cannot be read: {exc.strerror or exc}"))
            progress(1)
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in known:
            report.already += 1
            progress(1)
            continue
        try:
            analysis, loaded = services.accept_upload(user, path.name, data)
        except ImageRejected as exc:
            report.refused.append((path, str(exc)))
            progress(1)
            continue
        known.add(digest)
        try:
            future = runner.submit(services.pipeline.run_analysis, analysis.id,
                                   local={"image_bgr": loaded.bgr_array()} if runner.in_process else None)
        except jobs.QueueUnavailable:
            services.delete_analysis(analysis)  # nothing half-imported: re-running picks it up
            raise
        del loaded
        report.imported.append(analysis.id)
        if future is not None:
            outstanding.add(future)
            if len(outstanding) > ahead:
                _, outstanding = wait(outstanding, return_when=FIRST_COMPLETED)
        progress(1)
    return report


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
