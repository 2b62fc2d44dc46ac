"""Browsing the gallery in Chromium: previous/next and Esc, months, the filter bar, selection
with bulk zip and delete, the upload queue (browser checks, cancel, duplicates), and the detail
page's download matching its slider, box/row linking and zoom."""
import io
import re
import time
import zipfile
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect

from tests.factories import add_analysis
from tests.helpers import PASSWORD, analyses, kept, trashed
from webapp.models import RunStatus
from tests.images import drawn, encode, sample
from tests.browser import VIEWER_READY, shot, sign_up, upload_and_wait
from webapp.vision.detector import Box
from webapp.vision.images import NOT_AN_IMAGE

pytestmark = pytest.mark.browser

START = datetime(2026, 9, 20, 12, tzinfo=timezone.utc)


def log_in(page, base: str, email: str = "ada@example.com") -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/analyses")


def with_labels(app, count: int) -> None:
    """Ada's library: a photo for each of `count` labels, thing00 on the most boxes, each next on one fewer."""
    for i in range(count):
        add_analysis(app, labels=[(f"thing{i:02d}", 0.9)] * (count - i))


def pngs(tmp_path, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = tmp_path / f"photo{i}.png"
        path.write_bytes(encode(sample(200 + i, 150), "PNG"))
        paths.append(str(path))
    return paths


@pytest.mark.any_database  # keyboard handling in the page
def test_arrow_keys_step_through_the_label_filter_and_escape_returns_to_that_photo(serve, page):
    base, app = serve(GALLERY_PER_PAGE=4)
    made = [add_analysis(app, original_filename=f"p{i:02d}.jpg", created_at=START + timedelta(days=5 * i),
                         labels=[("cat", 0.9)] if i % 2 else [("dog", 0.9)]) for i in range(12)]
    names = [a.photo.original_filename for a in reversed(made)]  # newest first
    cats = [name for name in names if int(name[1:3]) % 2]
    log_in(page, base)
    page.goto(f"{base}/analyses?label=cat")
    assert page.locator("#cards > h2.month").all_inner_texts()[:2] == ["November 2026", "October 2026"]
    def on(name):  # that photo's page, its script running (keys pressed before it would be lost)
        expect(page.locator("h1")).to_have_text(name)
        page.wait_for_load_state()

    page.locator(".tile .name").first.click()
    on(cats[0])
    for name in cats[1:6]:  # past the first page of the listing (4 photos)
        page.keyboard.press("ArrowRight")
        on(name)
    assert "label=cat" in page.url
    page.keyboard.press("ArrowRight")  # the last one: nowhere to go
    on(cats[5])
    page.keyboard.press("ArrowLeft")
    on(cats[4])
    page.keyboard.press("Escape")
    page.wait_for_url("**/analyses?label=cat#analysis-*")
    card = page.locator(".tile", has_text=cats[4])
    expect(card).to_be_in_viewport()  # on the second page, loaded for it
    expect(page.locator(".tile .name", has_text=cats[4])).to_be_focused()


def test_the_filter_bar_shows_top_labels_and_finds_the_others_by_typing(serve, page):
    base, app = serve()
    with_labels(app, 11)
    log_in(page, base)
    bar = page.locator("nav.filter")
    assert bar.locator(":scope > a.chip").count() == 1 + 8  # All + the 8 most common
    page.click("summary:has-text('more…')")
    page.fill("#label-search", "thing1")
    expect(page.locator(".more-list .chip:visible")).to_have_count(1)  # thing10 (thing08, thing09 hidden)
    page.locator(".more-list .chip:visible").click()
    page.wait_for_url("**/analyses?label=thing10")
    assert page.locator(".tile").count() == 1
    # photo counts in the bar are not box counts on the cards
    assert bar.locator("a.chip.active .photos").inner_text().strip().startswith("1")
    assert page.locator(".tile .chips .count").first.inner_text() == "×1"


def test_shift_click_selects_a_range_and_downloads_it_as_a_zip(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "zip@example.com")
    upload_and_wait(page, pngs(tmp_path, 4))
    page.reload()
    picks = page.locator(".tile .pick")
    picks.nth(0).click()
    picks.nth(2).click(modifiers=["Shift"])
    expect(page.locator("#bulk-count")).to_have_text("3 photos selected")
    chosen = [picks.nth(i).get_attribute("value") for i in range(3)]
    with page.expect_download() as download:
        page.click("#bulk button[value=zip]")
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    names = archive.namelist()
    by_id = {run.public_id: run.photo.original_filename for run in analyses(app)}
    assert sorted(n for n in names if n.startswith("originals/")) == sorted(f"originals/{by_id[c]}" for c in chosen)
    assert len([n for n in names if n.startswith("annotated/")]) == 3
    assert {"detections-coco.json", "detections.csv"} <= set(names)


def test_bulk_delete_asks_with_the_count_then_deletes_only_those(serve, page, tmp_path, request):
    base, app = serve()
    sign_up(page, base, "bulk@example.com")
    upload_and_wait(page, pngs(tmp_path, 3))
    page.reload()
    page.locator(".tile .pick").nth(0).check()
    page.locator(".tile .pick").nth(1).focus()
    page.keyboard.press("Space")  # the keyboard selects too
    expect(page.locator("#bulk-count")).to_have_text("2 photos selected")
    shot(page, request, "gallery-selection")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#bulk button[value=delete]")
    page.wait_for_selector("text=Moved 2 photos to the Trash.")
    assert "Move 2 photos to the Trash? You can restore them for 30 days." in asked[0]
    assert page.locator(".tile").count() == 1 and len(kept(app)) == 1


def test_select_all_in_this_filter_then_dismissing_the_question_keeps_everything(serve, page):
    base, app = serve(GALLERY_PER_PAGE=2)
    for _ in range(5):
        add_analysis(app, labels=[("cat", 0.9)])
    log_in(page, base)
    page.locator(".tile .pick").first.check()
    page.click("#bulk-select-all")
    expect(page.locator("#bulk-count")).to_have_text("All 5 photos selected")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#bulk button[value=delete]")
    assert len(kept(app)) == 5
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#bulk button[value=delete]")
    page.wait_for_selector("text=Moved 5 photos to the Trash.")
    assert kept(app) == [] and len(trashed(app)) == 5


def test_an_upload_can_be_cancelled_midway_and_nothing_is_stored(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "cancel@example.com")
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), np.uint8)  # incompressible: ~5 MB
    big.write_bytes(cv2.imencode(".png", noise)[1].tobytes())
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                  "uploadThroughput": 256 * 1024})
    page.set_input_files("#images", str(big))
    bar = page.locator(".tile.uploading progress")
    expect(bar).not_to_have_attribute("value", "0")  # on its way
    with page.expect_event("requestfailed"):  # the browser gave up the request
        page.click("button.cancel")
    expect(page.locator(".tile")).to_have_count(0)
    expect(page.locator("#upload-status")).to_have_text("Upload of big.png cancelled.")
    assert analyses(app) == []


