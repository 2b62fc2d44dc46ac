"""One user's backlog does not starve another's photos: a user's photos are queued at a lower
priority the more of theirs are already waiting (priorities.fair_priority), in the thread
executor's stream and on the Celery broker. A queues 200 photos, then B one: B's is done before
A's 20th."""
import threading
import time

import pytest

from tests.helpers import ApiActions, Workers, analyses, fresh_redis
from tests.images import encode, sample
from webapp.jobs import scheduling as jobs
from webapp.jobs import pipeline, priorities
from webapp.models import RunStatus

BACKLOG = 200
BROKER = "redis://127.0.0.1:6379/14"


def queue_backlog_then_one(app) -> tuple[ApiActions, ApiActions]:
    a = ApiActions(app.test_client()).user("a@example.com")
    b = ApiActions(app.test_client()).user("b@example.com")
    for start in range(0, BACKLOG, 100):
        batch = [(f"a{i}.png", encode(sample(64 + i % 50, 48), "PNG")) for i in range(start, start + 100)]
        assert a.upload(*batch).status_code == 202
    assert b.upload(("b.png", encode(sample(80, 60), "PNG"))).status_code == 202
    return a, b


def wait_all_finished(app, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = analyses(app)
        if all(row.status not in RunStatus.active() for row in rows):
            return rows
        time.sleep(0.2)
    raise AssertionError("the analyses did not finish")


def assert_b_before_a_20th(rows):
    assert {row.status for row in rows} == {RunStatus.DONE}
    b_row = next(row for row in rows if row.photo.original_filename == "b.png")
    a_done = sorted(row.finished_at for row in rows if row.user_id != b_row.user_id)
    assert len(a_done) == BACKLOG
    assert b_row.finished_at < a_done[19], (
        f"B's photo finished after {sum(t <= b_row.finished_at for t in a_done)} of A's")


@pytest.mark.parametrize("queued, priority", [(0, 0), (7, 0), (8, 3), (31, 3), (32, 6), (127, 6), (128, 9),
                                              (10_000, 9)])
def test_a_users_photos_go_lower_the_more_of_theirs_are_queued(queued, priority):
    assert priorities.fair_priority(queued) == priority


def test_the_thread_executor_runs_another_users_photo_before_a_long_backlog(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread", DETECT_BATCH=2, DETECT_THREADS=2, DETECT_WINDOW=2)
    gate = threading.Event()  # detection waits until both users have queued their photos
    detect = pipeline.detect

    def gated(batch):
        gate.wait(120)
        detect(batch)

    monkeypatch.setattr(pipeline, "detect", gated)
    queue_backlog_then_one(app)
    gate.set()
    assert jobs.get_runner(app).wait(timeout=180)
    assert_b_before_a_20th(wait_all_finished(app))


def test_celery_runs_another_users_photo_before_a_long_backlog(make_app, tmp_path):
    fresh_redis(BROKER)
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=BROKER)
    queue_backlog_then_one(app)  # all on the broker before any worker runs
    workers = Workers(app, tmp_path)
    try:
        workers.start(DETECT_BATCH="2", DETECT_THREADS="2")
        assert_b_before_a_20th(wait_all_finished(app))
    finally:
        workers.stop()
        jobs.get_runner(app).close()
