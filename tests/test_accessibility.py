"""axe-core (the engine browsers' accessibility tools use) on the app's pages, in Chromium:
no serious or critical violation, on a desktop screen and a phone's."""
import re

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser import VIEWER_READY, png_files, sign_up, upload_and_wait
from tests.helpers import analyses
from tests.images import encode, sample
from tests.factories import add_boxes

pytestmark = [pytest.mark.browser, pytest.mark.any_database]  # the pages' markup, whatever stores it

SERIOUS = {"serious", "critical"}
SCREENS = {"desktop": (1280, 800), "phone": (390, 844)}


def serious_violations(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["target"][0] for n in v["nodes"][:5])
            for v in results.response["violations"] if v["impact"] in SERIOUS]


def violations_everywhere(page, name: str) -> dict[str, list[str]]:
    """axe on the page as it is now, on both screens in both themes: {where: problems}."""
    found = {}
    for screen, (width, height) in SCREENS.items():
        page.set_viewport_size({"width": width, "height": height})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            if problems := serious_violations(page):
                found[f"{name} ({screen}, {scheme})"] = problems
    page.set_viewport_size({"width": 1280, "height": 800})
    page.emulate_media(color_scheme="light")
    return found


@pytest.fixture
def audit(page):
    """Check the page as it is now on both screens; collect what axe finds, fail at the end."""
    found = {}

    def check(name: str) -> None:
        found.update(violations_everywhere(page, name))

    yield check
    assert not found, "\n".join(f"{where}: {problems}" for where, problems in found.items())


def test_public_pages_have_no_serious_accessibility_violations(serve, page, audit):
    base, _ = serve()
    for path in ("/", "/signup", "/login"):
        page.goto(base + path)
        audit(path)
    page.fill("#email", "not-an-email")
    page.click("button[type=submit]")
    page.wait_for_selector(".has-error")
    audit("/login with errors")


def test_gallery_and_detail_have_no_serious_accessibility_violations(serve, coco_model, page, audit, assets):
    base, _ = serve(YOLO_MODEL=coco_model)
    sign_up(page, base, "axe@example.com")
    audit("empty gallery")
    upload_and_wait(page, [str(assets / "bus.jpg"), str(assets / "zidane.jpg")], timeout=120_000)
    page.reload()
    audit("gallery")
    page.locator(".tile .name", has_text="bus.jpg").click()
    page.wait_for_selector(VIEWER_READY)
    audit("detail")
    page.goto(base + "/account")
    audit("account")
    page.goto(base + "/account/keys")
    audit("API keys")


def test_shared_link_pages_have_no_serious_accessibility_violations(serve, page, audit, tmp_path):
    base, app = serve()
    sign_up(page, base, "axe-share@example.com")
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(sample(320, 240), "PNG"))
    upload_and_wait(page, str(photo))
    add_boxes(app, analyses(app)[0].public_id, [("person", 0, 0.9, (10, 10, 120, 200))])
    page.locator(".tile .name").click()
    audit("detail with share form")
    page.click("text=Create link")
    audit("detail with a new share link")
    url = page.locator("#copy-1").input_value()
    page.goto(base + "/account/shares")
    audit("shared links")
    page.goto(url)
    audit("shared page")
    page.goto(base + "/account/shares")
    page.click("button.link.danger")
    page.goto(url)
    audit("revoked link")


def test_the_trash_its_undo_and_the_api_docs_have_no_serious_accessibility_violations(serve, page, audit, tmp_path):
    base, app = serve()
    sign_up(page, base, "axe-trash@example.com")
    upload_and_wait(page, png_files(tmp_path, 2))
    page.reload()
    card = page.locator(".tile").first
    card.hover()
    card.get_by_role("button", name=re.compile(r"^Delete .* \(to the Trash\)$")).click()
    page.wait_for_selector("#undo-area .undo")
    audit("gallery with an Undo")
    page.goto(base + "/trash")
    audit("trash")
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock")
    audit("/docs")
