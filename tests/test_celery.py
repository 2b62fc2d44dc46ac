"""ANALYSIS_EXECUTOR=celery: detection on real Celery worker processes over the real Redis.
Nothing lost (a killed worker's analysis is finished by the next one), nothing doubled, nothing
stored when the broker is down, and a web tier that never imports torch."""
import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.factories import add_analysis
from tests.helpers import ApiActions, Workers, analyses, fresh_redis, redis_url, stored_files, upload, worker_env
from tests.images import encode, sample
from webapp.jobs.pipeline import GAVE_UP
from webapp.jobs.queue import detect_run
from webapp.jobs.recovery import fail_interrupted
from webapp.jobs.scheduling import PING_CACHE_SECONDS
from webapp.config import BASE_DIR
from webapp.extensions import db
from webapp.models import RunStatus

REDIS_URL = redis_url(13)  # a database of its own, flushed by each test


@pytest.fixture
def broker():
    client = fresh_redis(REDIS_URL)
    yield REDIS_URL
    client.flushdb()


@pytest.fixture
def celery_app(make_app, broker):
    """The web tier in Celery mode (random-weight model configured, never loaded here)."""
    return make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker, CELERY_VISIBILITY_TIMEOUT=4)


@pytest.fixture
def workers(celery_app, tmp_path):
    pool = Workers(celery_app, tmp_path)
    yield pool
    pool.stop()


def age_unacknowledged(url: str, seconds: float) -> None:
    """Make the tasks delivered and not acknowledged look `seconds` older to the broker (kombu
    keeps their delivery times as scores), rather than waiting out the visibility timeout."""
    client = redis.Redis.from_url(url)
    for member, delivered in client.zrange("unacked_index", 0, -1, withscores=True):
        client.zadd("unacked_index", {member: delivered - seconds})


