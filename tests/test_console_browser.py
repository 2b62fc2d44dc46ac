"""Every page of the app, walked in Chromium as a person uses it: not one error in the browser's
console (a failed request, a script error, a refused resource), signed out, signed in, on a
desk's screen and a phone's."""
import re

import pytest

from tests.browser import VIEWER_READY, png_files, sign_up, upload_and_wait
from tests.factories import add_boxes
from tests.helpers import analyses

pytestmark = [pytest.mark.browser, pytest.mark.any_database]  # the pages' scripts and requests


@pytest.fixture
def errors(page):
    """Whatever the console says is an error, or a script throws, with the page it came from."""
    said = []
    page.on("console", lambda message: said.append(f"{page.url}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: said.append(f"{page.url}: {error}"))
    return said


def visit(page, url: str, ready: str = "main") -> None:
    page.goto(url)
    page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")


def test_no_page_logs_an_error_in_the_browsers_console(serve, page, errors, tmp_path):
    base, app = serve(GALLERY_PER_PAGE=2)
    for path in ("/", "/signup", "/login", "/docs"):
        visit(page, base + path)
    sign_up(page, base, "console@example.com")
    upload_and_wait(page, png_files(tmp_path, 3))
    runs = analyses(app)
    add_boxes(app, runs[0].public_id, [("person", 0, 0.9, (10, 10, 120, 200))])
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        visit(page, f"{base}/analyses")
        page.mouse.wheel(0, 2000)  # the next page of photos, as one scrolls
        page.wait_for_load_state("networkidle")
        visit(page, f"{base}/analyses?label=person")
        visit(page, f"{base}/analyses/{runs[0].public_id}", VIEWER_READY)
        page.keyboard.press("ArrowRight")  # the next photo
        page.wait_for_load_state("networkidle")
        for path in ("/account", "/account/keys", "/account/shares", "/docs"):
            visit(page, base + path)
    visit(page, f"{base}/analyses/{runs[0].public_id}", VIEWER_READY)
    page.click("text=Create link")
    link = page.locator("#copy-1").input_value()
    visit(page, f"{base}/analyses")
    card = page.locator(f"#cards .tile:not(#analysis-{runs[0].public_id})").last  # not the shared one
    card.hover()
    card.get_by_role("button", name=re.compile(r"^Delete .* \(to the Trash\)$")).click()
    page.wait_for_selector("#undo-area .undo")
    visit(page, f"{base}/trash")
    visit(page, link)
    page.context.clear_cookies()
    visit(page, link)  # signed out, as the link's reader
    assert not errors, "\n".join(errors)
