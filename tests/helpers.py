"""What tests do as a client: sign up and log in through the pages or the API, upload, look at
what was stored. Shared by the test modules (which import from here, never from each other)."""
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from webapp.config import BASE_DIR, Config, TestConfig
from webapp.extensions import db
from webapp.models import Run

PASSWORD = "correct horse battery"
HX = {"HX-Request": "true"}


def make_config(database_url: str, tmp_path: Path, **overrides) -> type:
    """A test configuration on this database and these folders. A real model (`YOLO_MODEL`
    given) looks at the production input size unless the test says otherwise."""
    if "YOLO_MODEL" in overrides:
        overrides.setdefault("YOLO_IMGSZ", Config.YOLO_IMGSZ)
    values = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "MODELS_DIR": str(tmp_path / "models"),
        **overrides,
    }
    return type("LocalTestConfig", (TestConfig,), values)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class AuthActions:
    """Signs up and logs in through the real forms, CSRF token included."""

    def __init__(self, client):
        self.client = client

    def csrf(self, url: str = "/login") -> str:
        return csrf_from(self.client.get(url).get_data(as_text=True))

    def signup(self, email="ada@example.com", password=PASSWORD, confirm=None):
        return self.client.post("/signup", data={
            "email": email, "password": password,
            "confirm": password if confirm is None else confirm,
            "csrf_token": self.csrf("/signup"),
        })

    def login(self, email="ada@example.com", password=PASSWORD, next_url=None, remember=False):
        url = "/login" + (f"?next={next_url}" if next_url else "")
        data = {"email": email, "password": password, "csrf_token": self.csrf("/login")}
        if remember:
            data["remember"] = "y"
        return self.client.post(url, data=data)

    def logout(self):
        token = self.csrf("/analyses")
        return self.client.post("/logout", data={"csrf_token": token})


class ApiActions:
    """Drives the JSON API: sign-up, log-in (keeping the refresh cookie), bearer headers."""

    REFRESH_HEADERS = {"X-Requested-With": "XMLHttpRequest"}

    def __init__(self, client):
        self.client = client
        self.token = None

    def signup(self, email="ada@example.com", password=PASSWORD):
        return self.client.post("/api/v1/auth/signup", json={"email": email, "password": password})

    def login(self, email="ada@example.com", password=PASSWORD):
        response = self.client.post("/api/v1/auth/login", json={"email": email, "password": password})
        if response.status_code == 200:
            self.token = response.json["access_token"]
        return response

    def refresh(self, **kwargs):
        response = self.client.post("/api/v1/auth/refresh", headers=self.REFRESH_HEADERS, **kwargs)
        if response.status_code == 200:
            self.token = response.json["access_token"]
        return response

    def logout(self):
        return self.client.post("/api/v1/auth/logout", headers=self.REFRESH_HEADERS)

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, url, **kwargs):
        return self.client.get(url, headers=self.headers, **kwargs)

    def post(self, url, **kwargs):
        return self.client.post(url, headers=self.headers, **kwargs)

    def delete(self, url, **kwargs):
        return self.client.delete(url, headers=self.headers, **kwargs)

    def upload(self, *files, query="", **fields):
        data = {"images": [(io.BytesIO(b), name) for name, b in files], **fields}
        return self.client.post(f"/api/v1/analyses{query}", data=data, headers=self.headers,
                                content_type="multipart/form-data")

    def user(self, email="ada@example.com"):
        self.signup(email)
        self.login(email)
        return self


def upload(client, *files, headers=None):
    """POST files (name, bytes) to /analyses, as the page's form does, with its CSRF token."""
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    data = {"csrf_token": token, "images": [(io.BytesIO(b), name) for name, b in files]}
    return client.post("/analyses", data=data, headers=headers or {}, content_type="multipart/form-data")


def share_link(client, public_id: str) -> str:
    """A share link's path (/s/<token>) for the photo, made on its owner's page (signed in)."""
    page = client.get(f"/analyses/{public_id}").get_data(as_text=True)
    made = client.post(f"/analyses/{public_id}/share", data={"csrf_token": csrf_from(page), "expires": "7d"})
    assert made.status_code == 302
    return re.search(r"/s/[A-Za-z0-9_.-]+", client.get(made.headers["Location"]).get_data(as_text=True))[0]


def post_form(client, url, headers=None, page="/analyses"):
    """POST an empty form (a button) with the CSRF token of `page`."""
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token}, headers=headers or {})


def stored_files(app) -> list[Path]:
    return sorted(p for p in Path(app.config["UPLOAD_DIR"]).rglob("*") if p.is_file())


def analyses(app) -> list[Run]:
    """Every analysis row, oldest first, detached with its detections loaded."""
    with app.app_context():
        rows = db.session.scalars(sa.select(Run).order_by(Run.id)).all()
        for row in rows:
            _ = row.detections, row.photo
        db.session.expunge_all()
        return rows


