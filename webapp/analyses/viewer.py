"""What a run's page shows: the box viewer's data (the detail and shared pages), two runs
compared, and the annotated image drawn for what the viewer shows (a confidence and classes)."""
import hashlib
from typing import Optional

from flask import current_app

from webapp import storage
from webapp.errors import NotFound
from webapp.models import Run
from webapp.vision.detector import Box
from webapp.vision.draw import class_color_hex, draw_boxes, encode_jpeg, line_width, text_color_hex
from webapp.vision.images import decode


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
    return line_width(run.photo.height, run.photo.width) * 7


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
        band = font * 1.25
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
    """What identifies a drawn view: the run, when it finished, the confidence and classes.
    NotFound until the run is done (there is nothing to draw)."""
    if not run.is_done or not storage.absolute(run.photo.original_path).is_file():
        raise NotFound("This analysis has no annotated image (yet).")
    return hashlib.sha256(repr((run.public_id, run.finished_at, min_conf,
                                sorted(classes) if classes is not None else None)).encode()).hexdigest()[:32]


def draw_view(run: Run, min_conf: float, classes: Optional[frozenset[str]]) -> bytes:
    """The annotated image as the viewer shows it: the stored boxes at `min_conf` and above, of
    `classes` only (None: every class), drawn on the upright original exactly as the stored
    annotated image is drawn."""
    path = storage.absolute(run.photo.original_path)
    boxes = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2)
             for d in run.detections_at(min_conf) if classes is None or d.label in classes]
    pixels = decode(path.read_bytes(), current_app.config["MAX_IMAGE_PIXELS"]).pixels
    return encode_jpeg(draw_boxes(pixels, boxes))