def wait_for_status(app, public_id, statuses, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = {a.public_id: a for a in analyses(app)}.get(public_id)
        if found is not None and found.status in statuses:
            return found
        time.sleep(0.05)
    raise AssertionError(f"analysis {public_id} never reached {statuses}")


def test_an_upload_is_queued_with_its_id_only_and_a_worker_process_finishes_it(celery_app, workers):
    workers.start()
    api = ApiActions(celery_app.test_client()).user()
    response = api.upload(("photo.png", encode(sample(), "PNG")), query="?wait=true")
    assert response.status_code == 201, response.json
    [analysis] = response.json["analyses"]
    assert analysis["status"] == "done" and analysis["device"] == "cpu"
    [row] = analyses(celery_app)
    assert row.worker.startswith("celery:") and row.attempts == 1
    assert {p.name for p in stored_files(celery_app)} == {"original.png", "thumbnail.jpg"}


def test_a_worker_that_finds_several_analyses_waiting_detects_them_in_batches(celery_app, workers):
    api = ApiActions(celery_app.test_client()).user()
    photos = [(f"p{i}.png", encode(sample(90 + i, 64), "PNG")) for i in range(8)]
    assert api.upload(*photos).status_code == 202  # queued on the broker before any worker runs
    workers.start(DETECT_BATCH="4", DETECT_THREADS="2", DETECT_BATCH_WAIT_MS="3000", LOG_LEVEL="DEBUG")
    for row in analyses(celery_app):
        assert wait_for_status(celery_app, row.public_id, {RunStatus.DONE}).status == RunStatus.DONE
    log = (workers.logs / "worker-0.log").read_text(errors="replace")
    assert "concurrency: 10 (thread)" in log  # 2 batches in flight + the reading/drawing threads
    sizes = [int(n) for n in re.findall(r"Detected a batch of (\d+)", log)]
    assert sum(sizes) == 8 and max(sizes) == 4, sizes  # batched (how the 8 split depends on delivery timing)
    assert {row.attempts for row in analyses(celery_app)} == {1}


def test_a_queued_task_carries_the_analysis_id_and_nothing_else(celery_app, broker):
    api = ApiActions(celery_app.test_client()).user()
    api.upload(("photo.png", encode(sample(), "PNG")))  # no worker: it stays on the broker
    [message] = redis.Redis.from_url(broker).lrange("detect", 0, -1)
    body = json.loads(message)
    [row] = analyses(celery_app)
    assert body["headers"]["task"] == "webapp.analyses.pipeline.run_analysis"  # the name messages carry: kept
    assert body["headers"]["argsrepr"] == f"({row.id},)" and len(message) < 4096
    assert row.status == RunStatus.PENDING and row.worker == "celery"


@pytest.mark.real_model
def test_a_worker_killed_mid_analysis_is_replaced_and_the_analysis_ends_done_once(celery_app, workers, coco_model):
    """SIGKILL of the whole worker while it runs an analysis; a new worker takes the redelivered
    task (after the visibility timeout) and finishes it: one set of detections, one annotated file."""
    celery_app.config["YOLO_MODEL"] = coco_model
    api = ApiActions(celery_app.test_client()).user()
    big = encode(sample(6000, 4500), "JPEG")  # 27 MP to decode and detect: time enough to interrupt
    killed = None
    for _ in range(5):  # until a kill lands while the analysis runs (it may finish just before)
        first = workers.start()
        for _ in range(5):
            public_id = api.upload(("big.jpg", big)).json["analyses"][0]["id"]
            caught = wait_for_status(celery_app, public_id, {RunStatus.RUNNING, RunStatus.DONE})
            if caught.status == RunStatus.RUNNING:
                break
        workers.kill(first)
        killed = {a.public_id: a for a in analyses(celery_app)}[public_id]
        if killed.status == RunStatus.RUNNING:
            break
    assert killed.status == RunStatus.RUNNING, "never killed a worker while it ran an analysis"
    age_unacknowledged(celery_app.config["CELERY_BROKER_URL"], celery_app.config["CELERY_VISIBILITY_TIMEOUT"] + 1)
    workers.start()
    done = wait_for_status(celery_app, public_id, {RunStatus.DONE, RunStatus.FAILED})
    assert done.status == RunStatus.DONE, (done.error, workers.log())
    assert done.attempts == 2 and done.worker != caught.worker
    boxes = [(d.class_id, round(d.confidence, 4), round(d.x1), round(d.y1)) for d in done.detections]
    assert len(boxes) == len(set(boxes))  # exactly one set, nothing inserted twice
    folder = Path(celery_app.config["UPLOAD_DIR"]) / done.photo.folder
    assert sorted(p.name for p in folder.iterdir()) == ["original.jpg", "thumbnail.jpg"]


def test_what_a_killed_worker_had_fetched_is_run_by_the_next_one_without_waiting_out_the_visibility_timeout(
        make_app, broker, tmp_path):
    """A worker fetches more tasks than it runs at once. Killed, it takes their messages with it
    for the visibility timeout (an hour by default); the next worker to start queues those runs
    again at once, as well as the one it was running, and each photo ends done once."""
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker, CELERY_VISIBILITY_TIMEOUT=3600)
    pool = Workers(app, tmp_path)
    try:
        first = pool.start(DETECT_THREADS="1")
        api = ApiActions(app.test_client()).user()
        big = [(f"big-{i}.png", encode(sample(6000 + i, 4500), "PNG")) for i in range(6)]
        ids = [a["id"] for a in api.upload(*big).json["analyses"]]
        deadline = time.monotonic() + 120
        while not any(a.status == RunStatus.RUNNING for a in analyses(app)) and time.monotonic() < deadline:
            time.sleep(0.05)
        pool.kill(first)
        rows = {a.public_id: a for a in analyses(app)}
        fetched = [p for p in ids if rows[p].status == RunStatus.PENDING]
        assert fetched and redis.Redis.from_url(broker).hlen("unacked") > 0  # held by the dead worker
        pool.start(DETECT_THREADS="1")
        for public_id in ids:
            assert wait_for_status(app, public_id, {RunStatus.DONE}, seconds=90).status == RunStatus.DONE
        assert all(a.attempts in (1, 2) for a in analyses(app))
    finally:
        pool.stop()


