"""The gallery as a photo app's grid, in Chromium: photos edge to edge (many to a screen, on a desk
and on a phone), each tile's name, labels and actions on hover, focus or a long press, the
selection bar a few keys away from anywhere in the grid, and a scrubber that jumps through the years."""
import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from tests.browser import shot
from tests.factories import add_analysis
from tests.helpers import PASSWORD
from tests.images import encode, sample

pytestmark = [pytest.mark.browser, pytest.mark.any_database]  # the page's layout and scripts

START = datetime(2026, 9, 20, 12, tzinfo=timezone.utc)
# Tiles whose picture showed whole in the first screen of a gallery of 60 photos before the grid
# became photo-first (cards with name, date, chips and a Delete link): 10 at 1440×900, 2 at 390×844
# (where the first started 505 px down, below the upload area, the chips and the date form).
CARDS_BEFORE = {"desk": 10, "phone": 2}


def log_in(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/analyses")
    page.wait_for_load_state("load")  # the page laid out with its styles and scripts


THINGS = ["person", "bicycle", "car", "motorcycle", "bus", "truck", "traffic light", "stop sign", "bench", "bird",
          "teddy bear", "baseball glove"]


def photos(app, count: int, start=START, step=timedelta(hours=1)) -> list:
    """`count` photos an hour apart (the newest last), each with a cat, a dog and one of twelve other things."""
    return [add_analysis(app, original_filename=f"p{i:02d}.jpg", created_at=start + step * i,
                         labels=[("cat", 0.9), ("dog", 0.8), (THINGS[i % len(THINGS)], 0.7)]) for i in range(count)]


def whole_in_view(page) -> int:
    """How many tiles' pictures the first screen shows whole."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('#cards .tile .thumb')).filter((thumb) => {
        const box = thumb.getBoundingClientRect();
        return box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth;
    }).length""")


def test_a_desk_screen_shows_three_times_the_photos_the_cards_did(serve, browser, request):
    base, app = serve(GALLERY_PER_PAGE=60)
    photos(app, 60)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    log_in(page, base)
    shown = whole_in_view(page)
    shot(page, request, "grid-desk")
    context.close()
    assert shown >= 3 * CARDS_BEFORE["desk"], shown


def test_a_phone_screen_is_photos_from_near_its_top(serve, browser, request):
    base, app = serve(GALLERY_PER_PAGE=60)
    photos(app, 60)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=3)
    page = context.new_page()
    log_in(page, base)
    first = page.locator("#cards .tile").first.bounding_box()
    shown = whole_in_view(page)
    wide = page.evaluate("document.documentElement.scrollWidth")  # fourteen chips in one row, scrolling sideways
    shot(page, request, "grid-phone")
    context.close()
    assert first["y"] < 844 / 3, first
    assert shown >= 3 * CARDS_BEFORE["phone"], shown
    assert wide <= 390, wide  # the page is the screen's width: nothing fixed lands off it


def test_a_tiles_name_labels_and_actions_show_on_hover_and_on_focus(serve, page):
    base, app = serve()
    photos(app, 3)
    log_in(page, base)
    first, second = page.locator("#cards .tile").nth(0), page.locator("#cards .tile").nth(1)
    meta = first.locator(".meta")
    expect(meta).to_have_css("opacity", "0")
    first.hover()
    expect(meta).to_have_css("opacity", "1")
    expect(meta.locator(".name")).to_have_text("p02.jpg")
    expect(meta.locator(".chip")).to_have_text(["car ×1", "cat ×1", "dog ×1"])
    expect(meta.get_by_role("button", name="Delete p02.jpg (to the Trash)")).to_be_visible()
    page.mouse.move(0, 0)
    second.locator("a.name").focus()
    expect(second.locator(".meta")).to_have_css("opacity", "1")
    expect(meta).to_have_css("opacity", "0")


