"""Detections of one or many analyses as JSON, COCO, YOLO txt or CSV."""
import csv
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Optional

from webapp.models import Analysis, utcnow


@dataclass
class Export:
    body: bytes
    mimetype: str
    filename: str


def stem(analysis: Analysis) -> str:
    base = analysis.original_filename.rsplit(".", 1)[0]
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in base)
    return f"{safe or 'photo'}-{analysis.public_id[:8]}"


def as_json(analyses: list[Analysis], min_conf: Optional[float]) -> dict:
    return {"images": [{
        "id": a.public_id, "filename": a.original_filename, "width": a.width, "height": a.height,
        "model": a.model_name, "conf": a.conf, "status": a.status,
        "detections": [d.as_dict() for d in a.visible_detections(min_conf)],
    } for a in analyses]}


def as_coco(analyses: list[Analysis], min_conf: Optional[float]) -> dict:
    """COCO detection format. Category ids are the model's class ids + 1 (COCO keeps 0 free)."""
    images, annotations, categories = [], [], {}
    for image_id, analysis in enumerate(analyses, start=1):
        images.append({"id": image_id, "file_name": analysis.original_filename,
                       "width": analysis.width, "height": analysis.height,
                       "analysis_id": analysis.public_id})
        for d in analysis.visible_detections(min_conf):
            categories[d.class_id + 1] = d.label
            w, h = d.x2 - d.x1, d.y2 - d.y1
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": d.class_id + 1,
                "bbox": [round(d.x1, 2), round(d.y1, 2), round(w, 2), round(h, 2)],
                "area": round(w * h, 2), "iscrowd": 0, "score": round(d.confidence, 4),
            })
    return {
        "info": {"description": "Detections exported by Spotter", "date_created": utcnow().isoformat()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "object"} for i, n in sorted(categories.items())],
    }


def yolo_lines(analysis: Analysis, min_conf: Optional[float]) -> str:
    """One line per box: class x_center y_center width height, normalised to 0..1."""
    lines = []
    for d in analysis.visible_detections(min_conf):
        cx, cy = (d.x1 + d.x2) / 2 / analysis.width, (d.y1 + d.y2) / 2 / analysis.height
        w, h = (d.x2 - d.x1) / analysis.width, (d.y2 - d.y1) / analysis.height
        lines.append(f"{d.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula (a filename such as
    `=HYPERLINK(...)`) gets a leading apostrophe (OWASP's advice against CSV injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def as_csv(analyses: list[Analysis], min_conf: Optional[float]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["analysis_id", "filename", "width", "height", "label", "class",
                     "confidence", "x1", "y1", "x2", "y2"])
    for a in analyses:
        for d in a.visible_detections(min_conf):
            writer.writerow([a.public_id, _text_cell(a.original_filename), a.width, a.height,
                             _text_cell(d.label), d.class_id, f"{d.confidence:.4f}",
                             f"{d.x1:.2f}", f"{d.y1:.2f}", f"{d.x2:.2f}", f"{d.y2:.2f}"])
    return out.getvalue()


def export(analyses: list[Analysis], fmt: str, min_conf: Optional[float], name: str) -> Export:
    """`fmt` is json, coco, yolo or csv. YOLO of several analyses is a zip of .txt files."""
    if fmt == "json":
        return Export(json.dumps(as_json(analyses, min_conf), indent=2).encode(), "application/json", f"{name}.json")
    if fmt == "coco":
        return Export(json.dumps(as_coco(analyses, min_conf)).encode(), "application/json", f"{name}-coco.json")
    if fmt == "csv":
        return Export(as_csv(analyses, min_conf).encode(), "text/csv", f"{name}.csv")
    if len(analyses) == 1:
        return Export(yolo_lines(analyses[0], min_conf).encode(), "text/plain", f"{name}.txt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        classes: dict[int, str] = {}
        for a in analyses:
            archive.writestr(f"labels/{stem(a)}.txt", yolo_lines(a, min_conf))
            classes.update({d.class_id: d.label for d in a.detections})
        archive.writestr("classes.txt", "".join(f"{i} {n}\n" for i, n in sorted(classes.items())))
    return Export(buffer.getvalue(), "application/zip", f"{name}-yolo.zip")
