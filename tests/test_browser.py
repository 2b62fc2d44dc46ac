"""End to end in a real headless Chromium (Debian's), against a live server."""
import io
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import VIEWER_READY, shot, sign_up, upload_and_wait
from tests.helpers import ApiActions, kept
from tests.images import encode, sample
from webapp.web.limits import too_large_message

pytestmark = pytest.mark.browser


def drawn_boxes(page) -> int:
    return page.locator("#overlay g.box:visible").count()


def test_upload_filter_inspect_and_delete(live_server, page, assets, request):
    sign_up(page, live_server, "browser@example.com")

    upload_and_wait(page, [str(assets / "bus.jpg"), str(assets / "zidane.jpg")], timeout=120_000)
    page.reload()
    shot(page, request, "gallery")

    page.locator("nav.filter a", has_text="tie").click()
    page.wait_for_url("**/analyses?label=tie")
    assert page.locator(".tile").count() == 1
    assert "zidane.jpg" in page.locator(".tile .name").inner_text()
    page.locator("nav.filter a", has_text="person").click()  # "+ person": tie and person
    page.wait_for_url("**/analyses?label=tie&label=person")
    assert page.locator(".tile").count() == 1
    page.locator("nav.filter a", has_text="All").click()
    page.locator("nav.filter a", has_text="person").click()
    page.wait_for_url("**/analyses?label=person")
    assert page.locator(".tile").count() == 2

    page.locator(".tile .name", has_text="bus.jpg").click()
    page.wait_for_selector(VIEWER_READY)
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
    page.click("text=Delete photo")  # no question: it goes to the Trash, with an Undo
    expect(page.locator("h1")).to_have_text("zidane.jpg")  # on to the next photo of the listing
    assert "label=person" in page.url
    assert "Moved bus.jpg to the Trash." in page.locator("#undo-area").inner_text()
    page.goto(f"{live_server}/analyses?label=person")
    assert page.locator(".tile").count() == 1


@pytest.mark.any_database  # the card shown; the refusal itself is tested on both
def test_a_rejected_file_shows_its_reason_on_its_card(serve, page, tmp_path):
    sign_up(page, serve()[0], "reject@example.com")
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not really a photo")
    page.set_input_files("#images", [str(fake)])
    card = page.locator(".tile.rejected")
    card.wait_for()
    assert "holiday.jpg" in card.inner_text() and "not an image" in card.inner_text()


@pytest.mark.any_database  # the Swagger UI page; the API itself is tested on both
def test_swagger_ui_lists_every_endpoint_and_try_it_out_works_with_a_token(serve, page, request):
    base, app = serve()
    api = ApiActions(app.test_client()).user("docs@example.com")
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock")
    document = app.test_client().get("/api/v1/openapi.json").json
    expected = sum(len(ops) for ops in document["paths"].values())
    assert page.locator(".opblock").count() == expected >= 12
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    assert {p.replace("\u200b", "") for p in shown} == set(document["paths"])

    page.click("button.authorize")
    bearer = page.locator(".auth-container", has_text="bearerAuth")  # beside the apiKey (X-API-Key) one
    bearer.locator("input").fill(api.token)
    bearer.locator(".auth-btn-wrapper button.authorize").click()
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


@pytest.mark.any_database  # the page's style
def test_the_api_docs_are_dark_when_the_system_is(serve, page):
    from PIL import Image, ImageStat

    base, _ = serve()

    def brightness() -> float:
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock")
        shot = page.screenshot(clip={"x": 0, "y": 40, "width": 1000, "height": 600})
        return ImageStat.Stat(Image.open(io.BytesIO(shot)).convert("L")).mean[0]

    page.emulate_media(color_scheme="dark")
    assert brightness() < 90
    page.emulate_media(color_scheme="light")
    assert brightness() > 170


def upload_pngs(page, tmp_path, *names):
    """Upload photos of these names, each different (the same bytes twice would be "already in
    your library" as soon as the first is stored)."""
    files = []
    for i, name in enumerate(names):
        path = tmp_path / name
        path.write_bytes(encode(sample(160 + i, 120), "PNG"))
        files.append(str(path))
    page.set_input_files("#images", files)


def rows(app) -> int:
    """Photos not in the Trash."""
    return len(kept(app))


