"""Batched detection: several waiting analyses in one prediction, stages overlapped, memory
bounded under a flood, and the same boxes for a photo whether it ran alone or in a batch."""
import threading
from pathlib import Path

import cv2
import pytest
import sqlalchemy as sa

from tests.conftest import COCO128, SHARED
from tests.helpers import ApiActions, analyses, stored_files
from tests.images import encode, sample
from webapp.library import counts
from webapp.jobs.queue import detect_run
from webapp.detection.registry import get_detector
from webapp.extensions import db
from webapp.jobs.scheduling import get_runner
from webapp.models import RunStatus
from webapp.vision.detector import Detector, DetectorSettings

ONNX_MODEL = SHARED / "models" / "yolov8n_dynamic_quantized.onnx"


def coco_photos(n: int) -> list[Path]:
    photos = sorted((COCO128 / "images" / "train2017").glob("*.jpg"))[:n]
    if len(photos) < n:
        pytest.skip(f"COCO128 photos not found in {COCO128} (they lie in ../shared/datasets)")
    return photos


class Gate:
    """Holds every prediction of the app's detector until opened, counting the batch sizes."""

    def __init__(self, monkeypatch, app, poisoned=lambda image: False):
        self.open_ = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[int] = []
        detector = get_detector(app)
        original = detector.detect_batch

        def held(images, **kwargs):
            self.entered.set()
            assert self.open_.wait(120), "the gate was never opened"
            self.sizes.append(len(images))
            if any(poisoned(image) for image in images):
                raise RuntimeError("this photo breaks the model")
            return original(images, **kwargs)

        monkeypatch.setattr(detector, "detect_batch", held)

    def open(self):
        self.open_.set()


def photos_png(n: int) -> list[tuple[str, bytes]]:
    return [(f"p{i}.png", encode(sample(96 + i, 64), "PNG")) for i in range(n)]


@pytest.mark.parametrize("model", ["openvino", "onnx"])
def test_a_photo_gets_the_same_boxes_alone_and_in_a_batch_of_32(model, coco_model):
    """"The same" is: the same boxes, in the same order, confidence within 1e-3 and corners within
    0.5 px. Every photo is letterboxed to the full square, alone or in a batch of mixed sizes."""
    path = coco_model if model == "openvino" else str(ONNX_MODEL)
    if not Path(path).exists():
        pytest.skip(f"{path} not found (it lies in ../shared/models)")
    images = [cv2.imread(str(p)) for p in coco_photos(32)]
    assert len({image.shape for image in images}) > 1  # a real mix of sizes
    detector = Detector(DetectorSettings(model=path, device="cpu"))
    alone = [detector.detect(image) for image in images]
    together = detector.detect_batch(images)
    assert sum(len(r.boxes) for r in alone) > 100  # real photos, real detections
    for one, batched in zip(alone, together, strict=True):
        assert [b.label for b in one.boxes] == [b.label for b in batched.boxes]
        for a, b in zip(one.boxes, batched.boxes, strict=True):
            assert abs(a.confidence - b.confidence) <= 1e-3
            assert max(abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)) <= 0.5


def test_analyses_waiting_together_are_detected_in_one_batch(make_app, monkeypatch):
    # the batch waits for photos still being read however long they take: on a busy machine the
    # eight may still be decoding when the gate opens (a 50 ms wait once gave batches of 3, 2, 3)
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=4, DETECT_BATCH_WAIT_MS=60_000)
    gate = Gate(monkeypatch, app)
    api = ApiActions(app.test_client()).user()
    assert api.upload(*photos_png(1)).status_code == 202
    assert gate.entered.wait(60)  # the first photo is in detection, alone: the rest queue up
    assert api.upload(*photos_png(8)).status_code == 202
    gate.open()
    assert get_runner(app).wait(timeout=120)
    assert gate.sizes == [1, 4, 4]
    assert {a.status for a in analyses(app)} == {RunStatus.DONE}


