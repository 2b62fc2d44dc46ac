"""Uploading photos through the pages, and what is stored for them."""
import io
import logging
from pathlib import Path

import pytest

from tests.factories import add_analysis
from tests.helpers import HX, analyses, csrf_from, stored_files, upload
from tests.images import HOSTILE, encode, sample
from webapp.jobs.queue import detect_run
from webapp.jobs.recovery import INTERRUPTED, fail_interrupted, requeue_interrupted
from webapp.extensions import db
from webapp.jobs.scheduling import get_runner
from webapp.models import Run, RunStatus


@pytest.mark.real_model
def test_upload_runs_detection_and_stores_the_results(client, auth, app, assets):
    auth.signup()
    response = upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()))
    assert response.status_code == 302
    [analysis] = analyses(app)
    assert analysis.status == RunStatus.DONE and analysis.error is None
    assert (analysis.photo.width, analysis.photo.height) == (810, 1080)
    assert analysis.inference_ms > 0 and analysis.device == "cpu" and analysis.finished_at
    labels = [d.label for d in analysis.detections_at()]
    assert "bus" in labels and labels.count("person") >= 4
    assert sorted(p.name for p in stored_files(app)) == ["original.jpg", "thumbnail.jpg"]  # annotated: when asked


@pytest.mark.real_model
def test_gallery_card_shows_label_chips_with_counts(client, auth, assets):
    auth.signup()
    upload(client, ("bus.jpg", (assets / "bus.jpg").read_bytes()))
    page = client.get("/analyses").get_data(as_text=True)
    assert "bus.jpg" in page and "/analyses?label=person" in page and "Done" in page


