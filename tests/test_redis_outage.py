"""Rate limits kept in Redis (RATELIMIT_STORAGE_URI, as the compose stack sets it) while that
Redis goes away: every request that counts against a limit goes on (sign-in, sign-up, refresh,
password change, API keys, the DeepStack endpoint, shared images) on per-process limits, logged
once; `/healthz` says what is degraded; once Redis is back, the limits are shared again. The test
starts and stops a Redis of its own."""
import io
import shutil
import subprocess
import time

import pytest
import redis

from tests.helpers import PASSWORD, ApiActions, AuthActions, csrf_from, free_port, share_link, upload
from tests.images import encode, sample

REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture
def own_redis(tmp_path):
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    processes = []

    def start():
        process = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        processes.append(process)
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the test's Redis did not start")

    def stop():
        processes[-1].terminate()
        processes[-1].wait(timeout=10)

    start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    for process in processes:
        if process.poll() is None:
            process.kill()


def test_with_its_rate_limit_redis_down_the_app_keeps_serving_and_says_it_is_degraded(make_app, own_redis, caplog):
    url, start, stop = own_redis
    app = make_app(RATELIMIT_STORAGE_URI=url, RATELIMIT_ENABLED=True)
    owner = app.test_client()
    AuthActions(owner).signup()
    upload(owner, ("p.png", encode(sample(), "PNG")))
    api = ApiActions(owner)
    api.login()
    public_id = api.get("/api/v1/analyses").json["items"][0]["id"]
    key = owner.post("/api/v1/keys", json={"name": "cam"}, headers=api.headers).json["key"]
    link = share_link(owner, public_id)
    assert owner.get("/healthz").json["rate_limits"] == "ok"

    stop()
    fresh = app.test_client()
    signed_up = AuthActions(fresh).signup("bob@example.com")
    assert signed_up.status_code == 302, signed_up.text[:300]
    assert AuthActions(app.test_client()).login("bob@example.com").status_code == 302
    bob = ApiActions(app.test_client())
    assert bob.login("bob@example.com").status_code == 200
    assert bob.refresh().status_code == 200
    assert ApiActions(app.test_client()).signup("carol@example.com").status_code == 201
    password = owner.post("/account/password", data={
        "csrf_token": csrf_from(owner.get("/account").text), "current": PASSWORD, "password": "another long one",
        "confirm": "another long one"})
    assert password.status_code in (200, 302), password.text[:300]
    assert app.test_client().get("/api/v1/analyses", headers={"X-API-Key": key}).status_code == 200
    detected = app.test_client().post("/v1/vision/detection", data={
        "image": (io.BytesIO(encode(sample(), "PNG")), "p.png"), "api_key": key}, content_type="multipart/form-data")
    assert detected.status_code == 200, detected.json
    assert app.test_client().get(f"{link}/image/original").status_code == 200
    health = app.test_client().get("/healthz")
    assert health.status_code == 200 and health.json["rate_limits"].startswith("degraded")
    said = [r.getMessage() for r in caplog.records if r.name == "webapp.extensions"]
    assert len([m for m in said if "unreachable" in m]) == 1, said  # once, not per request

    start()
    deadline = time.monotonic() + 15
    while app.test_client().get("/healthz").json["rate_limits"] != "ok":
        assert time.monotonic() < deadline, "the limits never went back to Redis"
        time.sleep(0.5)
