"""Uploading photos through the pages, and what is stored for them."""
import io
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import csrf_from
from tests.images import HOSTILE, encode, sample
from webapp.extensions import db
from webapp.jobs import INTERRUPTED, get_runner, recover_interrupted
from webapp.models import Analysis, AnalysisStatus, Detection

HX = {"HX-Request": "true"}


@pytest.fixture
def config_overrides(coco_model):
    return {"YOLO_MODEL": coco_model}


def upload(client, *files, headers=None):
    """POST files (name, bytes) to /analyses with the page's CSRF token."""
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    data = {"csrf_token": token, "images": [(io.BytesIO(b), name) for name, b in files]}
    return client.post("/analyses", data=data, headers=headers or {},
                       content_type="multipart/form-data")


def stored_files(app) -> list[Path]:
    return sorted(p for p in Path(app.config["UPLOAD_DIR"]).rglob("*") if p.is_file())


def analyses(app) -> list[Analysis]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Analysis).order_by(Analysis.id)).all()
        for row in rows:
            _ = row.detections
        db.session.expunge_all()
        return rows


def test_upload_runs_detection_and_stores_the_results(client, auth, app, assets):
    auth.signup()
    response = upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()))
    assert response.status_code == 302
    [analysis] = analyses(app)
    assert analysis.status == AnalysisStatus.DONE and analysis.error is None
    assert (analysis.width, analysis.height) == (810, 1080)
    assert analysis.inference_ms > 0 and analysis.device == "cpu" and analysis.finished_at
    labels = [d.label for d in analysis.visible_detections()]
    assert "bus" in labels and labels.count("person") >= 4
    assert len(stored_files(app)) == 3  # original, annotated, thumbnail
    assert all(p.name in ("original.jpg", "annotated.jpg", "thumbnail.jpg") for p in stored_files(app))


def test_gallery_card_shows_label_chips_with_counts(client, auth, assets):
    auth.signup()
    upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()))
    page = client.get("/analyses").get_data(as_text=True)
    assert "bus.jpg" in page and "/analyses?label=person" in page and "Done" in page


def test_htmx_upload_answers_with_cards_and_reasons(client, auth, assets):
    auth.signup()
    response = upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()),
                      ("notes.jpg", b"plain text"), headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert 'class="tile status-done"' in html and "notes.jpg" in html and "not an image" in html


@pytest.mark.parametrize("case", HOSTILE.keys())
def test_hostile_uploads_leave_no_row_and_no_file(client, auth, app, case):
    auth.signup()
    name, data, _ = HOSTILE[case]
    response = upload(client, (name, data), headers=HX)
    assert response.status_code == 422
    assert name in response.get_data(as_text=True)
    assert analyses(app) == [] and stored_files(app) == []
    assert client.get("/healthz").status_code == 200


def test_a_rejected_file_does_not_stop_the_others(client, auth, app, assets):
    auth.signup()
    response = upload(client, ("bad.jpg", b"nope"), ("zidane.jpg", (assets / "zidane.jpg").read_bytes()))
    assert response.status_code == 302
    assert [a.original_filename for a in analyses(app)] == ["zidane.jpg"]
    page = client.get("/analyses").get_data(as_text=True)
    assert "bad.jpg: This file is not an image" in page


def test_too_large_upload_gets_a_readable_413(make_app, auth_factory):
    app = make_app(MAX_CONTENT_LENGTH=50_000)
    client, auth = auth_factory(app)
    auth.signup()
    big = encode(sample(), "BMP") * 40
    response = upload(client, ("big.bmp", big), headers=HX)
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    full = upload(client, ("big.bmp", big))
    assert full.status_code == 413 and "limit is" in full.get_data(as_text=True)
    assert stored_files(app) == []