@pytest.mark.any_database  # refused in the browser, before anything is stored
def test_a_file_that_is_not_an_image_is_refused_in_the_browser_and_can_be_dismissed(serve, page, tmp_path):
    base, _ = serve()
    sign_up(page, base, "types@example.com")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.set_input_files("#images", str(notes))
    expect(page.locator(".tile.rejected .error")).to_have_text(NOT_AN_IMAGE)  # the server's own words
    assert posts == []
    page.click("button[aria-label='Dismiss notes.txt']")
    expect(page.locator(".tile")).to_have_count(0)


def test_a_photo_already_in_the_library_asks_view_it_or_upload_anyway(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "dupes@example.com")
    [photo] = pngs(tmp_path, 1)
    upload_and_wait(page, photo)
    [first] = analyses(app)
    page.set_input_files("#images", photo)
    duplicate = page.locator(".tile.duplicate")
    expect(duplicate).to_contain_text("Already in your library")
    assert duplicate.locator("a", has_text="View it").get_attribute("href") == f"/analyses/{first.public_id}"
    assert len(analyses(app)) == 1  # nothing sent
    duplicate.locator("button", has_text="Upload anyway").click()
    expect(page.locator(".tile.status-done")).to_have_count(2, timeout=60_000)
    assert len(analyses(app)) == 2


