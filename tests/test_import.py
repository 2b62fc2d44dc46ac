"""`flask import-photos`: a library folder added for one user through the upload path, skipping
what is already there, listing what was refused and why."""
import os
import shutil
import socket

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import COCO128
from tests.helpers import ApiActions, analyses, fresh_redis, redis_url, stored_files
from tests.images import encode, sample
from webapp.library import counts
from webapp.extensions import db
from webapp.models import Run, RunStatus, Photo


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "library"
    (root / "2025" / "summer").mkdir(parents=True)
    (root / "a.png").write_bytes(encode(sample(96, 64), "PNG"))
    (root / "2025" / "b.JPG").write_bytes(encode(sample(80, 60), "JPEG"))
    (root / "2025" / "summer" / "c.webp").write_bytes(encode(sample(70, 50), "WEBP"))
    (root / "zz-copies").mkdir()
    (root / "zz-copies" / "copy-of-a.png").write_bytes((root / "a.png").read_bytes())
    (root / "2025" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "notes.txt").write_text("not a photo")
    (root / ".thumbnails").mkdir()
    (root / ".thumbnails" / "hidden.png").write_bytes(encode(sample(10, 10), "PNG"))
    return root


@pytest.fixture
def importer(make_app):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    with app.app_context():
        factories.user("ada@example.com")
    runner = app.test_cli_runner()
    return app, lambda *args: runner.invoke(args=["import-photos", "--user", "ada@example.com", *map(str, args)])


def test_import_adds_every_supported_photo_under_a_folder_and_waits_for_them(importer, library):
    app, run = importer
    result = run(library)
    assert result.exit_code == 0, result.output
    assert "Imported 3 photos for ada@example.com" in result.output
    assert "3 done, 0 failed; 1 already there" in result.output  # the copy of a.png: same content
    rows = analyses(app)
    assert sorted(a.photo.original_filename for a in rows) == ["a.png", "b.JPG", "c.webp"]
    assert {a.status for a in rows} == {RunStatus.DONE}
    assert len([p for p in stored_files(app) if p.name == "thumbnail.jpg"]) == 3


def test_import_lists_refused_files_with_the_reason_and_ignores_other_files(importer, library):
    _, run = importer
    result = run(library)
    assert "1 files were refused:" in result.output
    assert f"{library / '2025' / 'broken.jpg'}: This file is not an image we can read" in result.output
    assert "1 files that are not images were ignored." in result.output
    assert "hidden.png" not in result.output


def test_a_second_import_of_the_same_folder_imports_nothing_and_says_so(importer, library):
    app, run = importer
    run(library)
    again = run(library)
    assert again.exit_code == 0, again.output
    assert "Nothing to import: 4 of 5 photos are already in ada@example.com's library, 1 refused." in again.output
    assert len(analyses(app)) == 3


def test_an_interrupted_import_goes_on_where_it_stopped(importer, library):
    app, run = importer
    run(library / "a.png")
    result = run(library)
    assert "Imported 2 photos" in result.output and "2 already there" in result.output
    assert len(analyses(app)) == 3


def test_import_without_waiting_needs_the_celery_workers(importer, library):
    app, run = importer
    result = run("--no-wait", library / "a.png")
    assert result.exit_code == 1
    assert "--no-wait needs ANALYSIS_EXECUTOR=celery" in result.output
    assert analyses(app) == []


def test_an_interrupted_import_run_again_finishes_what_it_left_running(importer, library):
    app, run = importer
    run(library)
    with app.app_context():  # as a killed import leaves it: running, its process gone
        row = db.session.scalar(sa.select(Run).join(Photo).where(Photo.original_filename == "b.JPG"))
        row.status, row.worker = RunStatus.RUNNING, f"{socket.gethostname()}:999999999:1"
        db.session.commit()
    again = run(library)
    assert "1 that had failed or were interrupted run again" in again.output, again.output
    rows = analyses(app)
    assert len(rows) == 3 and {a.status for a in rows} == {RunStatus.DONE}
    with app.app_context():
        assert counts.check_counts() == []


def test_a_file_over_the_upload_limit_is_refused_without_being_read(make_app, tmp_path):
    app = make_app(ANALYSIS_EXECUTOR="thread", MAX_CONTENT_LENGTH=1000)
    with app.app_context():
        factories.user("ada@example.com")
    big = tmp_path / "big.png"
    big.write_bytes(encode(sample(400, 300), "PNG"))
    result = app.test_cli_runner().invoke(args=["import-photos", "--user", "ada@example.com", str(big)])
    assert f"{big}: larger than the upload limit" in result.output
    assert analyses(app) == []


