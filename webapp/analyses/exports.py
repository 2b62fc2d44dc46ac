"""Detections of one or many runs ("analyses" in the files, as in the API) as JSON, COCO, a YOLO
dataset or CSV, in the shapes the tools that read them expect (pycocotools, Ultralytics'
dataset loader, spreadsheets).

- **Which detections**: those at or above `min_conf`; when it is not given, each run's own
  threshold (its `conf`, 0.25 by default), i.e. the boxes its page shows. `min_conf=0` exports
  everything stored (down to YOLO_STORE_FLOOR), as an evaluation wants.
- **COCO**: image ids are the runs' numeric row ids (stable across exports), `file_name`s are
  unique and are the names the images have in a YOLO zip. Category ids are the official COCO ids
  (1-90, with gaps) when the model's classes are the 80 COCO classes, else the model's class ids;
  `info.category_ids` says which. `categories` lists every class of the model.
- **YOLO**: one run is its label file; several are a zip that Ultralytics loads as it is
  (`images/`, `labels/` with matching stems, `data.yaml` naming every class id, `classes.txt`
  with one name per line in id order). Its images are the upright photos the pages show, with
  no metadata (no location, camera serial, names): a dataset leaves the owner's account.
- **Location**: a photo's GPS position is in an export only when asked (`location`): then JSON
  and COCO images carry `location: {latitude, longitude}` (null where the photo has none) and
  CSV rows two more columns.
"""
import csv
import io
import json
import shutil
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Callable, Iterable, Optional, TextIO, Union

import yaml
from flask import current_app

from webapp import storage
from webapp.analyses import viewer
from webapp.detection.availability import DetectionUnavailable, class_names
from webapp.models import Run, utcnow
from webapp.vision.images import public_copy

# The 80 COCO classes in the order COCO-trained YOLO models number them (Ultralytics' coco.yaml),
# and the official COCO category id of each (Ultralytics' coco80_to_coco91_class); a test checks
# both against Ultralytics, which the torch-free web tier does not import.
COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)


@dataclass
class Export:
    body: Union[bytes, IO[bytes]]  # a large zip comes as a temporary file
    mimetype: str
    filename: str


def _safe(name: str, max_bytes: int = 80) -> str:
    """A file name's stem for downloads and datasets: letters, digits and marks (Devanagari's
    vowel signs, Arabic's vowels) of any script, `-` and `_` (anything else `_`), at most
    `max_bytes` in UTF-8 (so a stem, an id and a suffix stay well under a file system's 255
    bytes); "photo" when no letter or digit is left."""
    kept, size = [], 0
    for ch in unicodedata.normalize("NFC", name.rsplit(".", 1)[0]):
        ch = ch if ch.isalnum() or ch in "-_" or unicodedata.category(ch).startswith("M") else "_"
        size += len(ch.encode())
        if size > max_bytes:
            break
        kept.append(ch)
    return "".join(kept) if any(ch.isalnum() for ch in kept) else "photo"


def stem(run: Run) -> str:
    """A download's name: the photo's name and the start of its id."""
    return f"{_safe(run.photo.original_filename)}-{run.public_id[:8]}"


def dataset_stem(run: Run) -> str:
    """A photo's name in a dataset: unique (its whole public id), so files never clash."""
    return f"{_safe(run.photo.original_filename)}-{run.public_id}"


def dataset_file_name(run: Run) -> str:
    """The image's file name in COCO's `file_name` and in a YOLO zip's images/ (the upright
    photo pages show: the original, or its rendition)."""
    return dataset_stem(run) + PurePosixPath(run.photo.shown_path).suffix


def photo_file_name(photo) -> str:
    """An original's name in a takeout: the photo's own name and its row id (unique, short), with
    the extension of what was uploaded."""
    return f"{_safe(photo.original_filename)}-{photo.id}" + PurePosixPath(photo.original_path).suffix


def zip_stems(runs: list[Run]) -> dict[int, str]:
    """Each run's file stem in the gallery's zip: its photo's own name, where names clash (compared
    as a case-blind file system compares them) the later photo's with the start of its id."""
    stems: dict[int, str] = {}
    taken: set[str] = set()
    for run in sorted(runs, key=lambda r: r.id):
        name = _safe(run.photo.original_filename)
        for candidate in (name, f"{name}-{run.public_id[:8]}", f"{name}-{run.public_id}"):
            if candidate.casefold() not in taken:
                break
        taken.add(candidate.casefold())
        stems[run.id] = candidate
    return stems


def location_of(run: Run) -> Optional[dict]:
    photo = run.photo
    return {"latitude": photo.latitude, "longitude": photo.longitude} if photo.has_location else None


