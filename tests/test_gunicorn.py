"""gunicorn serves `wsgi:app` as in production (a subprocess on a free port)."""
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from tests.helpers import GUNICORN, free_port, gunicorn, production_env, serving
from webapp.config import BASE_DIR


def test_gunicorn_serves_healthz(tmp_path):
    port = free_port()
    with serving(gunicorn(port), production_env(tmp_path), port) as body:
        assert b'"database":"ok"' in body.replace(b" ", b"")


def test_each_gunicorn_worker_queues_again_what_dead_processes_left_at_start(tmp_path):
    """What a restart, a worker killed mid-analysis or a worker replaced after max_requests leaves
    behind is taken over by the worker that starts next (gunicorn.conf.py), not by building the app."""
    from tests.images import encode, sample

    env = production_env(tmp_path)
    subprocess.run([str(GUNICORN.parent / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=BASE_DIR, env=env,
                   check=True, capture_output=True)
    photo = tmp_path / "uploads" / "1" / "f00d" / "original.png"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(encode(sample(), "PNG"))
    with sqlite3.connect(tmp_path / "prod.sqlite3") as conn:
        conn.execute("INSERT INTO user (email, password_hash, created_at) VALUES ('a@b.c', 'x', '2026-01-01')")
        for number, (public_id, status) in enumerate((("f00d", "running"), ("beef", "pending")), start=1):
            conn.execute(
                "INSERT INTO photo (id, public_id, user_id, original_filename, original_path, width, height, sha256,"
                f" created_at, taken_at) VALUES ({number}, '{public_id}', 1, 'p.png', '1/f00d/original.png', 96, 64,"
                " 'x', '2026-01-01', '2026-01-01')")
            conn.execute(
                "INSERT INTO analysis (public_id, user_id, photo_id, status, model_name, conf, iou, imgsz, worker,"
                f" created_at, taken_at, queued_at) VALUES ('{public_id}', 1, {number}, '{status}', 'm', 0.25, 0.7,"
                f" 640, '{socket.gethostname()}:999999:1', '2026-01-01', '2026-01-01', '2026-01-01')")
    port = free_port()
    with serving(gunicorn(port), env, port):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sqlite3.connect(tmp_path / "prod.sqlite3") as conn:
                statuses = dict(conn.execute("SELECT public_id, status FROM analysis").fetchall())
            if set(statuses.values()) <= {"done", "failed"}:
                break
            time.sleep(0.2)
    assert statuses == {"f00d": "done", "beef": "done"}


def test_gunicorn_without_secret_key_stops_with_one_clear_line(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = subprocess.run(gunicorn(free_port()), cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stdout + result.stderr


def test_container_entrypoint_migrates_then_serves(tmp_path):
    port = free_port()
    env = production_env(tmp_path, PORT=str(port), WEB_CONCURRENCY="1",
                         PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    with serving(["sh", str(BASE_DIR / "docker" / "entrypoint.sh"), "web"], env, port):
        pass
    tables = {row[0] for row in sqlite3.connect(tmp_path / "prod.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"user", "analysis", "detection", "refresh_token", "alembic_version"} <= tables


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its whole answer (headers and the body Content-Length says)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def _post(path: str, body: bytes, headers: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body


def test_a_request_refused_before_its_body_is_read_closes_its_connection(tmp_path):
    """An answer given without reading the body (401 for a forged bearer, a bad API key) says
    `Connection: close` and closes, so no proxy pools that connection with the unread body on it
    (the next request on it would fail: another user's upload answered 502)."""
    port = free_port()
    env = production_env(tmp_path)
    subprocess.run([str(GUNICORN.parent / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=BASE_DIR, env=env,
                   check=True, capture_output=True)
    body = b"--x\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.bin\"\r\n\r\n" + b"z" * 1_000_000 \
        + b"\r\n--x--\r\n"
    threaded = [*gunicorn(port)[:-1], "--threads", "4", "wsgi:app"]  # gthread, as the container runs it
    with serving(threaded, env, port):
        for credential in ("Authorization: Bearer forged\r\n", "X-API-Key: spt_forged\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                head = _exchange(sock, _post("/api/v1/analyses", body, credential))
                assert head.startswith(b"HTTP/1.1 401"), head
                assert b"connection: close" in head.lower(), head
                sock.settimeout(10)
                assert sock.recv(1) == b"", "the server closes the connection"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # a body read: kept alive
            small = b"{}"
            head = _exchange(sock, f"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                   f"application/json\r\nContent-Length: {len(small)}\r\n\r\n".encode() + small)
            assert b"connection: keep-alive" in head.lower(), head
            assert _exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.1 200")


def _call(port: int, method: str, path: str, body: bytes = b"", headers: Optional[dict] = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body or None, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:  # no answer: a worker stopping, or none yet
        return 0, str(exc).encode()


def test_a_worker_replaced_after_max_requests_answers_its_waiting_uploads_and_goes_at_once(tmp_path):
    """A worker past `max_requests` stops: an upload waiting for its runs (`?wait=true`) is
    answered 202 at once (the client follows the runs) instead of holding the old worker for the
    graceful timeout and then its exit, while the new worker takes over."""
    import json

    from tests.helpers import fresh_redis, redis_url
    from tests.images import encode, sample

    broker = redis_url(12)
    fresh_redis(broker)  # no Celery worker reads it: the runs stay queued
    env = production_env(tmp_path, ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=broker, API_WAIT_TIMEOUT="100",
                         RATELIMIT_STORAGE_URI="memory://")
    subprocess.run([str(GUNICORN.parent / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=BASE_DIR, env=env,
                   check=True, capture_output=True)
    port = free_port()
    command = [*gunicorn(port)[:-1], "--threads", "4", "--max-requests", "8", "--max-requests-jitter", "0",
               "wsgi:app"]
    with serving(command, env, port):  # request 1: /healthz
        account = json.dumps({"email": "w@example.com", "password": "a long passphrase"}).encode()
        json_type = {"Content-Type": "application/json"}
        assert _call(port, "POST", "/api/v1/auth/signup", account, json_type)[0] == 201
        token = json.loads(_call(port, "POST", "/api/v1/auth/login", account, json_type)[1])["access_token"]
        body = b"--x\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.png\"\r\n\r\n" \
            + encode(sample(), "PNG") + b"\r\n--x--\r\n"
        content_type = "multipart/form-data; boundary=x"
        answer = {}

        def upload():
            started = time.monotonic()
            answer["status"], _ = _call(port, "POST", "/api/v1/analyses?wait=true", body,
                                        {"Authorization": f"Bearer {token}", "Content-Type": content_type})
            answer["seconds"] = time.monotonic() - started

        waiting = threading.Thread(target=upload)
        waiting.start()  # request 4
        time.sleep(1)
        for _ in range(6):  # requests 5 to 10: the worker is past its 8th and stops
            _call(port, "GET", "/healthz")
        waiting.join(60)
        assert answer.get("status") == 202 and answer["seconds"] < 10, answer
        started = time.monotonic()
        while _call(port, "GET", "/healthz")[0] != 200:
            time.sleep(0.2)
        assert time.monotonic() - started < 10  # the new worker answers
