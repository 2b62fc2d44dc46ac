"""Issue 14's walk in Chromium: upload with model A, run again with model B at a lower confidence,
compare the two runs side by side (axe-clean on both screens and themes), share B's run, open the
link signed out, revoke it."""
import pytest
from playwright.sync_api import expect

from tests.browser import VIEWER_READY, shot, sign_up, upload_and_wait
from tests.conftest import V8
from tests.test_accessibility import SCREENS, serious_violations

pytestmark = pytest.mark.browser


def test_rerun_with_another_model_compare_share_and_revoke(serve, coco_model, page, assets, request):
    if not V8.exists():
        pytest.skip(f"{V8} not found")
    base, app = serve(YOLO_MODEL=coco_model, YOLO_MODELS=f"v8={V8}")
    sign_up(page, base, "compare@example.com")
    page.select_option("#upload-model", "default")
    upload_and_wait(page, str(assets / "bus.jpg"), timeout=120_000)
    page.locator(".tile .name").click()
    page.wait_for_selector(VIEWER_READY)
    first_url = page.url

    page.click("summary:has-text('Run again')")
    page.select_option("#rerun-model", "v8")
    page.fill("#rerun-conf", "0.1")
    page.click("#rerun-form button[type=submit]")
    page.wait_for_selector(VIEWER_READY, timeout=120_000)  # the new run's page, once it is done
    assert page.url != first_url
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    assert "v8" in page.locator("table.runs tr.current").inner_text()

    page.click("a.compare-link")
    expect(page.locator(".compare-run")).to_have_count(2)
    expect(page.locator(".compare-table tbody tr").first).to_be_visible()
    assert page.locator(".compare-table .diff.more").count() >= 1  # v8 at 0.1 finds more
    shot(page, request, "compare-runs")
    found = {}
    for screen, size in SCREENS.items():
        page.set_viewport_size(dict(zip(("width", "height"), size, strict=True)))
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            found[(screen, scheme)] = serious_violations(page)
    assert not any(found.values()), found
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")

    page.click("text=Open run B")  # the later run: v8's
    page.click("text=Create link")  # the link is shown on the photo's page, with a copy button
    url = page.locator("#copy-1").input_value()
    visitor = page.context.browser.new_context()
    shared = visitor.new_page()
    shared.goto(url)
    expect(shared.locator("#overlay g.box").first).to_be_attached()
    assert "compare@example.com" not in shared.content()
    page.goto(page.url.split("/analyses")[0] + "/account/shares")
    page.click("button.link.danger")
    page.wait_for_selector("text=Link revoked")
    assert shared.reload().status == 410
    expect(shared.locator("h1")).to_have_text("This link no longer works")
    visitor.close()
