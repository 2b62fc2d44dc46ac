"""An upload request stores the photo as sent and decodes nothing: the detection stream decodes
it, makes its thumbnail and rendition, or fails a damaged photo with the reason."""
import hashlib
import io
import threading

import cv2
import pytest
from PIL import ImageFile

from tests.helpers import HX, ApiActions, analyses, stored_files, upload
from tests.images import HOSTILE, encode, png_declaring, sample, with_orientation
from webapp import storage
from webapp.extensions import db
from webapp.jobs.scheduling import get_runner
from webapp.models import RunStatus, User
from webapp.vision import images
from webapp.vision.images import DAMAGED


@pytest.fixture
def decodes(monkeypatch):
    """The threads that decoded a file's pixels (Pillow's load of an opened file, HEIF's included,
    OpenCV's imdecode, the one decode)."""
    seen: list[str] = []

    def watch(owner, name):
        real = getattr(owner, name)

        def watched(*args, **kwargs):
            seen.append(threading.current_thread().name)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    watch(ImageFile.ImageFile, "load")
    watch(cv2, "imdecode")
    watch(images, "decode")
    return seen


PHOTOS = [
    ("portrait.jpg", with_orientation(sample(120, 80), 6)),
    ("plain.png", encode(sample(), "PNG")),
    ("big.png", png_declaring(6000, 6000)),  # 36 MP declared in a few hundred bytes
    ("photo.heic", encode(sample(), "HEIF")),
    ("scan.tif", encode(sample(), "TIFF")),
]


def test_an_upload_request_never_decodes_pixels(make_app, auth_factory, decodes):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    client, auth = auth_factory(app)
    auth.signup()
    response = upload(client, *PHOTOS, headers=HX)
    assert response.status_code == 201
    request_thread = threading.current_thread().name
    assert request_thread not in decodes
    assert get_runner(app).wait(timeout=120)
    assert decodes and request_thread not in decodes  # the stream decoded them, in its own threads
    assert all(name.startswith("run-") for name in decodes)


def test_an_api_upload_never_decodes_pixels(make_app, decodes):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    api = ApiActions(app.test_client())
    api.signup()
    api.login()
    response = api.upload(*PHOTOS)
    assert response.status_code == 202, response.get_json()
    assert get_runner(app).wait(timeout=120)
    assert decodes and all(name.startswith("run-") for name in decodes)  # none in the request's thread


def test_a_damaged_file_that_passes_the_header_check_ends_failed_with_the_damaged_file_message(
        client, auth, app):
    auth.signup()
    damaged = HOSTILE["truncated JPEG"][1]
    response = upload(client, ("cut.jpg", damaged), headers=HX)
    assert response.status_code == 201
    [run] = analyses(app)
    assert run.status == RunStatus.FAILED and run.error == DAMAGED
    assert run.photo.thumbnail_path is None and run.photo.display_path is None
    assert [p.name for p in stored_files(app)] == ["original.jpg"]  # kept as sent; nothing made of it
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert (user.photos, user.stored_bytes) == (1, len(damaged))
    page = client.get("/analyses").get_data(as_text=True)
    assert DAMAGED in page and "Could not be read" in page


def test_the_stream_makes_a_new_photos_thumbnail_and_rendition_and_counts_their_bytes(client, auth, app):
    auth.signup()
    sent = with_orientation(sample(120, 80), 6)
    upload(client, ("portrait.jpg", sent))
    [run] = analyses(app)
    assert run.status == RunStatus.DONE
    photo = run.photo
    assert (photo.width, photo.height) == (120, 80)  # upright
    with app.app_context():
        files = {p: storage.absolute(p).stat().st_size for p in photo.files}
        user = db.session.scalar(db.select(User))
    assert sorted(p.rsplit("/", 1)[1] for p in files) == ["display.jpg", "original.jpg", "thumbnail.jpg"]
    assert photo.stored_bytes == sum(files.values()) == user.stored_bytes
    assert storage_bytes(app, photo.original_path) == sent


