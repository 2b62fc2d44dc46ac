"""Shared fixtures: an app on each database backend, a client, an `auth` helper, test images."""
import io
import os
import re
import tempfile
from pathlib import Path

# Before anything imports ultralytics: never touch the network, keep its settings out of $HOME.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from webapp import create_app  # noqa: E402
from webapp.config import BASE_DIR, TestConfig  # noqa: E402
from webapp.extensions import db  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DIR", BASE_DIR.parent / "shared"))
COCO_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"
COCO128 = SHARED / "datasets" / "coco128"
PASSWORD = "correct horse battery"

BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real headless Chromium")


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """An empty database: a new SQLite file, or PostgreSQL with a fresh public schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL not configured: set TEST_DATABASE_URL to run these (CI does)")
    reset_postgres(url)
    return url


def make_config(database_url: str, tmp_path: Path, **overrides) -> type:
    values = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        **overrides,
    }
    return type("LocalTestConfig", (TestConfig,), values)


@pytest.fixture
def config_overrides():
    """Tests override this (or use `make_app`) to change settings."""
    return {}


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build an app on the current backend with settings overrides; schema created, torn down after."""
    apps = []

    def factory(create_schema=True, **overrides):
        app = create_app(make_config(database_url, tmp_path, **overrides))
        if create_schema:
            with app.app_context():
                db.create_all()
        apps.append(app)
        return app

    yield factory
    for app in apps:
        from webapp.jobs import get_runner

        get_runner(app).wait(timeout=60)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app, config_overrides):
    return make_app(**config_overrides)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


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


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def coco_model():
    if not COCO_MODEL.exists():
        pytest.skip(f"COCO model not found at {COCO_MODEL} (it lies in ../shared/models)")
    return str(COCO_MODEL)


@pytest.fixture
def assets():
    """The real photos that ship inside the ultralytics package."""
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def pytest_terminal_summary(terminalreporter):
    counts = {backend: 0 for backend in BACKENDS}
    for report in terminalreporter.stats.get("passed", []):
        for backend in BACKENDS:
            if f"[{backend}" in report.nodeid or f"-{backend}]" in report.nodeid or f"-{backend}-" in report.nodeid:
                counts[backend] += 1
    terminalreporter.write_line(
        "database backends exercised: " + ", ".join(f"{b} {n} passed" for b, n in counts.items())
    )


@pytest.fixture
def auth_factory():
    """(client, auth) for an app built by `make_app` with other settings."""
    def factory(app):
        client = app.test_client()
        return client, AuthActions(client)
    return factory


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


@pytest.fixture
def api(client):
    return ApiActions(client)