def test_the_detail_page_download_matches_the_slider_and_boxes_link_to_rows(serve, coco_model, page, assets, request):
    base, app = serve(YOLO_MODEL=coco_model)
    sign_up(page, base, "slider@example.com")
    upload_and_wait(page, str(assets / "bus.jpg"), timeout=120_000)
    expect(page.locator("nav.filter")).to_contain_text("bus")  # the filter bar refreshed by itself
    page.locator(".tile .name").click()
    page.wait_for_selector(VIEWER_READY)
    stage = page.locator("#stage").bounding_box()
    assert stage["height"] <= page.viewport_size["height"]  # a portrait photo fits the screen

    # hovering a box lights its row; the class list follows the threshold
    page.locator('#overlay g.box[aria-label^="bus"]:visible').focus()
    expect(page.locator("table.detections tr.hl td").first).to_have_text("bus")
    page.locator("#conf").focus()
    expect(page.locator("table.detections tr.hl")).to_have_count(0)
    page.locator("table.detections tbody tr").nth(1).hover()
    expect(page.locator("#overlay g.box.hl")).to_have_attribute("aria-label", "person 0.90")
    slider = page.locator("#conf")
    slider.evaluate("el => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }")
    labels = page.locator(".classes label[data-label]:visible")
    assert sorted(" ".join(text.split()) for text in labels.all_inner_texts()) == ["bus 1", "person 3"]
    page.locator("input[name=class][value=person]").uncheck()
    expect(page.locator("#box-count")).to_have_text("1 box shown")

    # the annotated view and its download are what the page shows
    page.locator("button[data-view=annotated]").click()
    annotated = page.locator(".layer-annotated")
    expect(annotated).to_have_attribute("src", re.compile(r"annotated\?conf=0\.50&classes=bus%2C"))
    classes = unquote(page.locator(".layer-annotated").get_attribute("src").split("classes=")[1]).split(",")
    assert "bus" in classes and "person" not in classes
    assert "with 1 detected" in page.locator(".layer-annotated").get_attribute("alt")
    with page.expect_download() as download:
        page.click("#download-annotated")
    got = cv2.imread(download.value.path()).astype(int)
    [analysis] = analyses(app)
    original = cv2.imread(str(app.config["UPLOAD_DIR"]) + "/" + analysis.photo.original_path)
    shown = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2) for d in analysis.detections
             if d.confidence >= 0.5 and d.label == "bus"]
    everything = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2) for d in analysis.detections_at()]
    assert len(shown) == 1
    assert np.abs(got - drawn(original, shown)).mean() * 3 < np.abs(got - drawn(original, everything)).mean()
    shot(page, request, "detail-annotated-as-shown")

    # zoom: double-click zooms in, 0 resets
    page.locator("button[data-view=boxes]").click()
    page.locator("#stage").dblclick()
    assert "scale(2.5)" in page.locator("#zoom").get_attribute("style")
    page.keyboard.press("0")
    assert "scale(1)" in page.locator("#zoom").get_attribute("style")


@pytest.mark.any_database  # keyboard handling in the page
def test_escape_returns_to_a_card_of_the_first_page_in_view_and_focused(serve, page):
    base, app = serve(GALLERY_PER_PAGE=12)
    for i in range(12):
        add_analysis(app, original_filename=f"q{i:02d}.jpg", created_at=START + timedelta(days=9 * i))
    log_in(page, base)
    page.goto(f"{base}/analyses?sort=oldest")
    page.locator(".tile .name", has_text="q09.jpg").click()
    expect(page.locator("h1")).to_have_text("q09.jpg")
    page.wait_for_load_state()
    page.locator("#conf").focus()  # Esc leaves from the slider too
    page.keyboard.press("Escape")
    page.wait_for_url("**/analyses?sort=oldest#analysis-*")
    expect(page.locator(".tile", has_text="q09.jpg")).to_be_in_viewport()
    expect(page.locator(".tile .name", has_text="q09.jpg")).to_be_focused()