@dataclass(frozen=True)
class Classes:
    """The model's classes by id, and the COCO category id of each."""

    names: dict[int, str]
    official_coco: bool

    def category_id(self, class_id: int) -> int:
        return COCO_CATEGORY_IDS[class_id] if self.official_coco else class_id


def model_classes(runs: list[Run], stored: Optional[dict[int, str]] = None) -> Classes:
    """Every class of the model. Its names come from the model when it can say (loaded here, or
    as a worker reported them); the ids' scheme does not depend on that: the detections stored
    with the runs decide. When every stored (class id, label) pair is a COCO class at its
    place, the export uses the 80 COCO classes and their official ids, whether or not a worker is
    reporting right now; otherwise the model's ids, with the names the model or the detections give."""
    try:
        names = dict(class_names())
    except DetectionUnavailable:
        names = {}
    if stored is None:
        stored = {d.class_id: d.label for run in runs for d in run.detections}
    coco_like = all(0 <= i < len(COCO80) and COCO80[i] == label for i, label in stored.items())
    if coco_like and (not names or tuple(names.get(i) for i in range(len(names))) == COCO80):
        return Classes(dict(enumerate(COCO80)), official_coco=True)
    for class_id, label in stored.items():
        names.setdefault(class_id, label)
    return Classes(dict(sorted(names.items())), official_coco=False)


def json_image(a: Run, min_conf: Optional[float], location: bool = False) -> dict:
    return {"id": a.public_id, "filename": a.photo.original_filename, "width": a.photo.width,
            "height": a.photo.height, "model": a.model_name, "conf": a.conf, "status": a.status,
            **({"location": location_of(a)} if location else {}),
            "detections": [d.as_dict() for d in a.detections_at(min_conf)]}


def as_json(runs: list[Run], min_conf: Optional[float], location: bool = False) -> dict:
    return {"images": [json_image(a, min_conf, location) for a in runs]}


def coco_info(classes: Classes, min_conf: Optional[float]) -> dict:
    return {
        "description": "Detections exported by Spotter",
        "date_created": utcnow().isoformat(),
        "image_ids": "each image's id is its analysis's numeric id: the same in every export",
        "category_ids": "coco" if classes.official_coco else "model",
        "category_ids_note": ("official COCO category ids (1-90): the model's classes are the 80 COCO classes"
                              if classes.official_coco else "the model's own class ids"),
        "min_conf": min_conf if min_conf is not None else "each analysis's own threshold",
    }


def coco_image(run: Run, location: bool = False, name_of=dataset_file_name) -> dict:
    return {"id": run.id, "file_name": name_of(run), "width": run.photo.width, "height": run.photo.height,
            "analysis_id": run.public_id, "original_filename": run.photo.original_filename,
            **({"location": location_of(run)} if location else {})}


def coco_annotations(run: Run, min_conf: Optional[float], classes: Classes, first_id: int) -> list[dict]:
    """The run's boxes as COCO annotations, numbered from `first_id`."""
    annotations = []
    for d in run.detections_at(min_conf):
        w, h = d.x2 - d.x1, d.y2 - d.y1  # from the unrounded corners; rounded once, below
        annotations.append({
            "id": first_id + len(annotations), "image_id": run.id, "category_id": classes.category_id(d.class_id),
            "bbox": [round(d.x1, 3), round(d.y1, 3), round(w, 3), round(h, 3)],
            "area": round(w * h, 3), "iscrowd": 0, "score": round(d.confidence, 5),
        })
    return annotations


def coco_categories(classes: Classes) -> list[dict]:
    return [{"id": classes.category_id(i), "name": n, "supercategory": "object"} for i, n in classes.names.items()]


def as_coco(runs: list[Run], min_conf: Optional[float], classes: Optional[Classes] = None,
            location: bool = False, name_of=dataset_file_name) -> dict:
    """COCO detection results: images (id = the run's row id), annotations with `score`, and
    every category of the model (see the module's docstring for the ids)."""
    runs = [a for a in runs if a.is_done]  # not yet analysed is not "nothing in it"
    classes = classes or model_classes(runs)
    annotations: list[dict] = []
    for run in runs:
        annotations += coco_annotations(run, min_conf, classes, len(annotations) + 1)
    return {"info": coco_info(classes, min_conf), "images": [coco_image(r, location, name_of) for r in runs],
            "annotations": annotations, "categories": coco_categories(classes)}


# ---- streamed: any number of runs, one batch in memory at a time ----

Batches = Callable[[], Iterable[list[Run]]]  # each call goes through every run again, a batch at a time