def kept(app) -> list[Run]:
    """The analyses of photos not in the Trash, oldest first (as `analyses`)."""
    return [run for run in analyses(app) if run.photo.trashed_at is None]


def trashed(app) -> list[Run]:
    """The analyses of photos in the Trash, oldest first (as `analyses`)."""
    return [run for run in analyses(app) if run.photo.trashed_at is not None]


def delete_photo_elsewhere(app, public_id: str) -> None:
    """Delete the photo of this run as another request would: its own thread, app context and
    session, committed before this returns."""
    import threading

    from webapp.analyses import removal

    def other_request():
        with app.app_context():
            removal.delete_photo(db.session.scalar(sa.select(Run).where(Run.public_id == public_id)))

    other = threading.Thread(target=other_request)
    other.start()
    other.join()


def break_function(monkeypatch, target: str) -> None:
    """Make the function at dotted path `target` raise RuntimeError("boom"): an unexpected error."""
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(target, explode)


def redis_url(db: int) -> str:
    """A Redis database of the tests' own (10 to 15, one per kind of test), another one for each
    pytest-xdist worker (`make test` runs two: the second one's are 4 to 9)."""
    worker = int((os.environ.get("PYTEST_XDIST_WORKER") or "gw0").removeprefix("gw"))
    assert worker < 2, "the tests' Redis databases are laid out for two workers at most"
    return f"redis://127.0.0.1:6379/{db - 6 * worker}"


def fresh_redis(url: str):
    """A client of the Redis database at `url`, emptied; the test is skipped without Redis."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it)")
    return client


# ---- servers as separate processes ----

GUNICORN = Path(sys.executable).parent / "gunicorn"


def production_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "SECRET", "JWT_"))}
    env.update(
        SECRET_KEY="s" * 64, JWT_SECRET_KEY="j" * 64,
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        UPLOAD_DIR=str(tmp_path / "uploads"), INSTANCE_PATH=str(tmp_path / "instance"),
        YOLO_MODEL="yolo11n.yaml",
    )
    env.update(extra)
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


CELERY = Path(sys.executable).parent / "celery"


def worker_env(app, **extra) -> dict:
    """The worker's environment: the same database, folders and broker as the web app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "YOLO_MODEL"))}
    config = app.config
    env.update(
        SECRET_KEY="s" * 32, JWT_SECRET_KEY="j" * 32, DATABASE_URL=config["SQLALCHEMY_DATABASE_URI"],
        UPLOAD_DIR=config["UPLOAD_DIR"], INSTANCE_PATH=app.instance_path, MODELS_DIR=config["MODELS_DIR"],
        CELERY_BROKER_URL=config["CELERY_BROKER_URL"], YOLO_MODEL=config["YOLO_MODEL"], YOLO_DEVICE="cpu",
        CELERY_VISIBILITY_TIMEOUT=str(config["CELERY_VISIBILITY_TIMEOUT"]), YOLO_OFFLINE="1", **extra,
    )
    return env


class Workers:
    """Real `celery -A webapp.worker worker` processes, each in its own process group."""

    def __init__(self, app, tmp_path):
        self.app, self.logs, self.processes = app, tmp_path, []

    def start(self, **env):
        log = open(self.logs / f"worker-{len(self.processes)}.log", "wb")
        process = subprocess.Popen(
            [str(CELERY), "-A", "webapp.worker", "worker", "-Q", "detect",
             "--hostname", f"test{len(self.processes)}@%h", "--loglevel", "INFO", "--without-gossip",
             "--without-mingle"],
            cwd=BASE_DIR, env=worker_env(self.app, **env), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        self.wait_until_answering()
        return process

    def wait_until_answering(self, seconds=90):
        """Until this worker has reported its model (loaded at start) and answers a ping. The ping
        is sent here, not through the app's runner, which keeps an answer for a few seconds."""
        from webapp.detection.availability import REPORT_KEY
        from webapp.jobs.scheduling import get_runner

        broker = redis.Redis.from_url(self.app.config["CELERY_BROKER_URL"])
        control = get_runner(self.app).celery.control
        name = f"test{len(self.processes) - 1}@{socket.gethostname()}"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.processes[-1].poll() is None, self.log()
            if not broker.hlen(REPORT_KEY):
                time.sleep(0.1)
            elif control.ping(destination=[name], timeout=0.3):
                return
        raise AssertionError("the worker did not answer a ping:\n" + self.log())

    def kill(self, process):
        os.killpg(process.pid, signal.SIGKILL)  # the whole worker, as a crash or `kill -9` would
        process.wait(timeout=30)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker-*.log")))

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    """A port free now and outside the kernel's ephemeral range, so no outgoing connection (the
    stalled-client and flood tests make thousands) takes it before the server binds it."""
    import random

    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    candidates = range(10000, low) if low > 11000 else range(high + 1, 65536)
    for port in random.sample(candidates, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port outside the ephemeral range")