@pytest.mark.any_database  # the page's scripts under the CSP
def test_a_detail_page_polling_a_running_analysis_breaks_no_content_security_rule(serve, page):
    """htmx settles a swapped element's attributes, `style` included by default: the zoomable
    stage's inline style (set from the script) would be re-applied as an attribute, which the
    CSP refuses. The page fixture fails the test on any violation."""
    base, app = serve(ANALYSIS_EXECUTOR="sync", EVENT_STREAMS=0)  # no stream: the page polls
    running = add_analysis(app, status=RunStatus.PENDING)
    log_in(page, base)
    page.goto(f"{base}/analyses/{running.public_id}")
    for _ in range(2):  # the page's first poll, swapped and settled before its second
        with page.expect_response(lambda r: r.url.endswith(running.public_id) and r.request.headers.get("hx-request")):
            pass


@pytest.mark.any_database  # the upload queue's script
def test_the_upload_queue_sends_two_photos_at_a_time_and_retries_one_the_server_defers(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "queue@example.com")
    in_flight, most, deferred = set(), [0], []

    def is_upload(request) -> bool:
        return request.method == "POST" and request.url.endswith("/analyses")

    def started(request):
        if is_upload(request):
            in_flight.add(request)
            most[0] = max(most[0], len(in_flight))

    def ended(request):  # its answer came (the script hears of it after that)
        in_flight.discard(request)

    def defer_the_first(route):
        if is_upload(route.request) and not deferred:
            deferred.append(route.request)
            route.fulfill(status=429, headers={"Retry-After": "1"}, body="<p>You are sending other photos</p>")
        else:
            route.continue_()

    page.on("request", started)
    page.on("response", lambda response: ended(response.request))
    page.on("requestfailed", ended)
    page.route("**/analyses", defer_the_first)
    upload_and_wait(page, pngs(tmp_path, 7))
    assert most[0] <= 2 and deferred
    assert len(analyses(app)) == 7
    expect(page.locator(".tile.rejected")).to_have_count(0)


def test_cards_turn_done_when_the_event_stream_says_so_without_polling(serve, page, tmp_path, monkeypatch):
    """Each card going is fetched when its run has finished (the tab's event stream said so), not
    every second while it runs; the stream ends once nothing is left to wait for."""
    from webapp.jobs import pipeline

    base, app = serve()
    real_detect = pipeline.detect

    def slow_detect(batch):  # a few seconds a photo: polling would fetch each card several times
        time.sleep(2.5)
        real_detect(batch)

    monkeypatch.setattr(pipeline, "detect", slow_detect)
    sign_up(page, base, "live@example.com")
    cards, streams = [], []
    page.on("request", lambda r: cards.append(r.url) if "/card" in r.url else None)
    page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
    upload_and_wait(page, pngs(tmp_path, 3))
    # once when its run has finished; at most once more, when the stream opened after the card
    # came (the tab catches up on what it may have missed); polling made 26 requests here
    assert len(set(cards)) == 3 and all(cards.count(url) <= 2 for url in cards), cards
    assert streams and all("watch=" in url for url in streams)


def test_without_an_event_stream_the_cards_poll_and_still_turn_done(serve, page, tmp_path):
    base, _ = serve(EVENT_STREAMS=0)  # every stream refused: a 503
    sign_up(page, base, "poll@example.com")
    upload_and_wait(page, pngs(tmp_path, 2))


def test_a_photo_that_fails_shows_in_the_failed_count_without_a_reload(serve, page, tmp_path):
    from tests.images import HOSTILE

    base, _ = serve()
    sign_up(page, base, "fails@example.com")
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(HOSTILE["truncated JPEG"][1])  # its header is fine: decoding finds it damaged
    page.set_input_files("#images", [str(damaged)])
    expect(page.locator(".tile.status-failed")).to_have_count(1)
    expect(page.locator("#failed-count")).to_contain_text("1 photo failed.")


def test_the_more_labels_count_follows_new_labels_without_a_reload(serve, page):
    base, app = serve()
    with_labels(app, 10)
    log_in(page, base)
    summary = page.locator("#more-labels summary")
    expect(summary).to_have_text("more… (2)")
    add_analysis(app, labels=[("zebra", 0.9), ("yak", 0.9)])  # a photo of the page just finished
    page.dispatch_event("body", "labelsChanged")
    expect(summary).to_have_text("more… (4)")