def test_upload_without_a_file_is_a_form_error(client, auth, app):
    auth.signup()
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.post("/analyses", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 422 and "Choose at least one photo" in response.get_data(as_text=True)


def test_upload_without_csrf_is_refused(client, auth, app, assets):
    auth.signup()
    data = {"images": [(io.BytesIO((assets / "bus.jpg").read_bytes()), "bus.jpg")]}
    assert client.post("/analyses", data=data).status_code == 400
    assert analyses(app) == []


def test_client_filename_is_for_display_only(client, auth, app):
    auth.signup()
    upload(client, ("../../etc/passwd.png", encode(sample(), "PNG")))
    [analysis] = analyses(app)
    assert analysis.original_filename == "passwd.png"
    assert all(p.parent.parent.parent == Path(app.config["UPLOAD_DIR"]) for p in stored_files(app))
    assert "passwd" not in analysis.original_path


def test_the_same_photo_twice_is_two_analyses_with_one_sha256(client, auth, app, assets):
    auth.signup()
    data = (assets / "zidane.jpg").read_bytes()
    upload(client, ("a.jpg", data))
    upload(client, ("b.jpg", data))
    first, second = analyses(app)
    assert first.public_id != second.public_id and first.sha256 == second.sha256


def test_a_failing_model_marks_the_analysis_failed_with_its_reason(make_app, auth_factory, tmp_path):
    app = make_app(YOLO_MODEL=str(tmp_path / "no-such-model.pt"))
    client, auth = auth_factory(app)
    auth.signup()
    upload(client, ("photo.png", encode(sample(), "PNG")))
    [analysis] = analyses(app)
    assert analysis.status == AnalysisStatus.FAILED
    assert "could not be loaded" in analysis.error and "does not exist" in analysis.error
    assert not any(p.name.startswith("annotated") for p in stored_files(app))
    assert "could not be loaded" in client.get("/analyses").get_data(as_text=True)


def test_background_worker_takes_the_analysis_to_done(make_app, auth_factory, coco_model, assets):
    app = make_app(YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    client, auth = auth_factory(app)
    auth.signup()
    response = upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()), headers=HX)
    assert response.status_code == 201
    assert get_runner(app).wait(timeout=120)
    [analysis] = analyses(app)
    assert analysis.status == AnalysisStatus.DONE


def test_polling_card_stops_when_the_analysis_is_done(make_app, auth_factory, coco_model, assets):
    app = make_app(YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    client, auth = auth_factory(app)
    auth.signup()
    upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()), headers=HX)
    get_runner(app).wait(timeout=120)
    [analysis] = analyses(app)
    card = client.get(f"/analyses/{analysis.public_id}/card", headers=HX).get_data(as_text=True)
    assert "hx-trigger" not in card and "status-done" in card


def test_a_pending_card_polls_itself(client, auth, app):
    auth.signup()
    analysis = add_analysis(app, status=AnalysisStatus.PENDING)
    card = client.get(f"/analyses/{analysis.public_id}/card", headers=HX).get_data(as_text=True)
    assert 'hx-trigger="load delay:1s"' in card and 'hx-swap="outerHTML"' in card


def test_restart_marks_analyses_of_dead_workers_failed(app):
    live = add_analysis(app, status=AnalysisStatus.RUNNING, user_email="x@example.com")
    dead = add_analysis(app, status=AnalysisStatus.RUNNING, worker="ghost:999999:1", user_email="y@example.com")
    from webapp.jobs import worker_id
    with app.app_context():
        db.session.get(Analysis, live.id).worker = worker_id()
        db.session.get(Analysis, dead.id).worker = f"{worker_id().rsplit(':', 2)[0]}:999999:1"
        db.session.commit()
    assert recover_interrupted(app) == 1
    by_id = {a.id: a for a in analyses(app)}
    assert by_id[dead.id].status == AnalysisStatus.FAILED and by_id[dead.id].error == INTERRUPTED
    assert by_id[live.id].status == AnalysisStatus.RUNNING


def add_analysis(app, status=AnalysisStatus.DONE, labels=(), worker=None, user_email="ada@example.com"):
    """A stored analysis row (with detections) for the user, without running the model."""
    from webapp.models import User

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == user_email))
        if user is None:
            user = User(email=user_email)
            user.set_password("whatever123")
            db.session.add(user)
        analysis = Analysis(
            owner=user, original_filename="p.jpg", original_path=f"{os.urandom(4).hex()}/original.jpg",
            width=100, height=100, sha256="0" * 64, model_name="m", conf=0.25, iou=0.7, imgsz=640,
            status=status, worker=worker,
        )
        analysis.detections = [
            Detection(class_id=i, label=label, confidence=conf, x1=0, y1=0, x2=10, y2=10)
            for i, (label, conf) in enumerate(labels)
        ]
        db.session.add(analysis)
        db.session.commit()
        db.session.refresh(analysis)
        db.session.expunge(analysis)
        return analysis
