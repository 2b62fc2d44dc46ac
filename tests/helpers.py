"""What tests do as a client: sign up and log in through the pages or the API, upload, look at
what was stored. Shared by the test modules (which import from here, never from each other)."""
import io
import re
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from webapp.config import TestConfig
from webapp.extensions import db
from webapp.models import Analysis

PASSWORD = "correct horse battery"
HX = {"HX-Request": "true"}


def make_config(database_url: str, tmp_path: Path, **overrides) -> type:
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


def post_form(client, url, headers=None, page="/analyses"):
    """POST an empty form (a button) with the CSRF token of `page`."""
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token}, headers=headers or {})


def stored_files(app) -> list[Path]:
    return sorted(p for p in Path(app.config["UPLOAD_DIR"]).rglob("*") if p.is_file())


def analyses(app) -> list[Analysis]:
    """Every analysis row, oldest first, detached with its detections loaded."""
    with app.app_context():
        rows = db.session.scalars(sa.select(Analysis).order_by(Analysis.id)).all()
        for row in rows:
            _ = row.detections
        db.session.expunge_all()
        return rows


def break_function(monkeypatch, target: str) -> None:
    """Make the function at dotted path `target` raise RuntimeError("boom"): an unexpected error."""
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(target, explode)


def fresh_redis(url: str):
    """A client of the Redis database at `url`, emptied; the test is skipped without Redis."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it)")
    return client


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