@pytest.mark.any_database  # the upload queue's script
def test_photos_chosen_together_queue_top_down_in_the_order_chosen(serve, page, tmp_path):
    base, _ = serve()
    sign_up(page, base, "order@example.com")
    upload_and_wait(page, pngs(tmp_path, 3))  # sent in the order chosen
    names = [name.strip() for name in page.locator("#uploads .tile .name").all_inner_texts()]
    assert names == ["photo0.png", "photo1.png", "photo2.png"]  # so the first one sent is on top


@pytest.mark.any_database  # the upload queue's script
def test_the_upload_queue_says_how_many_of_the_chosen_photos_are_sent(serve, page, tmp_path):
    base, _ = serve()
    sign_up(page, base, "count@example.com")
    upload_and_wait(page, pngs(tmp_path, 5))
    expect(page.locator("#upload-progress")).to_have_text("5 of 5 photos sent.")


@pytest.mark.any_database  # the upload queue's script
def test_leaving_the_page_while_photos_wait_to_be_sent_asks_first(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "leave@example.com")
    page.route("**/analyses", lambda route: None if route.request.method == "POST" else route.continue_())  # held
    page.set_input_files("#images", pngs(tmp_path, 4))
    expect(page.locator(".tile.sending")).to_have_count(2)
    asked = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.dismiss()  # stay

    page.on("dialog", answer)
    page.click("header a:has-text('My photos')", no_wait_after=True)
    expect(page.locator(".tile.uploading")).to_have_count(4)  # still here, still queued
    assert asked == ["beforeunload"]


def test_the_server_unreachable_message_goes_once_the_page_reaches_it_again(serve, page, tmp_path):
    base, _ = serve(EVENT_STREAMS=0)  # the cards poll
    sign_up(page, base, "reach@example.com")
    dropped = []

    def drop_the_first_card_fetch(route):
        if not dropped:
            dropped.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/card*", drop_the_first_card_fetch)
    upload_and_wait(page, pngs(tmp_path, 1))
    assert dropped
    expect(page.locator("#htmx-errors")).to_be_empty()  # the next poll reached it: nothing stale said


@pytest.mark.any_database  # the upload queue's script
def test_the_upload_count_says_how_many_could_not_be_sent(serve, page, tmp_path):
    base, _ = serve()
    sign_up(page, base, "refused@example.com")
    refused = []

    def refuse_the_first(route):
        if route.request.method == "POST" and not refused:
            refused.append(route.request.url)
            route.fulfill(status=400, body="<p>Not a photo we can read.</p>")
        else:
            route.continue_()

    page.route("**/analyses", refuse_the_first)
    page.set_input_files("#images", pngs(tmp_path, 2))
    expect(page.locator("#upload-progress")).to_have_text("1 of 2 photos sent (1 could not be: see below).")
    expect(page.locator("#upload-status")).to_have_text("1 of 2 photos sent (1 could not be: see below).")


@pytest.mark.any_database  # the page's keyboard handling
def test_arrow_keys_move_through_the_grid_space_selects_and_enter_opens(serve, page):
    base, app = serve()
    for i in range(12):
        add_analysis(app, original_filename=f"p{i:02d}.jpg", created_at=START + timedelta(hours=i))
    log_in(page, base)
    names = page.locator("#cards .tile a.name")
    names.first.focus()
    page.keyboard.press("ArrowRight")
    expect(names.nth(1)).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(names.first).to_be_focused()
    first = page.locator("#cards .tile").first.bounding_box()
    page.keyboard.press("ArrowDown")  # the photo below it: the next row, the same column
    focused = page.evaluate("document.activeElement.closest('.tile').getBoundingClientRect().toJSON()")
    assert focused["top"] > first["y"] + first["height"] / 2 and abs(focused["left"] - first["x"]) < 2
    page.keyboard.press("ArrowUp")
    expect(names.first).to_be_focused()
    scrolled = page.evaluate("scrollY")
    page.keyboard.press(" ")
    expect(page.locator("#cards .tile .pick").first).to_be_checked()
    expect(page.locator("#bulk-count")).to_have_text("1 photo selected")
    assert page.evaluate("scrollY") == scrolled  # Space selected; it did not scroll the page
    page.keyboard.press("Enter")
    page.wait_for_url("**/analyses/*")
    expect(page.locator("h1")).to_have_text("p11.jpg")