def test_a_long_press_on_a_touch_screen_shows_a_photos_name_and_actions_without_opening_it(serve, browser):
    base, app = serve()
    photos(app, 3)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, base)
    page.locator("#cards .tile").nth(1).tap()  # a tap opens the photo (its hidden labels take no tap)
    page.wait_for_url("**/analyses/*")
    page.go_back()
    tile = page.locator("#cards .tile").first
    box = tile.bounding_box()
    touch = context.new_cdp_session(page)
    point = [{"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}]
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
    page.wait_for_timeout(800)
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect(tile).to_have_class(re.compile(r"\bpeek\b"))
    expect(tile.locator(".meta")).to_have_css("opacity", "1")
    expect(tile.get_by_role("button", name=re.compile("^Delete"))).to_be_visible()
    page.wait_for_timeout(300)
    assert re.search(r"/analyses(#[\w-]+)?$", page.url), page.url  # the photo stayed in the grid
    context.close()


def test_from_a_photo_deep_in_the_grid_the_selection_bar_is_two_keys_away(serve, page):
    base, app = serve(GALLERY_PER_PAGE=60)
    photos(app, 40)
    photos(app, 3, start=datetime(2019, 5, 1, tzinfo=timezone.utc))  # a second year: the scrubber is there too
    log_in(page, base)
    page.locator("#cards .tile a.name").first.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#cards .tile a.name").nth(30)).to_be_focused()
    page.keyboard.press(" ")
    expect(page.locator("#bulk-count")).to_have_text("1 photo selected")
    presses = 0
    while not page.evaluate("document.activeElement.closest('#bulk') !== null") and presses < 10:
        page.keyboard.press("Shift+Tab")
        presses += 1
    assert presses <= 2, presses  # the tile's tick box, then the bar's last button
    expect(page.locator("#bulk-delete")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # back in the grid, on the photo last focused (its tick box, then its name)
    expect(page.locator("#cards .tile a.name").nth(30)).to_be_focused()


def test_tab_leaves_the_grid_after_one_photo(serve, page):
    base, app = serve()
    photos(app, 12)
    log_in(page, base)
    page.locator("#cards .tile a.name").first.focus()
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#cards .tile') === null"):
            break
    assert page.evaluate("document.activeElement.closest('#cards .tile') === null")


def test_the_scrubber_lists_the_years_and_jumps_to_one(serve, page):
    base, app = serve(GALLERY_PER_PAGE=4)
    for year in (2019, 2022, 2026):
        for i in range(5):
            add_analysis(app, original_filename=f"y{year}-{i}.jpg",
                         created_at=datetime(year, 6, 1 + i, 12, tzinfo=timezone.utc))
    log_in(page, base)
    scrubber = page.get_by_role("navigation", name="Jump to a year")
    expect(scrubber.get_by_role("link")).to_have_text(["2026", "2022", "2019"])
    scrubber.get_by_role("link", name="2022").click()
    expect(page.locator("#cards .tile a.name").first).to_have_text("y2022-4.jpg")
    expect(page.locator("#cards .month").first).to_have_text("June 2022")
    expect(page.locator(".jumped")).to_contain_text("From June 2022 back")
    page.locator(".jumped a").click()
    expect(page.locator("#cards .tile a.name").first).to_have_text("y2026-4.jpg")


def test_the_scrubber_follows_the_order_and_is_not_shown_for_one_year(serve, page):
    base, app = serve(GALLERY_PER_PAGE=4)
    for year in (2019, 2022):
        for i in range(3):
            add_analysis(app, original_filename=f"y{year}-{i}.jpg",
                         created_at=datetime(year, 1, 1 + i, 0, tzinfo=timezone.utc))
    log_in(page, base)
    page.goto(f"{base}/analyses?sort=oldest")
    scrubber = page.get_by_role("navigation", name="Jump to a year")
    expect(scrubber.get_by_role("link")).to_have_text(["2019", "2022"])
    scrubber.get_by_role("link", name="2022").click()
    expect(page.locator("#cards .tile a.name").first).to_have_text("y2022-0.jpg")  # from January 1st, midnight
    expect(page.locator("#cards .month").first).to_have_text("January 2022")
    page.goto(f"{base}/analyses?from=2022-01-01")
    expect(page.locator(".scrubber")).to_have_count(0)


def test_photos_being_uploaded_sit_under_just_added_above_the_months(serve, page, tmp_path):
    base, app = serve()
    photos(app, 2)
    log_in(page, base)
    expect(page.locator("#uploads")).to_be_hidden()
    path = tmp_path / "new.png"
    path.write_bytes(encode(sample(200, 150), "PNG"))
    page.set_input_files("#images", str(path))
    expect(page.locator("#uploads > .month")).to_have_text("Just added")
    expect(page.locator("#uploads > :nth-child(2)")).to_have_class(re.compile(r"\btile\b"))
    expect(page.locator("#uploads")).to_be_visible()


def test_deleting_a_photo_from_the_grid_keeps_the_keyboard_on_the_next_one(serve, page):
    base, app = serve()
    photos(app, 6)
    log_in(page, base)
    names = page.locator("#cards .tile a.name")
    names.nth(1).focus()
    expect(names.nth(1)).to_have_text("p04.jpg")
    page.keyboard.press("Tab")  # its labels, then its Delete
    while not page.evaluate("document.activeElement.matches('button.danger')"):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#undo-area .undo")
    expect(names.nth(1)).to_be_focused()
    expect(names.nth(1)).to_have_text("p03.jpg")
    assert page.evaluate("document.activeElement.tabIndex") == 0  # and in the Tab order


def test_a_double_click_on_delete_moves_one_photo_to_the_trash(serve, page):
    base, app = serve()
    photos(app, 4)
    log_in(page, base)
    tile = page.locator("#cards .tile").first
    tile.hover()
    tile.get_by_role("button", name=re.compile("^Delete")).dblclick()
    page.wait_for_selector("#undo-area .undo")
    page.wait_for_timeout(800)
    expect(page.locator("#undo-area .undo")).to_contain_text("Moved p03.jpg to the Trash")
    expect(page.locator("#cards .tile")).to_have_count(3)


def test_arrow_down_past_the_last_row_loaded_loads_the_next_page(serve, page):
    base, app = serve(GALLERY_PER_PAGE=16)
    photos(app, 40)
    page.set_viewport_size({"width": 1280, "height": 420})  # the next page's link below the screen
    log_in(page, base)
    names = page.locator("#cards .tile a.name")
    expect(names).to_have_count(16)
    names.nth(15).focus()
    page.keyboard.press("ArrowRight")
    expect(names.nth(16)).to_be_focused()


def test_escape_from_a_photo_deep_in_the_history_comes_back_to_it(serve, page):
    base, app = serve(GALLERY_PER_PAGE=10)
    made = photos(app, 80)
    deep = made[15]  # the 65th newest: seven pages down
    log_in(page, base)
    page.goto(f"{base}/analyses/{deep.public_id}")
    page.keyboard.press("Escape")
    page.wait_for_url(re.compile(r"/analyses\?cursor=.*#analysis-"))
    expect(page.locator(f"#analysis-{deep.public_id} a.name")).to_be_focused()
    expect(page.locator(f"#analysis-{deep.public_id}")).to_be_in_viewport()
    expect(page.locator(".jumped")).to_contain_text("back to the newest")


def test_the_browsers_back_from_a_photo_comes_back_to_it(serve, page):
    base, app = serve(GALLERY_PER_PAGE=40)
    photos(app, 30)
    log_in(page, base)
    tile = page.locator("#cards .tile").nth(20)
    public_id = tile.get_attribute("id")
    tile.locator("a.thumb").click()
    page.wait_for_url("**/analyses/*")
    page.go_back()
    expect(page.locator(f"#{public_id} a.name")).to_be_focused()


def test_while_photos_are_selected_a_click_on_a_photo_selects_it(serve, page):
    base, app = serve()
    photos(app, 4)
    log_in(page, base)
    tiles = page.locator("#cards .tile")
    tiles.first.hover()
    tiles.first.locator("input.pick").check()
    tiles.nth(2).locator("a.thumb").click()
    expect(page.locator("#bulk-count")).to_have_text("2 photos selected")
    assert page.url.endswith("/analyses"), page.url
    tiles.nth(2).locator("a.name").click()  # its name still opens it
    page.wait_for_url("**/analyses/*")


def test_a_photo_uploaded_on_the_page_shows_once_as_pages_load_below(serve, page, tmp_path):
    base, app = serve(GALLERY_PER_PAGE=2)
    photos(app, 5)
    log_in(page, base)
    page.goto(f"{base}/analyses?sort=oldest")  # the new photo is the newest: on the last page
    path = tmp_path / "new.png"
    path.write_bytes(encode(sample(200, 150), "PNG"))
    page.set_input_files("#images", str(path))
    expect(page.locator("#uploads .tile.status-done")).to_have_count(1)
    for _ in range(5):
        page.mouse.wheel(0, 5000)
        page.wait_for_timeout(300)
    expect(page.locator("#cards .tile")).to_have_count(5)
    expect(page.locator(".tile", has_text="new.png")).to_have_count(1)


def test_a_link_to_a_place_that_no_longer_works_shows_the_newest_with_a_quiet_note(serve, page):
    base, app = serve()
    photos(app, 3)
    log_in(page, base)
    page.goto(f"{base}/analyses?cursor=not-a-cursor")
    expect(page.locator(".flash")).to_have_text(
        "That link to a place in your photos no longer works: here are the newest.")
    expect(page.locator("#cards .tile a.name").first).to_have_text("p02.jpg")
    expect(page.locator("#range")).to_be_hidden()
    expect(page.get_by_text("cursor")).to_have_count(0)