def test_a_photo_that_keeps_killing_its_worker_is_given_up(celery_app):
    """Its fourth start (ANALYSIS_MAX_ATTEMPTS = 3) marks it failed instead of running it."""
    stuck = add_analysis(celery_app, status=RunStatus.PENDING, attempts=3, worker="celery")
    with celery_app.app_context():
        detect_run(stuck.id)
    [row] = analyses(celery_app)
    assert row.status == RunStatus.FAILED and row.error == GAVE_UP.format(n=3)


def test_a_web_restart_leaves_work_on_the_broker_alone(celery_app):
    add_analysis(celery_app, status=RunStatus.PENDING, worker="celery")
    with celery_app.app_context():
        assert fail_interrupted() == 0
    assert analyses(celery_app)[0].status == RunStatus.PENDING


def test_with_the_broker_down_an_upload_is_refused_and_nothing_is_stored(make_app, auth_factory):
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    api = ApiActions(app.test_client()).user()
    response = api.upload(("photo.png", encode(sample(), "PNG")))
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert "queue cannot be reached" in response.json["detail"] and response.headers["Retry-After"] == "30"
    client, auth = auth_factory(app)
    auth.signup(email="page@example.com")
    page = upload(client, ("photo.png", encode(sample(), "PNG")), headers={"HX-Request": "true"})
    assert page.status_code == 422 and "queue cannot be reached" in page.get_data(as_text=True)
    assert analyses(app) == [] and stored_files(app) == []
    health = app.test_client().get("/healthz")
    assert health.status_code == 200 and health.json["broker"] == "unreachable"
    gallery = client.get("/analyses").get_data(as_text=True)
    assert "the job queue cannot be reached" in gallery and "Uploads are refused until it is back" in gallery