def test_a_file_named_on_the_command_line_is_taken_whatever_its_extension(importer, tmp_path):
    app, run = importer
    photo = tmp_path / "IMG_0001"
    photo.write_bytes(encode(sample(), "JPEG"))
    assert "Imported 1 photos" in run(photo).output
    assert [a.photo.original_filename for a in analyses(app)] == ["IMG_0001"]


def test_broken_links_and_pipes_in_a_folder_are_counted_as_ignored(importer, tmp_path):
    _, run = importer
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(folder / "pipe.jpg")
    result = run(folder)
    assert "No photos found under" in result.output and "2 files that are not images were ignored." in result.output


def test_import_with_celery_and_no_worker_says_so_and_leaves_the_photos_queued(make_app, tmp_path):
    url = redis_url(12)
    broker = fresh_redis(url)
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=url)
    with app.app_context():
        factories.user("ada@example.com")
    photo = tmp_path / "a.png"
    photo.write_bytes(encode(sample(), "PNG"))
    result = app.test_cli_runner().invoke(args=["import-photos", "--user", "ada@example.com", str(photo)])
    assert result.exit_code == 0, result.output
    assert "no detection worker is running" in result.output and "Queued 1 photos" in result.output
    assert [a.status for a in analyses(app)] == [RunStatus.PENDING]
    assert broker.llen("detect") == 1
    broker.flushdb()


def test_import_for_an_unknown_account_says_so(importer, library):
    app, run = importer
    result = app.test_cli_runner().invoke(args=["import-photos", "--user", "nobody@example.com", str(library)])
    assert result.exit_code == 1
    assert "No account with the email nobody@example.com" in result.output
    assert analyses(app) == [] and stored_files(app) == []


@pytest.mark.real_model
def test_importing_coco128_twice_imports_every_photo_once(make_app, coco_model, tmp_path):
    folder = COCO128 / "images" / "train2017"
    if not folder.is_dir():
        pytest.skip(f"COCO128 not found at {COCO128}")
    app = make_app(ANALYSIS_EXECUTOR="thread", YOLO_MODEL=coco_model)
    with app.app_context():
        factories.user("ada@example.com")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["import-photos", "--user", "ada@example.com", str(folder)])
    assert first.exit_code == 0, first.output
    assert "Imported 128 photos" in first.output and "128 done, 0 failed" in first.output
    second = runner.invoke(args=["import-photos", "--user", "ada@example.com", str(folder)])
    assert "Nothing to import: 128 of 128 photos are already in ada@example.com's library." in second.output
    rows = analyses(app)
    assert len(rows) == 128 and sum(len(a.detections) for a in rows) > 500
    shutil.rmtree(app.config["UPLOAD_DIR"], ignore_errors=True)


def test_links_that_leave_the_folder_or_reach_the_upload_folder_are_never_followed(importer, tmp_path):
    app, run = importer
    api = ApiActions(app.test_client()).user("eve@example.com")
    api.upload(("secret.png", encode(sample(90, 60), "PNG")))
    [stolen] = [p for p in stored_files(app) if p.name == "original.png"]  # another user's photo
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(encode(sample(70, 40), "PNG"))
    library = tmp_path / "lib"
    library.mkdir()
    (library / "mine.png").write_bytes(encode(sample(80, 50), "PNG"))
    (library / "steal.jpg").symlink_to(stolen)
    (library / "outside.png").symlink_to(outside)
    (library / "inside.png").symlink_to(library / "mine.png")  # a link within the folder: fine (same photo)
    result = run(library)
    assert result.exit_code == 0, result.output
    assert "steal.jpg: inside the app's upload folder" in result.output
    assert "outside.png: a link that leads out of" in result.output
    names = sorted(a.photo.original_filename for a in analyses(app))  # eve's own, and mine.png once
    assert len(names) == 2 and names[-1] == "secret.png" and names[0] in ("inside.png", "mine.png")
    direct = run(stolen)  # named on the command line: still never the app's own uploads
    assert "the app's upload folder" in direct.output
    assert sorted(a.photo.original_filename for a in analyses(app)) == names
