"""Image files under UPLOAD_DIR, named by the server (never by the client): the photos' folders,
and short-lived temporary files that a web process hands to a worker through the shared folder."""
import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app

logger = logging.getLogger(__name__)

TEMPORARY_FOLDER = "deepstack-tmp"  # a photo on its way to a worker; read once, then removed
TEMPORARY_MAX_AGE_SECONDS = 3600  # older ones were left by a process that died while it waited
CHUNK = 1 << 20  # bytes copied at a time from an upload to its file


def init_app(app) -> None:
    Path(app.config["UPLOAD_DIR"]).mkdir(parents=True, exist_ok=True)


def root() -> Path:
    return Path(current_app.config["UPLOAD_DIR"])


def absolute(relative: str) -> Path:
    """The absolute path of a stored file; refuses anything that would leave UPLOAD_DIR."""
    base = root().resolve()
    path = (base / relative).resolve()
    if base not in path.parents:
        raise ValueError(f"path outside the upload folder: {relative!r}")
    return path


def save(relative: str, data: bytes) -> None:
    """Write atomically (temporary file, then rename), so readers never see half a file."""
    path = absolute(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Received:
    """A file written from a stream: where (relative), its SHA-256 and its size."""

    path: str
    sha256: str
    size: int


def receive(source: BinaryIO, folder: str) -> Received:
    """Copy `source` (from its start) into a new hidden file in `folder`, a chunk at a time and
    hashing on the way: an upload is never held whole in memory. `move` gives it its name."""
    base = absolute(folder)
    base.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=base, prefix=".incoming-")
    digest, size = hashlib.sha256(), 0
    try:
        source.seek(0)
        with os.fdopen(fd, "wb") as f:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                f.write(chunk)
                size += len(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Received(f"{folder}/{Path(tmp).name}", digest.hexdigest(), size)


def sha256_of(source: BinaryIO) -> str:
    """The SHA-256 of a stream's bytes, read a chunk at a time; the stream is rewound."""
    source.seek(0)
    digest = hashlib.file_digest(source, "sha256").hexdigest()
    source.seek(0)
    return digest


def move(relative: str, to: str) -> None:
    """Rename a stored file (atomically: readers see the whole file or none)."""
    os.replace(absolute(relative), absolute(to))


def delete(relatives: list[str]) -> None:
    """Remove the files and then their folders when empty; missing files are fine."""
    folders = set()
    for relative in relatives:
        try:
            path = absolute(relative)
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        except (OSError, ValueError):
            logger.exception("Could not delete stored file %s", relative)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _remove_empty(folder)


def delete_folder(relative: str) -> None:
    """Remove a folder under UPLOAD_DIR with everything in it, then its parents when empty."""
    try:
        folder = absolute(relative)
        shutil.rmtree(folder, ignore_errors=True)
    except ValueError:
        logger.exception("Refused to delete %s", relative)
        return
    _remove_empty(folder.parent)


def _remove_empty(folder: Path) -> None:
    base = root().resolve()
    while folder != base and base in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def save_temporary(data: bytes, extension: str) -> str:
    """Write a temporary file (for a worker to read once), returning its relative path."""
    relative = f"{TEMPORARY_FOLDER}/{uuid.uuid4().hex}.{extension}"
    save(relative, data)
    return relative


def sweep_temporary(max_age: float = TEMPORARY_MAX_AGE_SECONDS) -> int:
    """Remove temporary files older than `max_age` seconds; how many were removed."""
    folder = root() / TEMPORARY_FOLDER
    now, removed = time.time(), 0
    for path in folder.glob("*") if folder.is_dir() else ():
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def human_size(size: int) -> str:
    """A size in bytes in words, in binary units as file managers count them: 20971520 → "20 MB",
    200000 → "195 KB", 999 → "999 bytes"."""
    for unit, step in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= step:
            value = size / step
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return f"{size:,} bytes"
