"""Shared fixtures: an app on each database backend, a client, `auth`/`api` helpers, the models.

A test that needs real detections (labels a COCO model finds in a real photo) carries
`@pytest.mark.real_model`: its app then runs the COCO-pretrained YOLO11n from ../shared/models,
and it is skipped, with the reason, where that model is absent. Every other test runs a
random-weight YOLO11n built from `yolo11n.yaml`, which needs no file and no download.
"""
import os
import tempfile
from pathlib import Path

# Before anything imports ultralytics: never touch the network, keep its settings out of $HOME.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from tests.browser import browser, live_server, page, serve  # noqa: E402,F401  (fixtures of the browser tests)
from tests.mailbox import mailbox  # noqa: E402,F401  (a real SMTP server)
from tests.helpers import ApiActions, AuthActions, make_config  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.config import BASE_DIR  # noqa: E402
from webapp.extensions import db  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DIR", BASE_DIR.parent / "shared"))
COCO_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"
COCO128 = SHARED / "datasets" / "coco128"
V8 = SHARED / "models" / "yolov8n_dynamic_quantized.onnx"  # a second model: a YOLOv8n int8 ONNX

BACKENDS = ["sqlite", "postgresql"]


def pytest_addoption(parser):
    parser.addoption("--images", action="store_true",
                     help="run the container image tests (tests/test_images.py) and only those: `make test-images`")


def pytest_configure(config):
    config.addinivalue_line("markers", "images: builds and runs the container images (`make test-images` only)")
    config.addinivalue_line("markers", "browser: drives a real headless Chromium")
    config.addinivalue_line("markers", "real_model: needs the COCO-pretrained model (../shared/models)")
    config.addinivalue_line("markers", "any_database: what it checks (a page's markup, the proxy) does not "
                                       "depend on the database: run on one backend, PostgreSQL where configured")


def pytest_collection_modifyitems(config, items):
    """An `any_database` test runs on PostgreSQL when TEST_DATABASE_URL is set (as CI's stack
    does), else on SQLite; its other backend's copy is deselected, not run twice for nothing.
    The container image tests run with --images only, and then alone."""
    keep = "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"
    images = config.getoption("--images")

    def other_backend(item) -> bool:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if bool(item.get_closest_marker("images")) != images:
            return True
        return bool(item.get_closest_marker("any_database")) and params.get("database_url", keep) != keep

    dropped = [item for item in items if other_backend(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not other_backend(item)]


_engines: dict[str, sa.Engine] = {}


def reset_postgres(url: str, models: bool = False) -> None:
    """PostgreSQL's public schema emptied: with the models' tables (`models`), or with nothing.
    Tables left by the test before are emptied (TRUNCATE) when they are exactly the models' (the
    same tables with the same columns); anything else (a migrated schema, an older model) is
    dropped and made again."""
    engine = _engines.setdefault(url, sa.create_engine(url, poolclass=sa.pool.NullPool))
    with engine.begin() as conn:
        tables = set(conn.scalars(sa.text("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'public'")))
        columns = set(conn.execute(sa.text("SELECT table_name, column_name FROM information_schema.columns "
                                           "WHERE table_schema = 'public'")).tuples())
        wanted = {(table.name, column.name) for table in db.metadata.tables.values() for column in table.columns}
        if models and tables == set(db.metadata.tables) and columns == wanted:
            quoted = ", ".join(f'"{name}"' for name in sorted(tables))
            conn.execute(sa.text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
            return
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
        if models:
            db.metadata.create_all(conn)


@pytest.fixture(scope="session")
def postgres_url():
    """TEST_DATABASE_URL; under pytest-xdist, a database of each worker's own beside it (made
    when missing), so that workers never empty each other's tables."""
    url = os.environ.get("TEST_DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    base = sa.engine.make_url(url)
    mine = base.set(database=f"{base.database}_{worker}")
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": mine.database}):
            conn.execute(sa.text(f'CREATE DATABASE "{mine.database}"'))
    engine.dispose()
    return mine.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path, postgres_url):
    """A database for the test: a new SQLite file, or PostgreSQL (emptied by `make_app`, or by
    whoever uses it directly: `reset_postgres`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    if not postgres_url:
        pytest.skip("PostgreSQL not configured: set TEST_DATABASE_URL to run these (CI does)")
    return postgres_url


@pytest.fixture(scope="session")
def coco_model():
    if not COCO_MODEL.exists():
        pytest.skip(f"COCO model not found at {COCO_MODEL} (it lies in ../shared/models)")
    return str(COCO_MODEL)


@pytest.fixture
def config_overrides(request):
    """Settings of the `app` fixture: the COCO model for `real_model` tests. Override to change."""
    if request.node.get_closest_marker("real_model"):
        return {"YOLO_MODEL": request.getfixturevalue("coco_model")}
    return {}


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build an app on the current backend with settings overrides; schema created, torn down after."""
    apps = []

    def factory(create_schema=True, **overrides):
        if not apps and database_url.startswith("postgresql"):  # the test's first app: an empty database
            reset_postgres(database_url, models=create_schema)
        app = create_app(make_config(database_url, tmp_path, **overrides))
        if create_schema:
            with app.app_context():
                db.create_all()
        apps.append(app)
        return app

    yield factory
    for app in apps:
        from webapp.jobs.scheduling import get_runner

        get_runner(app).wait(timeout=60)
        get_runner(app).close()
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


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def api(client):
    return ApiActions(client)


@pytest.fixture
def auth_factory():
    """(client, auth) for an app built by `make_app` with other settings."""
    def factory(app):
        client = app.test_client()
        return client, AuthActions(client)
    return factory


@pytest.fixture(scope="session")
def assets():
    """The real photos that ship inside the ultralytics package."""
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A real .pt model file with random weights (from yolo11n.yaml, no download): something to
    drop into MODELS_DIR when a test needs a model on disk but not real detections."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("weights") / "random-yolo11n.pt"
    YOLO("yolo11n.yaml", task="detect").save(str(path))
    return path


def pytest_terminal_summary(terminalreporter):
    counts = {backend: 0 for backend in BACKENDS}
    for report in terminalreporter.stats.get("passed", []):
        for backend in BACKENDS:
            if f"[{backend}" in report.nodeid or f"-{backend}]" in report.nodeid or f"-{backend}-" in report.nodeid:
                counts[backend] += 1
    terminalreporter.write_line(
        "database backends exercised: " + ", ".join(f"{b} {n} passed" for b, n in counts.items())
    )
