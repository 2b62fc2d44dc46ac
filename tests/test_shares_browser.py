"""A share link in Chromium: made on the detail page, opened signed out, revoked."""
import pytest
from playwright.sync_api import expect

from tests.browser import shot, sign_up, upload_and_wait
from tests.helpers import analyses
from tests.images import encode, sample
from tests.factories import add_boxes

pytestmark = pytest.mark.browser


def test_a_shared_link_opens_signed_out_and_is_gone_once_revoked(serve, page, tmp_path, request):
    base, app = serve()
    sign_up(page, base, "sharer@example.com")
    photo = tmp_path / "holiday.png"
    photo.write_bytes(encode(sample(640, 480), "PNG"))
    upload_and_wait(page, str(photo))
    [analysis] = analyses(app)
    add_boxes(app, analysis.public_id, [("person", 0, 0.9, (20, 20, 300, 400)), ("dog", 16, 0.6, (350, 200, 600, 460))])
    page.locator(".tile .name").click()
    page.select_option("#share-expires", "1d")
    page.click("text=Create link")  # the link is shown on the photo's page, with a copy button
    url = page.locator("#copy-1").input_value()
    assert url.startswith(base + "/s/")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.wait_for_load_state("load")  # copy.js is a module script: it runs once the page has parsed
    page.get_by_role("button", name="Copy").click()
    page.wait_for_function("url => navigator.clipboard.readText().then(text => text === url)", arg=url)

    visitor = page.context.browser.new_context(viewport={"width": 390, "height": 844})
    shared = visitor.new_page()
    shared.goto(url)
    expect(shared.locator("h1")).to_have_text("Shared photo")
    expect(shared.locator("#overlay g.box:visible")).to_have_count(2)
    assert "sharer@example.com" not in shared.content() and "holiday" not in shared.content()
    shared.locator("#conf").evaluate("el => { el.value = '0.7'; el.dispatchEvent(new Event('input')); }")
    expect(shared.locator("#box-count")).to_have_text("1 box shown")
    shot(shared, request, "shared-390")

    page.goto(f"{base}/account/shares")
    page.click("button[aria-label='Revoke the link to holiday.png']")
    page.wait_for_selector("text=Link revoked")
    response = shared.reload()
    assert response.status == 410
    expect(shared.locator("h1")).to_have_text("This link no longer works")
    visitor.close()
