"""Browser tests' fixtures (a live server, a headless Chromium page under the app's CSP) and
helpers, for every browser test module (conftest.py makes the fixtures available)."""
import os
import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.images import encode, sample
from webapp.config import BASE_DIR

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", BASE_DIR / "test-artifacts"))
# A run's page once its scripts have set it up (viewer.js: the slider and the rows; zoom.js: the
# stage fitted to the window) and its boxes show. The boxes alone are drawn by the server, so they
# show before the scripts run.
VIEWER_READY = "#stage[data-ready][data-zoomable] #overlay g.box:visible"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def serve(make_app):
    """Build an app with these settings (background worker on) and serve it on a free port."""
    servers = []

    def start(**settings):
        app = make_app(**{"ANALYSIS_EXECUTOR": "thread", **settings})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", app

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def live_server(serve, coco_model):
    return serve(YOLO_MODEL=coco_model)[0]


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole run; each test gets a fresh context (`page`)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page in a context of its own (cookies, storage), 1280×900, under the app's CSP: any
    violation reported in the console fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    violations = []
    context.on("console", lambda message: violations.append(f"{message.page.url if message.page else ''}: "
                                                            f"{message.text}")
               if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"


def shot(page, request, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = request.node.callspec.params.get("database_url", "db")
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def sign_up(page, base: str, email: str) -> None:
    page.goto(f"{base}/signup")
    page.fill("#email", email)
    page.fill("#password", "correct horse battery")
    page.fill("#confirm", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url("**/analyses")


def upload_and_wait(page, files, timeout: int = 60_000) -> None:
    """Pick these files (a path or a list) in the upload form and wait until each has finished
    (with `expect`, not a JavaScript condition: the CSP forbids eval)."""
    page.set_input_files("#images", files)
    count = len(files) if isinstance(files, list) else 1
    expect(page.locator(".tile.status-done")).to_have_count(count, timeout=timeout)


def png_files(folder, count: int, width: int = 320, height: int = 240) -> list[str]:
    """`count` PNG photos (photo0.png, …, each a pixel wider than the one before) in `folder`."""
    paths = []
    for i in range(count):
        path = folder / f"photo{i}.png"
        path.write_bytes(encode(sample(width + i, height), "PNG"))
        paths.append(str(path))
    return paths