def test_the_size_a_header_declares_is_refused_before_anything_is_stored(client, auth, app):
    auth.signup()
    response = upload(client, ("huge.png", png_declaring(60_000, 60_000)), headers=HX)
    assert response.status_code == 422
    assert "too many pixels" in response.get_data(as_text=True) or "too large" in response.get_data(as_text=True)
    assert analyses(app) == [] and stored_files(app) == []


def test_an_upload_is_copied_to_disk_a_chunk_at_a_time(app):
    class OnlyChunks(io.BytesIO):
        def read(self, size=-1):
            assert 0 < size <= storage.CHUNK, "read whole"
            return super().read(size)

    data = b"x" * (storage.CHUNK * 2 + 5)
    with app.app_context():
        received = storage.receive(OnlyChunks(data), "7/abc")
        assert storage.absolute(received.path).read_bytes() == data
        assert received.size == len(data)
        assert received.sha256 == hashlib.sha256(data).hexdigest()


def storage_bytes(app, relative: str) -> bytes:
    with app.app_context():
        return storage.absolute(relative).read_bytes()


def test_the_stream_decodes_and_detects_at_a_lower_priority_than_requests(make_app, auth_factory, monkeypatch):
    import os

    from webapp.jobs import pipeline

    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_NICE=7)
    seen, real = [], pipeline.prepare

    def prepare(*args, **kwargs):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare", prepare)
    client, auth = auth_factory(app)
    auth.signup()
    upload(client, ("photo.png", encode(sample(), "PNG")))
    assert get_runner(app).wait(timeout=120)
    assert seen == [7]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 7  # this (request) thread is untouched


def test_one_account_has_at_most_uploads_at_once_upload_requests_in_a_process(make_app, monkeypatch):
    """So that one account cannot hold every server thread: the next is told to retry, before its
    body is read; other accounts are not held up."""
    from webapp.analyses import uploads

    app = make_app(ANALYSIS_EXECUTOR="thread", UPLOADS_AT_ONCE=2)
    inside, release, real = threading.Semaphore(0), threading.Event(), uploads.upload_files

    def held(*args, **kwargs):
        inside.release()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(uploads, "upload_files", held)
    ada, bob = ApiActions(app.test_client()), ApiActions(app.test_client())
    ada.signup(), ada.login()
    bob.signup("bob@example.com"), bob.login("bob@example.com")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(ada.upload(PHOTOS[1]).status_code)) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert inside.acquire(timeout=30) and inside.acquire(timeout=30)  # two of ada's are in
    third = ada.upload(PHOTOS[1])
    assert third.status_code == 429 and third.headers["Retry-After"] == "1"
    assert "other photos" in third.get_json()["detail"]
    others = threading.Thread(target=lambda: answers.append(bob.upload(PHOTOS[1]).status_code))
    others.start()
    assert inside.acquire(timeout=30)  # bob's is in too
    release.set()
    for thread in [*threads, others]:
        thread.join(30)
    assert answers == [202, 202, 202]
    assert ada.upload(PHOTOS[1]).status_code == 202  # her turn again


def test_a_rotated_tiffs_header_gives_its_upright_size():
    sent = with_orientation(sample(96, 64), 6, "TIFF")
    header = images.read_header(sent, 10**8)
    decoded = images.decode(sent, 10**8)
    assert (header.width, header.height) == (decoded.width, decoded.height) == (96, 64)


def test_an_upload_that_fails_while_it_is_written_leaves_no_folder(client, auth, app, monkeypatch):
    auth.signup()

    def disk_full(source, folder):
        storage.absolute(folder).mkdir(parents=True)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "receive", disk_full)
    assert upload(client, ("photo.png", encode(sample(), "PNG")), headers=HX).status_code == 500
    assert analyses(app) == [] and [p for p in storage_root(app).rglob("*")] == []


def storage_root(app):
    from pathlib import Path
    return Path(app.config["UPLOAD_DIR"])
