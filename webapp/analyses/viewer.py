"""What a run's page shows: the box viewer's data (the detail and shared pages), two runs
compared, and the annotated image drawn for what the viewer shows (a confidence and classes).

Drawing a view decodes the photo in the web process, so its cost is bounded: a view drawn once is
kept (the latest VIEWS_KEPT of each run, in its photo's folder) and sent again without drawing
(so is a shared copy of a photo that had to be encoded again from its pixels),
and a process draws at most DRAW_CONCURRENCY views at once, in threads of detection's priority
(a request waits DRAW_WAIT_SECONDS for its turn, then is told to try again; while as many wait,
another is told at once; up to DRAW_CONCURRENCY requests for an image being drawn wait for that
drawing instead).
Who may ask for how many is the web layer's limit."""
import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import sqlalchemy as sa
from flask import current_app

from webapp import storage
from webapp.errors import NotFound, Refused
from webapp.extensions import db
from webapp.jobs.processes import yield_cpu
from webapp.models import Run
from webapp.vision.detector import Box
from webapp.vision.draw import (BAND, class_color_hex, draw_boxes, draw_frames, encode_jpeg, label_size, line_width,
                                text_color_hex)
from webapp.vision.images import ImageRejected, decode, encoded_again, stripped


def viewer(run: Run) -> dict:
    """What the box viewer (`_viewer.html`) is drawn from: each detection with its exact
    confidence (not the 4 decimals of as_dict, so the page's slider counts the boxes exactly as
    the server draws them) and index, each box as the SVG overlay draws it, the labels, their
    colours and how many boxes of each the run shows at its own threshold."""
    detections = [{**d.as_dict(), "confidence": d.confidence, "index": i} for i, d in enumerate(run.detections)]
    return {
        "detections": detections,
        "boxes": overlay_boxes(run, detections),
        "label_font": label_font(run),
        "labels": sorted({d.label for d in run.detections}),
        "colors": colors(run),
        "counts": run.label_counts(),
    }


def label_font(run: Run) -> int:
    """The overlay's labels' size, in the photo's pixels (seven times its boxes' line)."""
    return label_size(run.photo.height, run.photo.width)


def overlay_boxes(run: Run, detections: list[dict]) -> list[dict]:
    """Each detection as the overlay draws it, in the photo's pixels: its frame, and its label
    on a band of the class's colour in black or white (as the annotated image is drawn), above
    the box where there is room, else inside it; the largest boxes first, so the small ones are
    on top and can be pointed at. Labels are drawn at a size the page's script scales up when
    the photo is shown small (`--label-k`)."""
    line, font = line_width(run.photo.height, run.photo.width), label_font(run)
    found = []
    for d, detection in zip(run.detections, detections, strict=True):
        text = f"{d.label} {d.confidence:.2f}"
        band = font * BAND
        above = d.y1 - band >= 0
        top = d.y1 - band if above else d.y1
        found.append({**detection, "text": text, "line": line, "font": font, "above": above,
                      "color": class_color_hex(d.class_id), "ink": text_color_hex(d.class_id),
                      "frame": (d.x1, d.y1, max(0.0, d.x2 - d.x1), max(0.0, d.y2 - d.y1)),
                      "band": (d.x1, top, len(text) * font * 0.6 + font * 0.5, band),
                      "at": (d.x1 + font * 0.25, top + font), "area": (d.x2 - d.x1) * (d.y2 - d.y1)})
    return sorted(found, key=lambda box: -box["area"])


def colors(*runs: Run) -> dict[str, str]:
    """{label: its colour} of these runs' detections."""
    return {d.label: class_color_hex(d.class_id) for run in runs for d in run.detections}


def compare(first: Run, second: Run) -> list[tuple[str, int, int]]:
    """(label, boxes in the first, boxes in the second) for every label either run shows."""
    counts = [first.label_counts(), second.label_counts()]
    return [(label, counts[0][label], counts[1][label]) for label in sorted(set(counts[0]) | set(counts[1]))]


def view_tag(run: Run, min_conf: float, classes: Optional[frozenset[str]]) -> str:
    """What identifies a drawn view: the run, when it finished, and the boxes drawn (so every
    confidence and set of classes that draws the same boxes is one view, drawn once). NotFound
    until the run is done (there is nothing to draw)."""
    if not run.is_done or not storage.absolute(run.photo.original_path).is_file():
        raise NotFound("This analysis has no annotated image (yet).")
    drawn = sorted(d.id for d in run.detections_at(min_conf) if classes is None or d.label in classes)
    return hashlib.sha256(repr((run.public_id, run.finished_at, drawn)).encode()).hexdigest()[:32]


def draw_view(run: Run, min_conf: float, classes: Optional[frozenset[str]]) -> bytes:
    """The annotated image as the viewer shows it: the stored boxes at `min_conf` and above, of
    `classes` only (None: every class), drawn on the upright original exactly as the stored
    annotated image is drawn."""
    path = storage.absolute(run.photo.original_path)
    boxes = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2)
             for d in run.detections_at(min_conf) if classes is None or d.label in classes]
    return _painters().submit(paint, path, boxes, current_app.config["MAX_IMAGE_PIXELS"]).result()


