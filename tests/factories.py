"""Rows made directly in the database, for tests that need data without running the model."""
import os
from collections import Counter
from datetime import timezone

import sqlalchemy as sa
from flask import current_app

from tests.helpers import PASSWORD
from webapp.library import counts
from webapp.extensions import db
from webapp.models import Run, RunStatus, Detection, Photo, User, utcnow

PHOTO_FIELDS = ("original_filename", "original_path", "thumbnail_path", "width", "height", "sha256",
                "stored_bytes", "taken_offset", "taken_source", "camera_make", "camera_model", "latitude",
                "longitude", "display_path")


def user(email="ada@example.com", password=PASSWORD) -> User:
    """The user with this email, made (and committed) if missing. Needs an app context."""
    found = db.session.scalar(sa.select(User).where(User.email == email))
    if found is not None:
        return found
    made = User(email=email)
    made.set_password(password, current_app.config["PASSWORD_HASH_METHOD"])
    db.session.add(made)
    db.session.commit()
    return made


def analysis(owner: User, status=RunStatus.DONE, labels=(), **values) -> Run:
    """A committed analysis of `owner` with a detection per (label, confidence) in `labels`.
    Needs an app context. Its files are not written (the paths are unique, the folder empty)."""
    folder = f"{owner.id}/{os.urandom(8).hex()}"
    photo_fields = dict(original_filename="p.jpg", original_path=f"{folder}/original.jpg", width=100, height=100,
                        sha256="0" * 64, created_at=values.get("created_at") or utcnow())
    photo_fields.update({k: values.pop(k) for k in PHOTO_FIELDS if k in values})
    # taken: as given (a camera's local time), else the upload time in UTC, as an upload does
    taken = values.pop("taken_at", None) or photo_fields["created_at"].astimezone(timezone.utc).replace(tzinfo=None)
    photo = Photo(user_id=owner.id, taken_at=taken, **photo_fields)
    if "public_id" in values:
        photo.public_id = values["public_id"]
    fields = dict(model_name="m", conf=0.25, iou=0.7, imgsz=640, status=status, created_at=photo.created_at,
                  taken_at=taken)
    made = Run(owner=owner, photo=photo, **{**fields, **values})
    made.detections = [
        Detection(class_id=i, label=label, confidence=conf, x1=0, y1=0, x2=10, y2=10)
        for i, (label, conf) in enumerate(labels)
    ]
    db.session.add(made)
    db.session.flush()
    counts.count_created(owner.id)  # the kept counts, as the upload and the pipeline keep them
    if made.status == RunStatus.DONE:
        counts.record_labels(made, Counter(d.label for d in made.detections if d.confidence >= made.conf))
    db.session.commit()
    return made


def add_analysis(app, status=RunStatus.DONE, labels=(), user_email="ada@example.com", **values) -> Run:
    """`analysis()` for `user_email` (made if missing), in its own app context; returned detached."""
    with app.app_context():
        made = analysis(user(user_email), status=status, labels=labels, **values)
        db.session.refresh(made)
        _ = made.detections
        db.session.expunge_all()
        return made


def add_boxes(app, public_id: str, boxes: list[tuple[str, int, float, tuple]]) -> None:
    """Give a finished analysis these detections (label, class id, confidence, corners), counted
    as the pipeline counts them."""
    with app.app_context():
        analysis = db.session.scalar(sa.select(Run).where(Run.public_id == public_id))
        for label, class_id, conf, (x1, y1, x2, y2) in boxes:
            db.session.add(Detection(run=analysis, label=label, class_id=class_id, confidence=conf,
                                     x1=x1, y1=y1, x2=x2, y2=y2))
        db.session.flush()
        counts.record_labels(analysis, Counter(label for label, _, conf, _ in boxes if conf >= analysis.conf))
        db.session.commit()