def classes_of(pairs: Iterable[tuple[int, str]]) -> Classes:
    """`model_classes` from the stored (class id, label) pairs alone (a query's, not loaded runs')."""
    return model_classes([], stored=dict(pairs))


def json_items(out: TextIO, items: Iterable[dict], indent: Optional[int] = None) -> None:
    """Write a JSON array's items (the caller writes the brackets)."""
    for n, item in enumerate(items):
        out.write(("," if n else "") + ("\n" if indent else "") + json.dumps(item, indent=indent))


def write_json(out: TextIO, batches: Batches, min_conf: Optional[float], location: bool = False) -> None:
    """`as_json`, written as it goes."""
    out.write('{"images": [')
    json_items(out, (json_image(a, min_conf, location) for batch in batches() for a in batch), indent=2)
    out.write("\n]}\n")


def write_coco(out: TextIO, batches: Batches, min_conf: Optional[float], classes: Classes,
               location: bool = False, name_of=dataset_file_name) -> None:
    """`as_coco`, written as it goes, in one pass over the runs: the images go to `out`, their
    annotations to a temporary file that follows them."""
    out.write('{"info": ' + json.dumps(coco_info(classes, min_conf)) + ', "images": [')
    images = annotated = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as annotations:
        for batch in batches():
            for run in batch:
                if not run.is_done:  # not yet analysed is not "nothing in it"
                    continue
                out.write(("," if images else "") + json.dumps(coco_image(run, location, name_of)))
                images += 1
                for annotation in coco_annotations(run, min_conf, classes, annotated + 1):
                    annotations.write(("," if annotated else "") + json.dumps(annotation))
                    annotated += 1
        out.write('], "annotations": [')
        annotations.seek(0)
        shutil.copyfileobj(annotations, out)
    out.write('], "categories": ' + json.dumps(coco_categories(classes)) + "}\n")