def test_healthz_reports_the_broker_and_the_workers_that_answer(celery_app, workers):
    assert celery_app.test_client().get("/healthz").json == {
        "status": "ok", "database": "ok", "broker": "ok", "workers": 0, "devices": {},
        "model": "unavailable: no detection worker is running", "rate_limits": "ok"}
    workers.start()
    deadline = time.monotonic() + PING_CACHE_SECONDS + 5  # the count is at most that old
    while (health := celery_app.test_client().get("/healthz").json)["workers"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert health == {"status": "ok", "database": "ok", "broker": "ok", "workers": 1, "devices": {"cpu": 1},
                      "model": "ok", "rate_limits": "ok"}  # the devices the answering workers detect on


def test_classes_are_checked_against_what_the_worker_reported(celery_app, workers):
    api = ApiActions(celery_app.test_client()).user()
    before = api.upload(("photo.png", encode(sample(), "PNG")), classes="0")
    assert before.status_code == 503 and "no detection worker is running" in before.json["detail"]
    workers.start()
    assert api.upload(("photo.png", encode(sample(), "PNG")), classes="unicorn").status_code == 422
    assert api.upload(("photo.png", encode(sample(), "PNG")), classes="0").status_code == 202
    assert len(analyses(celery_app)) == 1


def test_the_web_tier_never_imports_torch(make_app, broker, tmp_path):
    """In a fresh process (this one has torch from other tests): serve uploads, the gallery, the
    API, images and exports in Celery mode, then look at sys.modules."""
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker)
    with app.app_context():
        db.create_all()
    script = BASE_DIR / "tests" / "web_tier_imports.py"
    env = {**worker_env(app), "YOLO_MODEL": "yolo11n.yaml", "SESSION_COOKIE_SECURE": "0",
           "ANALYSIS_EXECUTOR": "celery", "PYTHONPATH": str(BASE_DIR)}
    result = subprocess.run([sys.executable, str(script)], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [202] + [200] * 15
    assert report["heavy_modules"] == []


def running_row_with_its_photo(app, worker: str):
    """A `running` analysis whose stored original exists, claimed by `worker`."""
    row = add_analysis(app, status=RunStatus.RUNNING, worker=worker)
    folder = Path(app.config["UPLOAD_DIR"]) / row.photo.folder
    folder.mkdir(parents=True)
    (folder / "original.jpg").write_bytes(encode(sample(), "JPEG"))
    return row


@pytest.mark.parametrize("claimant, taken_over", [
    ("celery:another-host:4242:1", True),  # a container that is gone: this host cannot see it
    ("celery:{here}:999999:1", True),  # a dead process of this host
    ("celery:{alive}", False),  # a live process of this host is still running it
])
def test_a_redelivered_task_takes_over_unless_its_claimant_is_alive_here(
        celery_app, monkeypatch, claimant, taken_over):
    import socket

    from webapp.jobs import processes as jobs_processes, scheduling as jobs

    worker = claimant.format(here=socket.gethostname(), alive=jobs_processes.worker_id())
    row = running_row_with_its_photo(celery_app, worker)
    monkeypatch.setattr(jobs, "redelivered", lambda: True)  # what the broker flags on a redelivery
    with celery_app.app_context():
        detect_run(row.id)
    [after] = analyses(celery_app)
    if taken_over:
        assert after.status == RunStatus.DONE and after.attempts == 1 and after.worker != worker
    else:
        assert after.status == RunStatus.RUNNING and after.attempts == 0 and after.worker == worker


def test_a_task_delivered_once_never_takes_over_a_running_analysis(celery_app):
    row = running_row_with_its_photo(celery_app, "celery:another-host:4242:1")
    with celery_app.app_context():
        detect_run(row.id)
    assert analyses(celery_app)[0].status == RunStatus.RUNNING


def test_a_worker_start_queues_again_what_the_broker_lost(celery_app, broker):
    import socket

    lost = add_analysis(celery_app, status=RunStatus.PENDING, worker="celery")  # message gone
    orphan = add_analysis(celery_app, status=RunStatus.RUNNING,
                          worker=f"celery:{socket.gethostname()}:999999:1")  # its worker died
    with celery_app.app_context():
        from webapp.jobs.recovery import requeue_lost

        assert requeue_lost() == 2
    queued = [json.loads(m)["headers"]["argsrepr"] for m in redis.Redis.from_url(broker).lrange("detect", 0, -1)]
    assert sorted(queued) == sorted([f"({lost.id},)", f"({orphan.id},)"])
    assert {a.status for a in analyses(celery_app)} == {RunStatus.PENDING}


def test_a_worker_start_does_not_duplicate_what_the_broker_still_holds(celery_app, broker):
    api = ApiActions(celery_app.test_client()).user()
    api.upload(("photo.png", encode(sample(), "PNG")))  # queued, no worker yet
    with celery_app.app_context():
        from webapp.jobs.recovery import requeue_lost

        assert requeue_lost() == 0
    assert redis.Redis.from_url(broker).llen("detect") == 1


def test_detection_is_available_when_any_worker_reports_a_working_model(celery_app, broker):
    from webapp.detection import availability as detection_status

    reports = redis.Redis.from_url(broker)
    working = {"model": "m", "names": {"0": "person"}, "reason": None, "fix": None, "at": 1}
    broken = {"model": "m", "names": None, "reason": "the detection model could not be loaded", "fix": "f", "at": 2}
    reports.hset(detection_status.REPORT_KEY, mapping={"a:1:1": json.dumps(working), "b:2:2": json.dumps(broken)})
    with celery_app.app_context():
        assert detection_status.availability() is None and detection_status.class_names() == {0: "person"}
        reports.hdel(detection_status.REPORT_KEY, "a:1:1")  # the working worker stopped
        assert detection_status.availability().reason == "the detection model could not be loaded"


def test_wait_is_not_honoured_when_every_waiting_slot_is_taken(celery_app, monkeypatch):
    import threading

    from webapp.api import analyses as api_analyses

    taken = threading.BoundedSemaphore(1)
    taken.acquire()
    monkeypatch.setattr(api_analyses, "_waiting", taken)
    api = ApiActions(celery_app.test_client()).user()
    started = time.monotonic()
    response = api.upload(("photo.png", encode(sample(), "PNG")), query="?wait=true")  # no worker runs
    assert response.status_code == 202 and time.monotonic() - started < 5


def test_a_running_worker_finds_work_whose_message_was_lost_within_the_sweep_interval(celery_app, workers):
    """A run committed pending on the broker's side with no message (a web process killed between
    commit and publish; Redis restarted without persistence) is found and queued again by the
    workers already running, within LOST_WORK_SECONDS, and run once."""
    from tests import factories
    from webapp.analyses.uploads import accept

    workers.start(LOST_WORK_SECONDS="1")
    with celery_app.app_context():
        run = accept(factories.user(), "lost.png", io.BytesIO(encode(sample(), "PNG")))  # stored, never published
        run_id = run.public_id
    started = time.monotonic()
    done = wait_for_status(celery_app, run_id, {RunStatus.DONE, RunStatus.FAILED}, seconds=60)
    assert done.status == RunStatus.DONE and done.attempts == 1, (done.error, workers.log())
    assert time.monotonic() - started < 20
    assert "Queued 1 runs again that no task on the broker would have run" in workers.log()


def test_an_upload_waiting_for_its_run_is_woken_by_the_workers_news(celery_app, workers, broker, monkeypatch):
    """`?wait=true` wakes on the news a worker publishes once it committed the run (a Redis
    channel), not on reading the database in a loop: with that loop's read once a minute here,
    the answer still comes right after the news reaches another subscriber. (How soon, in
    milliseconds, is a figure for a benchmark on an idle machine, not an assertion here.)"""
    from webapp.jobs import news

    monkeypatch.setattr(news, "CHECK_SECONDS", 60.0)  # the rows are read again only on news

    api = ApiActions(celery_app.test_client()).user()
    subscriber = redis.Redis.from_url(broker).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(news.CHANNEL)
    answer = {}

    def upload():
        response = api.upload(("photo.png", encode(sample(), "PNG")), query="?wait=true")
        answer["status"], answer["at"] = response.status_code, time.monotonic()

    waiting = threading.Thread(target=upload)
    waiting.start()  # queued: no worker yet; the request waits
    workers.start()  # loads its model (seconds), then detects the photo
    heard = None
    deadline = time.monotonic() + 60
    while heard is None and time.monotonic() < deadline:
        if subscriber.get_message(timeout=1.0) is not None:
            heard = time.monotonic()
    waiting.join(60)
    assert heard is not None and answer["status"] == 201
    assert answer["at"] - heard < 10, f"answered {answer['at'] - heard:.1f} s after the news: not woken by it"


def test_a_running_worker_reports_its_model_again_after_redis_forgot_it(celery_app, workers, broker):
    """A Redis restarted without its data forgets the workers' reports: the web tier must not go
    on saying no detection worker is running while one is (it writes its report again with its
    lost-work sweep)."""
    from webapp.detection.availability import REPORT_KEY

    workers.start(LOST_WORK_SECONDS="1")
    client = redis.Redis.from_url(broker)
    assert client.hlen(REPORT_KEY) == 1
    client.flushdb()  # as a restart without persistence leaves it
    deadline = time.monotonic() + 15
    while client.hlen(REPORT_KEY) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.hlen(REPORT_KEY) == 1


def test_download_everything_is_built_by_a_worker_process(celery_app, workers):
    """The takeout job travels like detection: queued by the web tier, built by a worker, which
    shares UPLOAD_DIR; the page polls its progress and links the zip."""
    import zipfile

    from tests.helpers import AuthActions, csrf_from

    workers.start()
    photo = encode(sample(), "PNG")
    api = ApiActions(celery_app.test_client()).user()
    assert api.upload(("photo.png", photo), query="?wait=true").status_code == 201
    browser = celery_app.test_client()
    AuthActions(browser).login()
    browser.post("/account/takeout", data={"csrf_token": csrf_from(browser.get("/account").get_data(as_text=True))})
    deadline = time.monotonic() + 60
    while "Your download is ready" not in (status := browser.get("/account/takeout/status").get_data(as_text=True)):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    link = re.search(r'href="(/account/takeout/[0-9a-f]{32})"', status).group(1)
    archive = zipfile.ZipFile(io.BytesIO(browser.get(link).data))
    assert [archive.read(n) for n in archive.namelist() if n.startswith("originals/")] == [photo]