def test_htmx_delete_sends_the_csrf_header_and_a_forged_one_is_refused(serve, page, tmp_path, request):
    base, app = serve()
    sign_up(page, base, "htmx@example.com")
    upload_pngs(page, tmp_path, "one.png", "two.png")
    expect(page.locator(".tile.status-done")).to_have_count(2, timeout=60_000)
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm asks first
    card = page.locator(".tile", has_text="one.png")

    # Only the header can carry the token: the card's own form field is removed.
    page.evaluate("""() => {
        document.querySelectorAll('.tile form[hx-post$="/delete"] input[name=csrf_token]').forEach(i => i.remove());
        document.body.setAttribute('hx-headers', JSON.stringify({'X-CSRFToken': 'forged'}));
    }""")
    card.get_by_role("button", name="Delete one.png").click()
    page.locator("#htmx-errors .flash-error").wait_for()
    assert "This form has expired" in page.locator("#htmx-errors").inner_text()
    shot(page, request, "gallery-refused-htmx-delete")
    assert card.count() == 1 and rows(app) == 2

    page.reload()
    page.evaluate("""() => document.querySelectorAll('.tile form[hx-post$="/delete"] input[name=csrf_token]')
                                  .forEach(i => i.remove())""")
    page.locator(".tile", has_text="one.png").get_by_role("button", name="Delete one.png").click()
    page.locator(".tile", has_text="one.png").wait_for(state="detached")
    assert page.locator(".tile").count() == 1 and rows(app) == 1
    shot(page, request, "gallery-after-htmx-delete")


def test_without_a_model_the_gallery_shows_a_banner_and_retry_all_works_once_one_is_added(
        serve, page, tmp_path, random_weights, request):
    base, app = serve(YOLO_MODEL="", YOLO_OFFLINE=True)
    sign_up(page, base, "first-run@example.com")
    upload_pngs(page, tmp_path, "holiday.png")
    page.wait_for_selector(".tile.status-failed", timeout=60_000)
    banner = page.locator("#detection-unavailable")  # brought by the failed card: no reload
    expect(banner).to_contain_text("Detection is unavailable: no detection model is installed")
    expect(banner).to_contain_text("Put a YOLO model")
    assert "Not analysed: detection is unavailable (no detection model" in page.locator(".tile").inner_text()
    shot(page, request, "gallery-detection-unavailable")

    models = Path(app.config["MODELS_DIR"])
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(random_weights, models / random_weights.name)  # what the administrator does
    page.get_by_role("button", name="Retry all failed").click()
    page.wait_for_selector(".flashes[role=status] >> text=Retrying 1 photo(s).")
    page.wait_for_selector(".tile.status-done", timeout=60_000)
    expect(page.locator("#detection-unavailable")).to_be_hidden()


@pytest.mark.any_database  # refused in the browser, before anything is stored
def test_a_file_over_the_limit_is_refused_before_it_is_sent(serve, page, tmp_path):
    base, app = serve(MAX_CONTENT_LENGTH=50_000)
    sign_up(page, base, "big@example.com")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    big = tmp_path / "big.bmp"
    big.write_bytes(encode(sample(400, 300), "BMP"))  # 360 kB
    page.set_input_files("#images", [str(big)])
    card = page.locator(".tile.rejected")
    card.wait_for()
    with app.test_request_context():
        assert too_large_message() in card.inner_text()
    assert posts == [] and rows(app) == 0


@pytest.mark.any_database  # the session cookie, not the database
@pytest.mark.parametrize("sign_out", ["log out in another tab", "session cookie gone"])
def test_an_upload_after_the_session_ended_goes_to_log_in(serve, page, tmp_path, sign_out):
    base, app = serve()
    sign_up(page, base, "gone@example.com")
    if sign_out == "session cookie gone":
        page.context.clear_cookies()
    else:
        other = page.context.new_page()
        other.goto(f"{base}/analyses")
        other.get_by_role("button", name="Log out").click()
        other.wait_for_url("**/login")
    upload_pngs(page, tmp_path, "late.png")
    page.wait_for_url(re.compile(r"/login\?next=/analyses$"))
    assert page.locator("h1").inner_text() == "Log in" and rows(app) == 0


