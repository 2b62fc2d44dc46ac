"""The DeepStack-compatible endpoint, `POST /v1/vision/detection`: the real `deepstack-python`
client against gunicorn, DeepStack's answer and error shapes, API keys of either scope, nothing
stored unless the key keeps detections, and in scale-out mode the detection runs on a worker."""
import io
import json
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from tests.helpers import (
    GUNICORN, ApiActions, Workers, analyses, free_port, fresh_redis, gunicorn, production_env, redis_url, serving,
    stored_files,
)
from tests.images import HOSTILE, encode, sample
from webapp.vision.images import DAMAGED
from webapp.config import BASE_DIR

URL = "/v1/vision/detection"


def key_for(client, api, **body) -> str:
    response = client.post("/api/v1/keys", json={"name": "camera", **body}, headers=api.headers)
    assert response.status_code == 201
    return response.get_json()["key"]


def detect(client, data: bytes, **form):
    return client.post(URL, data={"image": (io.BytesIO(data), "image"), **form}, content_type="multipart/form-data")


@pytest.mark.real_model
def test_the_deepstack_python_client_finds_the_bus_through_gunicorn(tmp_path, coco_model, assets):
    from deepstack.core import DeepstackObject

    port = free_port()
    env = production_env(tmp_path, YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    migrated = subprocess.run([str(GUNICORN.parent / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=BASE_DIR,
                              env=env, capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    with serving(gunicorn(port), env, port):
        base = f"http://127.0.0.1:{port}"
        creds = json.dumps({"email": "cam@example.com", "password": "a long passphrase"}).encode()
        for path in ("/api/v1/auth/signup", "/api/v1/auth/login"):
            request = urllib.request.Request(base + path, data=creds, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        request = urllib.request.Request(base + "/api/v1/keys", data=json.dumps({"name": "ha", "scope": "detect-only"})
                                         .encode(), headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {answer['access_token']}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            key = json.loads(response.read())["key"]
        client = DeepstackObject(ip="127.0.0.1", port=port, api_key=key, timeout=60, min_confidence=0.4)
        predictions = client.detect((assets / "bus.jpg").read_bytes())
    labels = [p["label"] for p in predictions]
    assert labels.count("bus") == 1 and labels.count("person") >= 4
    assert all(isinstance(p[k], int) for p in predictions for k in ("x_min", "y_min", "x_max", "y_max"))
    assert all(p["confidence"] >= 0.4 for p in predictions)


@pytest.mark.real_model
def test_the_answer_has_deepstacks_shape_and_stores_nothing(app, client, assets):
    key = key_for(client, ApiActions(client).user())
    response = detect(app.test_client(), (assets / "bus.jpg").read_bytes(), api_key=key, min_confidence="0.5")
    body = response.get_json()
    assert response.status_code == 200 and body["success"] is True and isinstance(body["duration"], int)
    assert {"label", "confidence", "x_min", "y_min", "x_max", "y_max"} == set(body["predictions"][0])
    assert min(p["confidence"] for p in body["predictions"]) >= 0.5
    assert analyses(app) == [] and stored_files(app) == []


@pytest.mark.real_model
def test_a_key_that_keeps_detections_stores_each_call_as_an_analysis(app, client, assets):
    key = key_for(client, ApiActions(client).user(), save_to_gallery=True)
    body = detect(app.test_client(), (assets / "bus.jpg").read_bytes(), api_key=key).get_json()
    assert body["success"] is True and "bus" in {p["label"] for p in body["predictions"]}
    [row] = analyses(app)
    assert row.status == "done" and row.conf == 0.4
    assert sorted(p["label"] for p in body["predictions"]) == sorted(d.label for d in row.detections_at())


@pytest.mark.parametrize("form, status, words", [
    ({}, 401, "API key is required"),
    ({"api_key": "spt_wrong"}, 401, "Invalid API key"),
])
def test_without_a_valid_key_the_answer_is_a_deepstack_error(client, form, status, words):
    response = detect(client, encode(sample(), "PNG"), **form)
    assert response.status_code == status
    assert response.get_json()["success"] is False and words in response.get_json()["error"]


def test_a_damaged_photo_sent_with_a_keeping_key_is_a_400_and_kept_failed(app, client):
    key = key_for(client, ApiActions(client).user(), save_to_gallery=True)
    response = detect(app.test_client(), HOSTILE["truncated JPEG"][1], api_key=key)
    assert response.status_code == 400
    assert response.get_json()["success"] is False and response.get_json()["error"] == DAMAGED
    [row] = analyses(app)
    assert row.status == "failed" and row.error == DAMAGED


@pytest.mark.parametrize("data, form, words", [
    (b"not an image", {}, "not"),
    (None, {"min_confidence": "lots"}, "min_confidence"),
    (None, {"min_confidence": "1.5"}, "min_confidence"),
])
def test_bad_input_is_a_400_in_deepstacks_shape(app, client, data, form, words):
    key = key_for(client, ApiActions(client).user())
    response = detect(app.test_client(), data or encode(sample(), "PNG"), api_key=key, **form)
    assert response.status_code == 400 and response.get_json()["success"] is False
    assert words in response.get_json()["error"].lower() or words in response.get_json()["error"]
    assert analyses(app) == []


def test_a_photo_field_is_required(app, client):
    key = key_for(client, ApiActions(client).user())
    response = app.test_client().post(URL, data={"api_key": key}, content_type="multipart/form-data")
    assert response.status_code == 400 and "image" in response.get_json()["error"]


def test_the_key_may_come_in_the_header(app, client):
    key = key_for(client, ApiActions(client).user(), scope="detect-only")
    response = app.test_client().post(URL, data={"image": (io.BytesIO(encode(sample(), "PNG")), "image")},
                                      headers={"X-API-Key": key}, content_type="multipart/form-data")
    assert response.status_code == 200 and response.get_json()["success"] is True


def test_a_revoked_key_is_refused(app, client):
    api = ApiActions(client).user()
    created = client.post("/api/v1/keys", json={"name": "cam"}, headers=api.headers).get_json()
    client.delete(f"/api/v1/keys/{created['id']}", headers=api.headers)
    response = detect(app.test_client(), encode(sample(), "PNG"), api_key=created["key"])
    assert response.status_code == 401 and response.get_json()["success"] is False


def test_in_scale_out_mode_a_worker_detects_and_the_web_process_removes_the_photo(make_app, tmp_path):
    broker = redis_url(10)
    fresh_redis(broker)
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker, DEEPSTACK_TIMEOUT=60)
    client = app.test_client()
    key = key_for(client, ApiActions(client).user())
    workers = Workers(app, tmp_path)
    try:
        workers.start()
        started = time.monotonic()
        response = detect(app.test_client(), encode(sample(), "PNG"), api_key=key, min_confidence="0")
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["success"] is True and time.monotonic() - started < 60
        assert isinstance(response.get_json()["predictions"], list)
    finally:
        workers.stop()
    assert stored_files(app) == [] and analyses(app) == []


def test_in_scale_out_mode_without_a_worker_the_answer_is_a_503_in_time(make_app):
    broker = redis_url(10)
    fresh_redis(broker)
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker, DEEPSTACK_TIMEOUT=2)
    client = app.test_client()
    key = key_for(client, ApiActions(client).user())
    response = detect(app.test_client(), encode(sample(), "PNG"), api_key=key)
    assert response.status_code == 503 and "No detection worker answered" in response.get_json()["error"]
    assert stored_files(app) == []


def test_errors_outside_the_view_keep_deepstacks_shape(make_app):
    app = make_app(MAX_CONTENT_LENGTH=10_000)
    client = app.test_client()
    wrong_method = client.get(URL)
    assert wrong_method.status_code == 405 and wrong_method.get_json()["success"] is False
    too_large = client.post(URL, data={"image": (io.BytesIO(b"x" * 20_000), "image")},
                            content_type="multipart/form-data")
    assert too_large.status_code == 413 and too_large.get_json()["success"] is False


def test_a_new_keys_secret_is_never_cached(app, client, auth):
    api = ApiActions(client).user()
    response = client.post("/api/v1/keys", json={"name": "x"}, headers=api.headers)
    assert response.headers["Cache-Control"] == "private, no-store"


def test_photos_a_dead_web_process_left_behind_are_swept(app):
    import os

    from webapp import storage

    with app.app_context():
        storage.save(f"{storage.TEMPORARY_FOLDER}/old.jpg", b"x")
        storage.save(f"{storage.TEMPORARY_FOLDER}/new.jpg", b"x")
        old = storage.absolute(f"{storage.TEMPORARY_FOLDER}/old.jpg")
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        assert storage.sweep_temporary() == 1
        assert not old.exists() and storage.absolute(f"{storage.TEMPORARY_FOLDER}/new.jpg").exists()


@pytest.mark.real_model
def test_the_codeproject_ai_client_detects_without_a_key_from_an_open_network_through_gunicorn(
        tmp_path, coco_model, assets):
    """CodeProject.AI's client cannot send a key: from a network in DEEPSTACK_OPEN_NETWORKS it
    detects (nothing stored), and its boxes are Ultralytics' own on the same decoded photo;
    without that setting it gets the 401, as before."""
    from codeprojectai.core import CodeProjectAIException, CodeProjectAIObject
    from ultralytics import YOLO

    from webapp.vision.images import decode

    photo = (assets / "bus.jpg").read_bytes()
    [raw] = YOLO(coco_model, task="detect").predict(decode(photo, 10**8).pixels, imgsz=640, conf=0.45, iou=0.7,
                                                    verbose=False)
    names = raw.names
    expected = sorted((names[int(c)], round(p, 4), *(int(round(v)) for v in box)) for c, p, box in zip(
        raw.boxes.cls.tolist(), raw.boxes.conf.tolist(), raw.boxes.xyxy.tolist(), strict=True))
    for networks, opened in (("127.0.0.0/8", True), ("", False)):
        port, folder = free_port(), tmp_path / ("open" if opened else "closed")
        folder.mkdir()
        env = production_env(folder, YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread",
                             DEEPSTACK_OPEN_NETWORKS=networks)
        migrated = subprocess.run([str(GUNICORN.parent / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=BASE_DIR,
                                  env=env, capture_output=True, text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        with serving(gunicorn(port), env, port):
            client = CodeProjectAIObject(ip="127.0.0.1", port=port, timeout=60)  # min_confidence 0.45
            if not opened:
                with pytest.raises(CodeProjectAIException, match="401"):
                    client.detect(photo)
                continue
            predictions = client.detect(photo)
        got = sorted((p["label"], p["confidence"], p["x_min"], p["y_min"], p["x_max"], p["y_max"]) for p in predictions)
        assert got == expected and any(p[0] == "bus" for p in got)
        with sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///")) as conn:
            assert conn.execute("SELECT COUNT(*) FROM photo").fetchone() == (0,)  # nothing stored


def test_keyless_calls_from_an_open_network_are_rate_limited_per_address_and_keyed_ones_are_not(make_app):
    app = make_app(DEEPSTACK_OPEN_NETWORKS=["127.0.0.0/8"], DEEPSTACK_OPEN_RATE_LIMIT="2 per minute")
    client = app.test_client()
    statuses = [detect(client, encode(sample(), "PNG")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert detect(client, encode(sample(), "PNG")).get_json()["success"] is False
    key = key_for(client, ApiActions(client).user())
    assert detect(client, encode(sample(), "PNG"), api_key=key).status_code == 200  # a key in the form


def test_a_keyless_call_from_outside_the_open_networks_is_still_401(make_app):
    app = make_app(DEEPSTACK_OPEN_NETWORKS=["192.168.1.0/24"])
    response = detect(app.test_client(), encode(sample(), "PNG"))
    assert response.status_code == 401 and "API key is required" in response.get_json()["error"]


def test_open_networks_must_be_written_as_networks(make_app):
    from webapp.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="DEEPSTACK_OPEN_NETWORKS"):
        make_app(DEEPSTACK_OPEN_NETWORKS=["not-a-network"])


def hold_detection(monkeypatch):
    """(release, holding): each DeepStack detection in this process releases `holding` once it
    has started, then waits for `release` and finds nothing."""
    import threading

    from webapp.deepstack import detect as detection

    release, holding = threading.Event(), threading.Semaphore(0)

    def slow(data, min_conf):
        holding.release()
        release.wait(30)
        return []

    monkeypatch.setattr(detection, "detect", slow)
    return release, holding


def test_an_account_detects_two_photos_at_once_per_process_and_a_third_call_is_told_to_wait(app, client,
                                                                                           monkeypatch):
    """A call holds a server thread until its answer (up to DEEPSTACK_TIMEOUT on a worker): one
    account cannot hold them all (UPLOADS_AT_ONCE, as for uploads)."""
    import threading

    key = key_for(client, ApiActions(client).user())
    release, holding = hold_detection(monkeypatch)
    answers = []
    calls = [threading.Thread(target=lambda: answers.append(detect(app.test_client(), encode(sample(), "PNG"),
                                                                   api_key=key).status_code)) for _ in range(2)]
    for call in calls:
        call.start()
    assert holding.acquire(timeout=10) and holding.acquire(timeout=10)  # both detecting
    third = detect(app.test_client(), encode(sample(), "PNG"), api_key=key)
    release.set()
    for call in calls:
        call.join(30)
    assert third.status_code == 429 and third.headers["Retry-After"] == "1"
    assert third.get_json()["success"] is False and "at once" in third.get_json()["error"]
    assert answers == [200, 200]
    assert detect(app.test_client(), encode(sample(), "PNG"), api_key=key).status_code == 200  # free again


def test_a_process_holds_deepstack_at_once_calls_of_all_callers_together(make_app, monkeypatch):
    """Each account may have two, but N accounts are not 2N threads: while workers are down each
    call holds a thread for DEEPSTACK_TIMEOUT, and the process must go on serving pages."""
    import threading

    app = make_app(DEEPSTACK_AT_ONCE=1)
    keys = []
    for email in ("a@example.com", "b@example.com"):
        client = app.test_client()
        keys.append(key_for(client, ApiActions(client).user(email)))
    release, holding = hold_detection(monkeypatch)
    first = threading.Thread(target=lambda: detect(app.test_client(), encode(sample(), "PNG"), api_key=keys[0]))
    first.start()
    assert holding.acquire(timeout=10)
    other = detect(app.test_client(), encode(sample(), "PNG"), api_key=keys[1])
    release.set()
    first.join(30)
    assert other.status_code == 429 and other.headers["Retry-After"] == "1"
    assert other.get_json()["success"] is False


def test_a_call_waiting_for_a_worker_gives_up_at_once_when_its_process_stops(make_app, monkeypatch):
    """A gunicorn worker that stops (max_requests, SIGTERM) is not held for DEEPSTACK_TIMEOUT by
    a call waiting for a Celery worker that does not answer."""
    from webapp.jobs import processes, scheduling

    broker = redis_url(10)
    fresh_redis(broker)  # no Celery worker reads it
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker, DEEPSTACK_TIMEOUT=30)
    client = app.test_client()
    key = key_for(client, ApiActions(client).user())
    monkeypatch.setattr(processes, "_stop_check", lambda: True)  # this process is stopping
    monkeypatch.setattr(scheduling, "stopping", processes.stopping)
    started = time.monotonic()
    response = detect(app.test_client(), encode(sample(), "PNG"), api_key=key)
    assert response.status_code == 503 and time.monotonic() - started < 5