def paint(path, boxes: list[Box], max_pixels: int) -> bytes:
    """The photo at `path` decoded, these boxes drawn on it, as a JPEG."""
    return encode_jpeg(draw_boxes(decode(path.read_bytes(), max_pixels).image, boxes))


THUMBNAIL_PIXELS = 4_000_000  # a stored thumbnail is far smaller (THUMBNAIL_SIZE on its long side)
VIEWS_KEPT = 8  # drawn views kept per run (the latest asked for); older ones are drawn again
DRAW_WAIT_SECONDS = 10
BUSY = "Too many images are being drawn right now. Please try again in a moment."
COULD_NOT_DRAW = "This image could not be drawn just now. Please try again in a moment."
_turns: dict[int, threading.BoundedSemaphore] = {}
_turns_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_queued = 0  # requests drawing or waiting to, in this process
_underway: dict[str, Future] = {}  # images being made in this process, by path
_waiting = 0  # requests waiting for an image being made (`_once`), in this process


def kept_view(run: Run, tag: str, extension: str = "jpg") -> Optional[bytes]:
    """A view made before (`tag` from view_tag, or a shared copy's), or None."""
    path, data = storage.absolute(_view_path(run, tag, extension)), b""
    try:
        data = path.read_bytes()
        os.utime(path)  # the latest asked for are the ones kept (never made again here: a removed one stays so)
    except FileNotFoundError:
        pass
    return data if data else None


def draw_and_keep(run: Run, min_conf: float, classes: Optional[frozenset[str]], tag: str) -> bytes:
    """`draw_view`, in this process's turn, kept for the next time it is asked for."""
    return _make_and_keep(run, tag, "jpg", lambda: draw_view(run, min_conf, classes))


def shared_copy(run: Run, tag: str) -> bytes:
    """The photo as someone other than its owner gets it (`vision.images.public_copy`): its own
    bytes with only what decoding needs, or, for a file that cannot be walked, encoded again from
    its pixels, in this process's turn, and kept like a view (tagged `tag`)."""
    extension = run.photo.shown_path.rsplit(".", 1)[-1]
    tag = f"shared-{tag}"
    kept = kept_view(run, tag, extension)
    if kept is not None:
        return kept
    data = storage.absolute(run.photo.shown_path).read_bytes()
    copy = stripped(data, extension)
    if copy is not None:
        return copy
    max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
    return _make_and_keep(run, tag, extension,
                          lambda: _painters().submit(encoded_again, data, extension, max_pixels).result())


def annotated_file(run: Run, patient: bool = False) -> Optional[Path]:
    """The run's full-size annotated image (None until the run is done, or when its photo is
    gone): drawn the first time anyone asks for it (the boxes at the run's own threshold, as the
    page and the API always showed it), in this process's turn (waiting up to DRAW_WAIT_SECONDS;
    `patient`, an export: as long as it takes), then kept where the run says (`annotated_path`)
    and sent as it is from then on."""
    if not run.is_done or not run.annotated_path:
        return None
    path = storage.absolute(run.annotated_path)
    if path.is_file():
        return path
    if not storage.absolute(run.photo.original_path).is_file():
        return None
    wait = None if patient else DRAW_WAIT_SECONDS

    def draw_and_keep_it() -> Optional[bytes]:
        data = _in_turn(lambda: draw_view(run, run.conf, None), wait)
        return data if _keep(run, run.annotated_path, data) else None

    return path if _once(run.annotated_path, draw_and_keep_it, patient) is not None else None


def annotated_thumbnail(run: Run) -> Optional[Path]:
    """The run's annotated thumbnail (None until it is done, or without a thumbnail): the
    frames of its boxes at its own threshold drawn on the photo's thumbnail, the first time it is
    asked for, then kept. A few milliseconds of a small image: no turn to wait for."""
    if not run.is_done or not run.photo.thumbnail_path:
        return None
    path = storage.absolute(run.annotated_thumbnail_path)
    if path.is_file():
        return path
    try:
        small = decode(storage.absolute(run.photo.thumbnail_path).read_bytes(), THUMBNAIL_PIXELS).image
    except (FileNotFoundError, ImageRejected):
        return None
    boxes = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2) for d in run.detections_at()]
    drawn = encode_jpeg(draw_frames(small, boxes, small.width / max(1, run.photo.width)), quality=80)
    return path if _keep(run, run.annotated_thumbnail_path, drawn) else None


def _make_and_keep(run: Run, tag: str, extension: str, make: Callable[[], bytes]) -> bytes:
    """`make()` in this process's turn, kept as the run's view `tag` (see `_once`)."""
    relative = _view_path(run, tag, extension)

    def make_and_keep() -> bytes:
        data = _in_turn(make, DRAW_WAIT_SECONDS)
        if _keep(run, relative, data):
            _forget_old_views(run)
        return data

    return _once(relative, make_and_keep)