def yolo_lines(run: Run, min_conf: Optional[float]) -> str:
    """One line per box: class x_center y_center width height, normalised to 0..1."""
    lines = []
    for d in run.detections_at(min_conf):
        cx, cy = (d.x1 + d.x2) / 2 / run.photo.width, (d.y1 + d.y2) / 2 / run.photo.height
        w, h = (d.x2 - d.x1) / run.photo.width, (d.y2 - d.y1) / run.photo.height
        lines.append(f"{d.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula (a filename such as
    `=HYPERLINK(...)`) gets a leading apostrophe (OWASP's advice against CSV injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def as_csv(runs: list[Run], min_conf: Optional[float], location: bool = False) -> str:
    out = io.StringIO()
    write_csv(out, lambda: [runs], min_conf, location)
    return out.getvalue()


def write_csv(out: TextIO, batches: Batches, min_conf: Optional[float], location: bool = False) -> None:
    writer = csv.writer(out)
    writer.writerow(["analysis_id", "filename", "width", "height", "label", "class",
                     "confidence", "x1", "y1", "x2", "y2"] + (["latitude", "longitude"] if location else []))
    for batch in batches():
        for a in batch:
            where = [a.photo.latitude, a.photo.longitude] if location else []
            for d in a.detections_at(min_conf):
                writer.writerow([a.public_id, _text_cell(a.photo.original_filename), a.photo.width, a.photo.height,
                                 _text_cell(d.label), d.class_id, f"{d.confidence:.4f}",
                                 f"{d.x1:.2f}", f"{d.y1:.2f}", f"{d.x2:.2f}", f"{d.y2:.2f}", *where])


def export(runs: list[Run], fmt: str, min_conf: Optional[float], name: str,
           dataset: bool = False, location: bool = False) -> Export:
    """`fmt` is json, coco, yolo or csv. YOLO of one run is its label file; with `dataset`
    (the bulk export, however many match), a zip that is a ready Ultralytics dataset.
    `location`: with the photos' GPS positions (see the module's docstring)."""
    if fmt == "json":
        return Export(json.dumps(as_json(runs, min_conf, location), indent=2).encode(), "application/json",
                      f"{name}.json")
    if fmt == "coco":
        return Export(json.dumps(as_coco(runs, min_conf, location=location)).encode(), "application/json",
                      f"{name}-coco.json")
    if fmt == "csv":
        return Export(as_csv(runs, min_conf, location).encode(), "text/csv", f"{name}.csv")
    if not dataset:
        return Export(yolo_lines(runs[0], min_conf).encode(), "text/plain", f"{name}.txt")
    return Export(yolo_dataset(runs, min_conf), "application/zip", f"{name}-yolo.zip")


def export_all(batches: Batches, classes: Callable[[], Classes], fmt: str, min_conf: Optional[float],
               name: str, location: bool = False) -> Export:
    """The bulk export of however many runs (`batches`), as `export` with `dataset` writes it, but
    written a batch at a time to a temporary file: memory stays flat whatever the library's size
    (bench/export_memory.py). `classes` is asked once, for COCO and YOLO."""
    spool = tempfile.TemporaryFile()
    if fmt == "yolo":
        write_yolo_dataset(spool, batches, min_conf, classes())
        spool.seek(0)
        return Export(spool, "application/zip", f"{name}-yolo.zip")
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    if fmt == "json":
        write_json(text, batches, min_conf, location)
        mimetype, filename = "application/json", f"{name}.json"
    elif fmt == "coco":
        write_coco(text, batches, min_conf, classes(), location)
        mimetype, filename = "application/json", f"{name}-coco.json"
    else:
        write_csv(text, batches, min_conf, location)
        mimetype, filename = "text/csv", f"{name}.csv"
    text.flush()
    text.detach()
    spool.seek(0)
    return Export(spool, mimetype, filename)


def yolo_dataset(runs: list[Run], min_conf: Optional[float]) -> IO[bytes]:
    """`write_yolo_dataset` of these runs, to a temporary file."""
    spool = tempfile.TemporaryFile()
    write_yolo_dataset(spool, lambda: [runs], min_conf, model_classes([a for a in runs if a.is_done]))
    spool.seek(0)
    return spool


def write_yolo_dataset(out: IO[bytes], batches: Batches, min_conf: Optional[float], classes: Classes) -> None:
    """A zip Ultralytics loads as a dataset: images/<stem>.<ext> (the upright photos, no metadata),
    labels/<stem>.txt, data.yaml (train and val both images/, names for every class id) and
    classes.txt (one name per line, line n is class n). Only finished runs (a photo not yet
    analysed is not a photo with nothing in it)."""
    count = max(classes.names, default=-1) + 1
    names = [classes.names.get(i, f"class_{i}") for i in range(count)]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for batch in batches():
            for a in batch:
                if not a.is_done:
                    continue
                try:
                    archive.writestr(f"images/{dataset_file_name(a)}", _public_bytes(a),
                                     compress_type=zipfile.ZIP_STORED)  # already compressed
                except FileNotFoundError:  # deleted while the export was being written: its labels only
                    pass
                archive.writestr(f"labels/{dataset_stem(a)}.txt", yolo_lines(a, min_conf))
        archive.writestr("data.yaml", yaml.safe_dump(
            {"train": "images", "val": "images", "nc": count, "names": dict(enumerate(names))},
            sort_keys=False, allow_unicode=True))
        archive.writestr("classes.txt", "".join(f"{n}\n" for n in names))


def _public_bytes(run: Run) -> bytes:
    """The photo as pages show it (the rendition, or the original), with nothing but what decoding
    needs (`vision.images.public_copy`)."""
    shown = run.photo.shown_path
    return public_copy(storage.absolute(shown).read_bytes(), shown.rsplit(".", 1)[-1],
                       current_app.config["MAX_IMAGE_PIXELS"])


def bulk_zip(runs: list[Run]) -> IO[bytes]:
    """The gallery's "download as zip" of selected photos, for their owner: originals/ (exactly
    as uploaded, metadata included), annotated/ (the annotated images of finished ones), detections-coco.json and
    detections.csv (the boxes each photo's page shows, at its own threshold). File names are the
    photos' own names (`zip_stems`: a short suffix only where they clash), the same in the folders
    and the COCO file. Spooled to a temporary file."""
    stems = zip_stems(runs)

    def original_name(a: Run) -> str:
        return stems[a.id] + PurePosixPath(a.photo.original_path).suffix

    spool = tempfile.TemporaryFile()
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        for a in runs:
            files = [("originals", a.photo.original_path, original_name(a))]
            if a.is_done and viewer.annotated_file(a, patient=True) is not None:  # drawn now if it never was
                files.append(("annotated", a.annotated_path, f"{stems[a.id]}.jpg"))
            for folder, relative, name in files:
                try:
                    archive.write(storage.absolute(relative), f"{folder}/{name}", compress_type=zipfile.ZIP_STORED)
                except FileNotFoundError:  # deleted while the zip was being written
                    pass
        archive.writestr("detections-coco.json", json.dumps(as_coco(runs, None, name_of=original_name), indent=1))
        archive.writestr("detections.csv", as_csv([a for a in runs if a.is_done], None))
    spool.seek(0)
    return spool
