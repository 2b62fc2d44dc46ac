"""End to end in a real headless Chromium (Debian's), against a live server."""
import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from webapp.config import BASE_DIR

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", BASE_DIR / "test-artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def live_server(make_app, coco_model):
    app = make_app(YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def page(request):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()


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


def drawn_boxes(page) -> int:
    return page.locator("#overlay g.box").count()


def test_upload_filter_inspect_and_delete(live_server, page, assets, request):
    sign_up(page, live_server, "browser@example.com")

    page.set_input_files("#images", [str(assets / "bus.jpg"), str(assets / "zidane.jpg")])
    page.wait_for_function("document.querySelectorAll('.tile.status-done').length === 2", timeout=120_000)
    page.reload()
    shot(page, request, "gallery")

    page.locator("nav.filter a", has_text="tie").click()
    page.wait_for_url("**/analyses?label=tie")
    assert page.locator(".tile").count() == 1
    assert "zidane.jpg" in page.locator(".tile .name").inner_text()
    page.locator("nav.filter a", has_text="person").click()
    page.wait_for_url("**/analyses?label=person")
    assert page.locator(".tile").count() == 2

    page.locator(".tile .name", has_text="bus.jpg").click()
    page.wait_for_selector("#overlay g.box")
    at_default = drawn_boxes(page)
    assert at_default >= 5
    slider = page.locator("#conf")
    slider.focus()
    page.keyboard.press("Home")  # lowest stored confidence: more boxes
    assert drawn_boxes(page) > at_default
    page.keyboard.press("End")  # confidence 1.0: none
    assert drawn_boxes(page) == 0
    assert page.locator("#box-count").inner_text() == "0 boxes shown"
    slider.evaluate("el => { el.value = '0.25'; el.dispatchEvent(new Event('input')); }")
    assert drawn_boxes(page) == at_default
    page.locator("input[name=class][value=person]").uncheck()
    assert 0 < drawn_boxes(page) < at_default
    page.locator("input[name=class][value=person]").check()
    shot(page, request, "detail")

    page.locator("button[data-view=annotated]").click()
    assert page.locator(".layer-annotated").is_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Delete photo")
    page.wait_for_url("**/analyses")
    assert page.locator(".tile").count() == 1
    assert "Deleted bus.jpg" in page.locator(".flashes").inner_text()


def test_a_rejected_file_shows_its_reason_on_its_card(live_server, page, tmp_path):
    sign_up(page, live_server, "reject@example.com")
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not really a photo")
    page.set_input_files("#images", [str(fake)])
    card = page.locator(".tile.rejected")
    card.wait_for()
    assert "holiday.jpg" in card.inner_text() and "not an image" in card.inner_text()


@pytest.fixture
def api_live_server(make_app):
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()


def test_swagger_ui_lists_every_endpoint_and_try_it_out_works_with_a_token(api_live_server, page, request):
    from tests.conftest import ApiActions

    base, app = api_live_server
    api = ApiActions(app.test_client()).user("docs@example.com")
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock")
    document = app.test_client().get("/api/v1/openapi.json").json
    expected = sum(len(ops) for ops in document["paths"].values())
    assert page.locator(".opblock").count() == expected >= 11
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    assert {p.replace("\u200b", "") for p in shown} == set(document["paths"])

    page.click("button.authorize")
    page.fill(".auth-container input", api.token)
    page.click(".auth-btn-wrapper button.authorize")
    page.click("button.btn-done")
    me = page.locator(".opblock-get", has=page.locator(".opblock-summary-path", has_text="/api/v1/me"))
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    me.locator("button.execute").click()
    status = me.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert "docs@example.com" in me.locator(".live-responses-table").inner_text()
    shot(page, request, "docs")