def test_htmx_upload_answers_with_cards_and_reasons(client, auth):
    auth.signup()
    response = upload(client, ("photo.png", encode(sample(), "PNG")), ("notes.jpg", b"plain text"), headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert 'class="tile status-done"' in html and "notes.jpg" in html and "not an image" in html


@pytest.mark.parametrize("case", [case for case in HOSTILE if case != "truncated JPEG"])  # (decoding finds that)
def test_hostile_uploads_leave_no_row_and_no_file(client, auth, app, case):
    auth.signup()
    name, data, _ = HOSTILE[case]
    response = upload(client, (name, data), headers=HX)
    assert response.status_code == 422
    assert name in response.get_data(as_text=True)
    assert analyses(app) == [] and stored_files(app) == []
    assert client.get("/healthz").status_code == 200


def test_a_rejected_file_does_not_stop_the_others(client, auth, app):
    auth.signup()
    response = upload(client, ("bad.jpg", b"nope"), ("good.png", encode(sample(), "PNG")))
    assert response.status_code == 302
    assert [a.photo.original_filename for a in analyses(app)] == ["good.png"]
    page = client.get("/analyses").get_data(as_text=True)
    assert "bad.jpg: This file is not an image" in page


def test_too_large_upload_gets_a_readable_413(make_app, auth_factory):
    app = make_app(MAX_CONTENT_LENGTH=50_000)
    client, auth = auth_factory(app)
    auth.signup()
    big = encode(sample(), "BMP") * 40
    response = upload(client, ("big.bmp", big), headers=HX)
    assert response.status_code == 413
    assert "too large: the limit is 48.8 KB per request" in response.get_data(as_text=True)
    assert stored_files(app) == []


def test_too_large_upload_without_javascript_goes_back_to_the_gallery_saying_why(make_app, auth_factory):
    app = make_app(MAX_CONTENT_LENGTH=50_000)
    client, auth = auth_factory(app)
    auth.signup()
    response = upload(client, ("big.bmp", encode(sample(), "BMP") * 40))
    assert response.status_code == 302 and response.location == "/analyses"
    assert "the limit is 48.8 KB per request" in client.get("/analyses").get_data(as_text=True)
    assert stored_files(app) == []


def test_too_many_files_in_one_request_is_not_called_too_large(make_app, auth_factory):
    app = make_app(MAX_FORM_PARTS=5)
    client, auth = auth_factory(app)
    auth.signup()
    response = upload(client, *[(f"{i}.png", b"x") for i in range(6)], headers=HX)
    assert response.status_code == 413
    assert "Too many files in one upload: send at most 3 per request." in response.get_data(as_text=True)


def test_a_photo_deleted_while_it_is_analysed_leaves_no_file_and_no_error(app, caplog, monkeypatch):
    """The run is deleted after its detection, then finds the row gone when it commits."""
    from webapp.analyses import removal
    from webapp.jobs import pipeline

    pending = add_analysis(app, status=RunStatus.PENDING)
    with app.app_context():
        storage_dir = Path(app.config["UPLOAD_DIR"]) / pending.photo.folder
        storage_dir.mkdir(parents=True)
        (storage_dir / "original.jpg").write_bytes(encode(sample(), "JPEG"))
        real_render = pipeline.render

        def render_then_delete(work):
            with app.app_context():  # another request deletes the photo meanwhile
                removal.delete_photo(db.session.get(Run, pending.id))
            return real_render(work)

        monkeypatch.setattr(pipeline, "render", render_then_delete)
        with caplog.at_level(logging.INFO, logger="webapp"):
            detect_run(pending.id)
    assert analyses(app) == [] and stored_files(app) == []
    assert "ERROR" not in caplog.text and "was deleted while it ran" in caplog.text


def test_deleting_removes_files_a_running_analysis_wrote_after_the_row_was_read(client, auth, app):
    auth.signup()
    upload(client, ("photo.png", encode(sample(), "PNG")))
    [analysis] = analyses(app)
    from webapp.analyses import removal

    with app.app_context():
        stale = db.session.get(Run, analysis.id)
        (Path(app.config["UPLOAD_DIR"]) / analysis.photo.folder / "annotated.jpg").touch()  # written meanwhile
        removal.delete_photo(stale)
    assert analyses(app) == [] and stored_files(app) == []


def test_upload_without_a_file_is_a_form_error(client, auth, app):
    auth.signup()
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.post("/analyses", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 422 and "Choose at least one photo" in response.get_data(as_text=True)


def test_upload_without_csrf_is_refused(client, auth, app):
    auth.signup()
    data = {"images": [(io.BytesIO(encode(sample(), "PNG")), "photo.png")]}
    assert client.post("/analyses", data=data).status_code == 400
    assert analyses(app) == []


def test_client_filename_is_for_display_only(client, auth, app):
    auth.signup()
    upload(client, ("../../etc/passwd.png", encode(sample(), "PNG")))
    [analysis] = analyses(app)
    assert analysis.photo.original_filename == "passwd.png"
    assert all(p.parent.parent.parent == Path(app.config["UPLOAD_DIR"]) for p in stored_files(app))
    assert "passwd" not in analysis.photo.original_path


def test_the_same_photo_twice_is_two_analyses_with_one_sha256(client, auth, app):
    auth.signup()
    data = encode(sample(), "JPEG")
    upload(client, ("a.jpg", data))
    upload(client, ("b.jpg", data))
    first, second = analyses(app)
    assert first.public_id != second.public_id and first.photo.sha256 == second.photo.sha256


def test_classes_the_model_lacks_fail_the_analysis_instead_of_detecting_everything(app):
    """A stored analysis limited to unknown classes (the model changed since the upload, say)."""
    pending = add_analysis(app, status=RunStatus.PENDING, classes=["unicorn"])
    with app.app_context():
        original = Path(app.config["UPLOAD_DIR"]) / pending.photo.original_path
        original.parent.mkdir(parents=True)
        original.write_bytes(encode(sample(), "JPEG"))
        detect_run(pending.id)
    [analysis] = analyses(app)
    assert analysis.status == RunStatus.FAILED
    assert analysis.error == "This model has no class named unicorn."
    assert analysis.detections == []


def test_background_worker_takes_the_analysis_to_done(make_app, auth_factory):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    client, auth = auth_factory(app)
    auth.signup()
    response = upload(client, ("photo.png", encode(sample(), "PNG")), headers=HX)
    assert response.status_code == 201
    assert get_runner(app).wait(timeout=120)
    [analysis] = analyses(app)
    assert analysis.status == RunStatus.DONE


def test_polling_card_stops_when_the_analysis_is_done(make_app, auth_factory):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    client, auth = auth_factory(app)
    auth.signup()
    upload(client, ("photo.png", encode(sample(), "PNG")), headers=HX)
    get_runner(app).wait(timeout=120)
    [analysis] = analyses(app)
    card = client.get(f"/analyses/{analysis.public_id}/card", headers=HX).get_data(as_text=True)
    assert "hx-trigger" not in card and "status-done" in card


def test_a_pending_card_fetches_itself_when_told_its_run_finished(client, auth, app):
    auth.signup()
    analysis = add_analysis(app, status=RunStatus.PENDING)
    card = client.get(f"/analyses/{analysis.public_id}/card", headers=HX).get_data(as_text=True)
    assert f'data-going="{analysis.public_id}"' in card and 'hx-trigger="finished, poll"' in card
    assert 'hx-swap="outerHTML"' in card


def test_restart_marks_analyses_of_dead_workers_failed(app):
    from webapp.jobs.processes import worker_id

    host = worker_id().rsplit(":", 2)[0]
    live = add_analysis(app, status=RunStatus.RUNNING, worker=worker_id())
    dead = add_analysis(app, status=RunStatus.RUNNING, worker=f"{host}:999999:1")
    with app.app_context():
        assert fail_interrupted() == 1
    by_id = {a.id: a for a in analyses(app)}
    assert by_id[dead.id].status == RunStatus.FAILED and by_id[dead.id].error == INTERRUPTED
    assert by_id[live.id].status == RunStatus.RUNNING



def test_a_start_with_requeue_runs_again_what_dead_processes_left_and_spares_live_ones(make_app):
    from tests.images import encode, sample
    from webapp import storage
    from webapp.jobs.processes import worker_id
    from webapp.jobs.scheduling import get_runner

    app = make_app(ANALYSIS_EXECUTOR="thread")
    host = worker_id().rsplit(":", 2)[0]
    live = add_analysis(app, status=RunStatus.RUNNING, worker=worker_id())
    orphans = [add_analysis(app, status=status, worker=f"{host}:999999:1")
               for status in (RunStatus.RUNNING, RunStatus.PENDING)]
    with app.app_context():
        for orphan in orphans:
            storage.save(orphan.photo.original_path, encode(sample(), "PNG"))
        assert requeue_interrupted() == 2
        assert requeue_interrupted() == 0  # taken once
    assert get_runner(app).wait(timeout=60)
    by_id = {a.id: a for a in analyses(app)}
    assert {by_id[o.id].status for o in orphans} == {RunStatus.DONE}
    assert by_id[live.id].status == RunStatus.RUNNING


def test_a_finished_run_logs_where_its_time_went(make_app, auth_factory, caplog):
    """One line per run, stage by stage, for operators and bench/throughput.py alike."""
    app = make_app(ANALYSIS_EXECUTOR="thread")
    client, auth = auth_factory(app)
    auth.signup()
    with caplog.at_level(logging.INFO, logger="webapp.jobs.pipeline"):
        upload(client, ("photo.png", encode(sample(), "PNG")), headers=HX)
        assert get_runner(app).wait(timeout=120)
    [analysis] = analyses(app)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"Run {analysis.id} done in ")]
    stages = dict(part.rsplit(" ", 1) for part in line.split(": ", 1)[1].removesuffix(" ms").split(" ms, "))
    assert list(stages) == ["queued", "claim", "read", "decode", "photo", "model", "to detect", "detect",
                            "to store", "store"]
    assert all(float(ms) >= 0 for ms in stages.values())
    assert "decode" in line and float(stages["decode"]) > 0
