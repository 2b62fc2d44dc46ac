"""One user's backlog does not starve another's photos: a user's photos are queued at a lower
priority the more of theirs are already waiting (priorities.fair_priority), in the thread
executor's stream and on the Celery broker. A queues 200 photos, then B one: B's is done before
A's 20th (the rest of A's backlog is not waited for). The model runs at 64 px: what is measured
is the order, not detection."""
import threading
import time

import pytest

from tests.helpers import ApiActions, Workers, analyses, fresh_redis, redis_url
from tests.images import encode, sample
from webapp.jobs import scheduling as jobs
from webapp.jobs import pipeline, priorities
from webapp.models import RunStatus

BACKLOG = 200
BROKER = redis_url(14)


def queue_backlog_then_one(app) -> tuple[ApiActions, ApiActions]:
    a = ApiActions(app.test_client()).user("a@example.com")
    b = ApiActions(app.test_client()).user("b@example.com")
    for start in range(0, BACKLOG, 100):
        batch = [(f"a{i}.png", encode(sample(64 + i % 50, 48), "PNG")) for i in range(start, start + 100)]
        assert a.upload(*batch).status_code == 202
    assert b.upload(("b.png", encode(sample(80, 60), "PNG"))).status_code == 202
    return a, b


def wait_for_b(app, seconds=180):
    """Every row, once B's photo has finished."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = analyses(app)
        if any(row.photo.original_filename == "b.png" and row.status not in RunStatus.active() for row in rows):
            return rows
        time.sleep(0.1)
    raise AssertionError("B's photo did not finish")


def assert_b_before_a_20th(rows):
    b_row = next(row for row in rows if row.photo.original_filename == "b.png")
    assert b_row.status == RunStatus.DONE, b_row.error
    a_before = [row for row in rows if row.user_id != b_row.user_id and row.status == RunStatus.DONE
                and row.finished_at <= b_row.finished_at]
    assert len(a_before) < 20, f"B's photo finished after {len(a_before)} of A's"


@pytest.mark.parametrize("queued, priority", [(0, 0), (7, 0), (8, 3), (31, 3), (32, 6), (127, 6), (128, 9),
                                              (10_000, 9)])
def test_a_users_photos_go_lower_the_more_of_theirs_are_queued(queued, priority):
    assert priorities.fair_priority(queued) == priority


def test_the_thread_executor_runs_another_users_photo_before_a_long_backlog(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=2, DETECT_THREADS=2, YOLO_IMGSZ=64)
    gate = threading.Event()  # detection waits until both users have queued their photos
    detect = pipeline.detect

    def gated(batch):
        gate.wait(120)
        detect(batch)

    monkeypatch.setattr(pipeline, "detect", gated)
    queue_backlog_then_one(app)
    gate.set()
    try:
        assert_b_before_a_20th(wait_for_b(app))
    finally:
        jobs.get_runner(app).close(finish=False)  # A's backlog: not waited for


def test_celery_runs_another_users_photo_before_a_long_backlog(make_app, tmp_path):
    fresh_redis(BROKER)
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=BROKER, YOLO_IMGSZ=64)
    queue_backlog_then_one(app)  # all on the broker before any worker runs
    workers = Workers(app, tmp_path)
    try:
        workers.start(DETECT_BATCH="2", DETECT_THREADS="2", YOLO_IMGSZ="64")
        assert_b_before_a_20th(wait_for_b(app))
    finally:
        workers.stop()
        jobs.get_runner(app).close()