def test_api_keys_page_creates_shows_once_and_revokes(serve, page, request):
    base, _ = serve()
    sign_up(page, base, "keys@example.com")
    page.click("a.who")
    page.wait_for_url("**/account")
    page.click("main a:has-text('API keys')")
    page.wait_for_url("**/account/keys")
    page.fill("#name", "garage camera")
    page.check("input[name=scope][value=detect-only]")
    page.click("button:has-text('Create key')")
    secret = page.locator("#new-key").input_value()
    assert secret.startswith("spt_") and "shown this once" in page.content()
    shot(page, request, "api-keys")
    assert "garage camera" in page.locator("table.keys").inner_text()
    page.goto(f"{base}/account/keys")
    assert secret not in page.content() and page.locator("table.keys tbody tr").count() == 1
    page.click("button[aria-label='Revoke garage camera']")
    page.wait_for_selector("text=No keys yet")


def test_gallery_tiles_show_box_badges_and_local_times_in_light_dark_and_phone_screens(live_server, page, assets,
                                                                                       request):
    sign_up(page, live_server, "tiles@example.com")
    upload_and_wait(page, [str(assets / "bus.jpg"), str(assets / "zidane.jpg")], timeout=120_000)
    page.reload()
    badges = page.locator(".tile .badge").all_inner_texts()
    assert len(badges) == 2 and all(int(b) > 0 for b in badges)
    assert "UTC" not in page.locator(".tile time").first.inner_text()  # the viewer's time zone
    assert page.locator(".tile .status:not(.visually-hidden)").count() == 0  # status only while not done
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 800), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            shot(page, request, f"gallery-{scheme}-{width}")
            page.locator(".tile .name", has_text="bus.jpg").click()
            page.wait_for_selector(VIEWER_READY)
            shot(page, request, f"detail-{scheme}-{width}")
            page.go_back()
            page.wait_for_selector(".tile")


@pytest.mark.any_database  # the Swagger UI page; the API itself is tested on both
def test_swagger_ui_puts_auth_first_and_uploads_with_try_it_out_as_it_opens(serve, page, tmp_path):
    base, app = serve()
    api = ApiActions(app.test_client()).user("swagger@example.com")
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(sample(), "PNG"))
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock-tag").first.inner_text().strip().startswith("auth")
    page.click("button.authorize")
    bearer = page.locator(".auth-container", has_text="bearerAuth")
    bearer.locator("input").fill(api.token)
    bearer.locator(".auth-btn-wrapper button.authorize").click()
    page.click("button.btn-done")
    upload = page.locator(".opblock-post", has=page.locator(".opblock-summary-path",
                                                            has_text=re.compile(r"^/api/v1/analyses$"))).first
    upload.locator(".opblock-summary").click()
    upload.locator("button.try-out__btn").click()
    assert "null" not in [field.input_value() for field in upload.locator("input[type=text]").all()]
    upload.locator("input[type=file]").first.set_input_files(str(photo))
    upload.locator("button.execute").click()
    status = upload.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "202", upload.locator(".live-responses-table").inner_text()


@pytest.mark.any_database  # the form's markup and focus
def test_a_form_sent_back_with_errors_focuses_its_first_bad_field_and_shows_the_rule_first(serve, page):
    base, _ = serve()
    page.goto(f"{base}/signup")
    assert "At least 8 characters" in page.locator("#password-hint").inner_text()  # before any attempt
    page.fill("#email", "rule@example.com")
    page.fill("#password", "short")
    page.fill("#confirm", "short")
    page.click("button[type=submit]")
    page.wait_for_selector(".has-error")
    expect(page.locator("#password")).to_be_focused()  # by keys.js, once the page's scripts have run
    assert page.locator("#password").get_attribute("aria-describedby") == "password-hint password-error"


def test_a_message_stays_when_the_gallery_refreshes_itself_in_the_background(serve, page, tmp_path):
    base, _ = serve()
    sign_up(page, base, "messages@example.com")
    upload_pngs(page, tmp_path, "one.png")
    expect(page.locator(".tile.status-done")).to_have_count(1, timeout=60_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.evaluate("""() => {
        document.querySelectorAll('.tile form[hx-post$="/delete"] input[name=csrf_token]').forEach(i => i.remove());
        document.body.setAttribute('hx-headers', JSON.stringify({'X-CSRFToken': 'forged'}));
    }""")
    page.get_by_role("button", name="Delete one.png").click()
    expect(page.locator("#htmx-errors .flash-error")).to_contain_text("This form has expired")
    with page.expect_response(lambda r: r.url.endswith("/analyses") and r.request.method == "GET"):
        page.dispatch_event("body", "labelsChanged")  # another photo finished: the filter bar refreshes
    page.wait_for_timeout(200)  # its answer swapped in
    expect(page.locator("#htmx-errors .flash-error")).to_contain_text("This form has expired")