def test_a_batch_is_stored_with_one_insert_of_detections_and_one_commit(make_app, monkeypatch):
    # the batch waits for photos still being read however long they take (a busy machine), not 20 ms
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=4, DETECT_BATCH_WAIT_MS=60_000, YOLO_STORE_FLOOR=0.0)
    gate = Gate(monkeypatch, app)
    statements, commits = [], []
    with app.app_context():
        engine = db.engine

    @sa.event.listens_for(engine, "before_execute")
    def count(conn, clauseelement, multiparams, params, execution_options):
        # one statement as the app executes it (the driver may send a large one in pages)
        if isinstance(clauseelement, sa.Insert) and clauseelement.table.name == "detection":
            statements.append(threading.current_thread().name)

    @sa.event.listens_for(engine, "commit")
    def count_commit(conn):
        commits.append(threading.current_thread().name)

    api = ApiActions(app.test_client()).user()
    api.upload(*photos_png(1))
    assert gate.entered.wait(60)
    api.upload(*photos_png(4))
    gate.open()
    assert get_runner(app).wait(timeout=120)
    assert gate.sizes == [1, 4]
    rows = analyses(app)
    assert all(len(a.detections) > 0 for a in rows)  # a floor of 0 keeps every box of random weights
    stores = [name for name in statements if name.startswith("run-store")]
    assert len(stores) == 2  # the photo alone, then the batch of four: one INSERT each
    assert len([name for name in commits if name.startswith("run-store")]) == 2
    sa.event.remove(engine, "before_execute", count)
    sa.event.remove(engine, "commit", count_commit)


def test_a_single_photo_on_an_idle_system_does_not_wait_for_a_batch(make_app):
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=32, DETECT_BATCH_WAIT_MS=600_000)
    api = ApiActions(app.test_client()).user()
    response = api.upload(*photos_png(1), query="?wait=true")
    assert response.status_code == 201  # finished, not held ten minutes for 31 more photos
    assert response.json["analyses"][0]["status"] == "done"


def test_a_flood_of_queued_uploads_holds_a_bounded_number_of_decoded_photos(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=2, DETECT_THREADS=2)
    gate = Gate(monkeypatch, app)
    api = ApiActions(app.test_client()).user()
    for _ in range(8):
        assert api.upload(*photos_png(5)).status_code == 202
    assert gate.entered.wait(60)
    stream = get_runner(app).stream(detect_run)
    held = stream.held_images()
    assert 0 < held <= stream.pixel_bound() < 40  # 40 queued; pixels for a bounded few, ids for the rest
    gate.open()
    assert get_runner(app).wait(timeout=120)
    assert stream.held_images() == 0
    rows = analyses(app)
    assert len(rows) == 40 and {a.status for a in rows} == {RunStatus.DONE}


def test_a_photo_that_breaks_a_batched_prediction_fails_alone(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=4, DETECT_BATCH_WAIT_MS=60_000)  # the three together
    gate = Gate(monkeypatch, app, poisoned=lambda image: image.shape[1] == 97)
    api = ApiActions(app.test_client()).user()
    api.upload(("first.png", encode(sample(200, 64), "PNG")))
    assert gate.entered.wait(60)
    api.upload(*photos_png(3))  # 96, 97 (poisoned) and 98 pixels wide
    gate.open()
    assert get_runner(app).wait(timeout=120)
    assert gate.sizes == [1, 3, 1, 1, 1]  # the batch failed, then each photo was tried alone
    by_width = {a.photo.width: a for a in analyses(app)}
    assert by_width[97].status == RunStatus.FAILED and by_width[97].annotated_path is None
    assert {by_width[w].status for w in (200, 96, 98)} == {RunStatus.DONE}
    assert not [p for p in stored_files(app) if p.name.startswith(".tmp")]
    assert not [p for p in stored_files(app) if p.name.startswith("annotated")]  # drawn when asked for
    with app.app_context():
        assert counts.check_counts() == []


def test_the_first_upload_does_not_wait_for_the_model_to_load(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    detector = get_detector(app)
    loading, release = threading.Event(), threading.Event()
    real_load = detector.load

    def slow_load():
        loading.set()
        assert release.wait(60)
        return real_load()

    monkeypatch.setattr(detector, "load", slow_load)
    api = ApiActions(app.test_client()).user()
    answered = []
    request = threading.Thread(target=lambda: answered.append(api.upload(*photos_png(1)).status_code))
    request.start()
    request.join(30)
    assert answered == [202]  # queued while the detection thread is still loading the model
    assert loading.wait(30)
    release.set()
    assert get_runner(app).wait(timeout=120)
    assert [a.status for a in analyses(app)] == [RunStatus.DONE]


def test_closing_without_finishing_leaves_the_queued_analyses_pending(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=1)
    gate = Gate(monkeypatch, app)
    api = ApiActions(app.test_client()).user()
    api.upload(*photos_png(6))
    assert gate.entered.wait(60)
    closing = threading.Thread(target=lambda: get_runner(app).close(finish=False))
    closing.start()
    gate.open()
    closing.join(60)
    assert not closing.is_alive()
    statuses = [a.status for a in analyses(app)]
    assert RunStatus.DONE in statuses and RunStatus.PENDING in statuses
    assert set(statuses) <= {RunStatus.DONE, RunStatus.PENDING}
    assert not [p for p in stored_files(app) if p.name.startswith(".tmp")]
    with app.app_context():
        assert counts.check_counts() == []