def _once(relative: str, make: Callable[[], Optional[bytes]], patient: bool = False) -> Optional[bytes]:
    """`make()` (which draws in a turn and keeps the file at `relative`), unless that file is
    being made in this process already (the page shows an image and its download asks for it at
    once): then its result, waited for, not made twice (the maker waits a bounded time for its
    turn, then draws; None: the run went meanwhile). DRAW_CONCURRENCY such waiters at most in a
    process (a `patient` one, an export, always waits); another is told to try again. So views
    hold at most three times DRAW_CONCURRENCY of a process's threads: drawing, waiting for a
    turn, waiting for a drawing. A waiter whose maker was refused is told the same; one whose
    maker failed, that it could not be drawn."""
    global _waiting
    with _turns_lock:
        underway = _underway.get(relative)
        if underway is None:
            _underway[relative] = mine = Future()
        elif not patient and _waiting >= max(1, current_app.config["DRAW_CONCURRENCY"]):
            raise Refused(BUSY, Refused.UNAVAILABLE, retry_after=2)
        elif not patient:
            _waiting += 1
    if underway is not None:
        try:
            return underway.result()
        finally:
            if not patient:
                with _turns_lock:
                    _waiting -= 1
    try:
        data = make()
    except BaseException as exc:
        message = str(exc) if isinstance(exc, Refused) else COULD_NOT_DRAW
        mine.set_exception(Refused(message, Refused.UNAVAILABLE, retry_after=2))
        raise
    else:
        mine.set_result(data)
        return data
    finally:
        with _turns_lock:
            _underway.pop(relative, None)


def _in_turn(make: Callable[[], bytes], wait: Optional[float]) -> bytes:
    """`make()` in one of this process's turns at drawing; Refused UNAVAILABLE when none comes
    within `wait` seconds (None: waits as long as it takes), or at once when as many wait already."""
    turn = _turn()
    if wait is not None and not _queue_for(turn):
        raise Refused(BUSY, Refused.UNAVAILABLE, retry_after=2)
    try:
        if not turn.acquire(timeout=wait if wait is not None else -1):
            raise Refused(BUSY, Refused.UNAVAILABLE, retry_after=2)
        try:
            return make()
        finally:
            turn.release()
    finally:
        if wait is not None:
            _leave_queue()


def _keep(run: Run, relative: str, data: bytes) -> bool:
    """Store `data` at `relative`, unless the run was deleted meanwhile (then nothing is kept)."""
    run_id = run.id
    storage.save(relative, data)
    db.session.rollback()  # a new transaction: a delete committed meanwhile is seen
    if db.session.scalar(sa.select(Run.id).where(Run.id == run_id)) is None:
        storage.delete([relative])
        return False
    return True


def view_files(run: Run) -> list[str]:
    """The run's kept views (relative paths): what deleting the run removes with it."""
    folder = storage.absolute(f"{run.photo.folder}/views")
    return [f"{run.photo.folder}/views/{p.name}" for p in folder.glob(f"{run.public_id}-*")]


def _view_path(run: Run, tag: str, extension: str = "jpg") -> str:
    return f"{run.photo.folder}/views/{run.public_id}-{tag}.{extension}"


def _forget_old_views(run: Run) -> None:
    folder = storage.absolute(f"{run.photo.folder}/views")
    views = sorted((p for p in folder.glob(f"{run.public_id}-*") if "-shared-" not in p.name), key=_age_key,
                   reverse=True)  # (a shared copy, made once, stays)
    for old in views[VIEWS_KEPT:]:
        old.unlink(missing_ok=True)


def _age_key(path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _painters() -> ThreadPoolExecutor:
    """This process's threads that draw views, at detection's priority (DETECT_NICE): a request
    waits for its view there, and other requests go first for the CPU meanwhile."""
    global _pool
    with _turns_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, current_app.config["DRAW_CONCURRENCY"]),
                                       thread_name_prefix="draw", initializer=yield_cpu,
                                       initargs=(current_app.config["DETECT_NICE"],))
        return _pool


def _queue_for(turn) -> bool:
    """Whether a request may wait for its turn to draw: one waits at most per turn (the others are
    told to try again at once), so drawing views never holds more than twice DRAW_CONCURRENCY of a
    process's threads, whoever asks for them."""
    global _queued
    with _turns_lock:
        if _queued >= 2 * max(1, current_app.config["DRAW_CONCURRENCY"]):
            return False
        _queued += 1
        return True


def _leave_queue() -> None:
    global _queued
    with _turns_lock:
        _queued -= 1


def _turn() -> threading.BoundedSemaphore:
    """This process's turns at drawing (DRAW_CONCURRENCY of them)."""
    size = max(1, current_app.config["DRAW_CONCURRENCY"])
    with _turns_lock:
        return _turns.setdefault(size, threading.BoundedSemaphore(size))
