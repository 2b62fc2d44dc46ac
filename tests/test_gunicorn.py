"""gunicorn serves `wsgi:app` as in production (a subprocess on a free port)."""
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port
from webapp.config import BASE_DIR

GUNICORN = Path(sys.executable).parent / "gunicorn"


def production_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "SECRET", "JWT_"))}
    env.update(
        SECRET_KEY="s" * 64, JWT_SECRET_KEY="j" * 64,
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        UPLOAD_DIR=str(tmp_path / "uploads"), INSTANCE_PATH=str(tmp_path / "instance"),
        YOLO_MODEL="yolo11n.yaml", **extra,
    )
    return env


def wait_for(url: str, process, seconds: float = 60) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {seconds}s")


@contextmanager
def serving(command: list[str], env: dict, port: int):
    """Run `command` (a server on `port`) until its /healthz answers; yield that answer; stop it."""
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield wait_for(f"http://127.0.0.1:{port}/healthz", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def gunicorn(port: int) -> list[str]:
    return [str(GUNICORN), "--bind", f"127.0.0.1:{port}", "--workers", "1", "wsgi:app"]


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
        for public_id, status in (("f00d", "running"), ("beef", "pending")):
            conn.execute(
                "INSERT INTO analysis (public_id, user_id, original_filename, original_path, width, height, sha256,"
                f" status, model_name, conf, iou, imgsz, worker, created_at) VALUES ('{public_id}', 1, 'p.png',"
                f" '1/f00d/original.png', 96, 64, 'x', '{status}', 'm', 0.25, 0.7, 640,"
                f" '{socket.gethostname()}:999999:1', '2026-01-01')")
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
