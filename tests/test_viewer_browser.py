"""The photo viewer in Chromium, as issue 24 found it: labels that would overlap fold into their
box (shown on focus or hover), a Labels switch, + - 0 from the keyboard, a drag that pans without
selecting the photo, a swipe to the next photo on a touch screen, keyboard hints only where there
is a keyboard; the live boxes where the drawn image has them, in its colours."""
import re

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect

from tests.browser import VIEWER_READY, shot, sign_up, upload_and_wait
from tests.factories import add_boxes
from tests.helpers import analyses
from tests.images import encode, sample

pytestmark = [pytest.mark.browser, pytest.mark.any_database]  # what the page's script does


def photos(page, app, tmp_path, count: int = 1) -> list[str]:
    """`count` uploaded photos (the newest first), the first with two nearly identical person boxes and a dog."""
    paths = []
    for i in range(count):
        path = tmp_path / f"street{i}.png"
        path.write_bytes(encode(sample(640 + i, 480), "PNG"))
        paths.append(str(path))
    upload_and_wait(page, paths)
    runs = sorted(analyses(app), key=lambda r: r.id, reverse=True)
    add_boxes(app, runs[0].public_id, [("person", 0, 0.9, (20, 20, 300, 400)), ("person", 0, 0.8, (24, 24, 296, 396)),
                                      ("dog", 16, 0.6, (350, 200, 600, 460))])
    return [r.public_id for r in runs]


def open_photo(page, base: str, public_id: str) -> None:
    page.goto(f"{base}/analyses/{public_id}")
    page.wait_for_selector(VIEWER_READY)


def label_shown(page, conf: str) -> bool:
    return page.locator(f"#overlay g.box[data-conf='{conf}'] .label").is_visible()


def test_a_label_that_would_overlap_a_more_confident_one_folds_into_its_box(serve, page, tmp_path, request):
    base, app = serve()
    sign_up(page, base, "labels@example.com")
    [first] = photos(page, app, tmp_path)
    open_photo(page, base, first)
    expect(page.locator("#overlay g.box.crowded")).to_have_count(1)
    assert label_shown(page, "0.9") and label_shown(page, "0.6") and not label_shown(page, "0.8")
    shot(page, request, "viewer-label-folded")
    page.locator("#overlay g.box[data-conf='0.8']").focus()  # a keyboard user reaches it; so does a pointer
    assert label_shown(page, "0.8")
    page.keyboard.press("+")
    page.keyboard.press("+")
    page.keyboard.press("+")  # zoomed in, the labels are smaller against the photo: still one folded
    expect(page.locator("#overlay g.box.crowded")).to_have_count(1)
    shot(page, request, "viewer-zoomed")


def test_the_labels_switch_hides_them_until_a_box_is_pointed_at_and_is_remembered(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "switch@example.com")
    [first] = photos(page, app, tmp_path)
    open_photo(page, base, first)
    toggle = page.get_by_role("button", name="Labels")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert not label_shown(page, "0.9") and not label_shown(page, "0.6")
    page.locator("#overlay g.box[data-conf='0.6']").focus()
    assert label_shown(page, "0.6")
    page.reload()
    page.wait_for_selector(VIEWER_READY)
    expect(page.get_by_role("button", name="Labels")).to_have_attribute("aria-pressed", "false")


def test_plus_and_minus_zoom_and_zero_resets(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "keys@example.com")
    [first] = photos(page, app, tmp_path)
    open_photo(page, base, first)
    stage = page.locator("#stage")
    page.keyboard.press("+")
    expect(stage).to_have_attribute("data-scale", "1.500")
    page.keyboard.press("=")
    expect(stage).to_have_attribute("data-scale", "2.250")
    page.keyboard.press("-")
    expect(stage).to_have_attribute("data-scale", "1.500")
    page.keyboard.press("0")
    expect(stage).to_have_attribute("data-scale", "1.000")


def test_a_drag_pans_the_zoomed_photo_without_selecting_it(serve, page, tmp_path):
    base, app = serve()
    sign_up(page, base, "drag@example.com")
    [first] = photos(page, app, tmp_path)
    open_photo(page, base, first)
    page.keyboard.press("+")
    page.keyboard.press("+")
    before = page.locator("#zoom").evaluate("el => el.style.transform")
    box = page.locator("#stage").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 - 120, box["y"] + box["height"] / 2 - 60, steps=8)
    page.mouse.up()
    assert page.locator("#zoom").evaluate("el => el.style.transform") != before
    assert page.evaluate("getSelection().isCollapsed || getSelection().toString() === ''")
    assert page.evaluate("getSelection().rangeCount === 0 || getSelection().isCollapsed")


def test_a_swipe_on_a_touch_screen_goes_to_the_next_photo_and_back(serve, browser, tmp_path):
    base, app = serve()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_up(page, base, "swipe@example.com")
    newest, older = photos(page, app, tmp_path, count=2)
    open_photo(page, base, newest)

    def swipe(dx: int) -> None:
        page.locator("#stage").evaluate("""(stage, dx) => {
            const box = stage.getBoundingClientRect(), y = box.top + box.height / 2, x = box.left + box.width / 2;
            const at = (type, cx) => stage.dispatchEvent(new PointerEvent(type, {
                pointerId: 7, pointerType: "touch", isPrimary: true, clientX: cx, clientY: y, bubbles: true }));
            at("pointerdown", x); at("pointermove", x + dx / 2); at("pointerup", x + dx);
        }""", dx)

    swipe(-150)  # right to left: the next photo
    page.wait_for_url(f"**/analyses/{older}")
    page.wait_for_selector("#stage[data-zoomable]")
    swipe(150)
    page.wait_for_url(f"**/analyses/{newest}")
    context.close()


def test_keyboard_hints_show_only_where_there_is_a_keyboard(serve, browser, page, tmp_path, request):
    base, app = serve()
    sign_up(page, base, "hints@example.com")
    [first] = photos(page, app, tmp_path)
    open_photo(page, base, first)
    expect(page.locator(".keyboard-hint")).to_be_visible()
    expect(page.locator(".touch-hint")).to_be_hidden()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                storage_state=page.context.storage_state())
    on_phone = phone.new_page()
    open_photo(on_phone, base, first)
    expect(on_phone.locator(".keyboard-hint")).to_be_hidden()
    expect(on_phone.locator(".touch-hint")).to_be_visible()
    shot(on_phone, request, "viewer-phone")
    phone.close()


def test_the_class_field_suggests_the_name_being_typed_after_those_already_there(serve, page, tmp_path):
    base, app = serve()  # random weights: classes named "0" to "79"
    sign_up(page, base, "classes@example.com")
    [first] = photos(page, app, tmp_path)
    open_photo(page, base, first)
    page.locator("summary", has_text="Run again").click()
    page.locator("#rerun-classes-field").fill("1, 7")
    values = page.locator("#rerun-classes option").evaluate_all("options => options.map(o => o.value)")
    assert {"1, 7", "1, 17", "1, 70"} <= set(values) and "1, 1" not in values
    assert all(value.startswith("1, ") for value in values)


def _stage_picture(page):
    """The photo as the stage shows it now, as pixels (BGR)."""
    return cv2.imdecode(np.frombuffer(page.locator("#stage").screenshot(), np.uint8), cv2.IMREAD_COLOR).astype(int)


def _frame_colour_share(picture, frame, colour, scale, samples=24) -> float:
    """The share of points along a frame's top and left edges (the stroke's middle) that show `colour`
    (other boxes and labels cross some)."""
    x, y, w, h = frame
    steps = [i / samples for i in range(1, samples)]
    points = [(x + w * step, y) for step in steps] + [(x, y + h * step) for step in steps]
    hits = 0
    for px, py in points:
        col, row = round(px * scale), round(py * scale)  # the pixel there or one beside it (the stroke's edges blend)
        around = picture[max(0, row - 1):row + 2, max(0, col - 1):col + 2].reshape(-1, 3)
        hits += np.abs(around - colour).max(axis=1).min() <= 60
    return hits / len(points)


@pytest.mark.parametrize("threshold", [None, "0.50"])
def test_the_live_boxes_are_the_drawn_images_boxes_in_the_same_places_and_colours(serve, coco_model, browser, assets,
                                                                                  request, threshold):
    """The page's live view (the photo with its boxes drawn by the browser) and the drawn image
    (drawn by the server, as downloaded), at the run's threshold and at one chosen on the slider:
    every box the live view shows is on the drawn image in the same place and colour, and they
    show as many."""
    base, app = serve(YOLO_MODEL=coco_model)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=2)
    page = context.new_page()
    sign_up(page, base, "drawn@example.com")
    upload_and_wait(page, str(assets / "bus.jpg"), timeout=120_000)
    [run] = analyses(app)
    open_photo(page, base, run.public_id)
    if threshold:
        page.locator("#conf").evaluate(f"el => {{ el.value = '{threshold}'; el.dispatchEvent(new Event('input')); }}")
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('#overlay g.box'))
        .filter((g) => getComputedStyle(g).display !== 'none')
        .map((g) => g.querySelector('rect.frame'))
        .map((r) => [['x', 'y', 'width', 'height'].map((k) => Number(r.getAttribute(k))), r.getAttribute('stroke')])""")
    live = _stage_picture(page)
    page.locator("button[data-view=annotated]").click()
    drawn_layer = page.locator(".layer-annotated")
    if threshold:
        expect(drawn_layer).to_have_attribute("src", re.compile(rf"annotated\?conf={threshold}"))
    for _ in range(100):
        if page.evaluate("(img) => img.complete && img.naturalWidth > 0", drawn_layer.element_handle()):
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(200)
    drawn_picture = _stage_picture(page)
    assert f"with {len(boxes)} detected" in drawn_layer.get_attribute("alt")
    shot(page, request, f"viewer-drawn-{threshold or 'run'}")
    context.close()

    shown = [d for d in run.detections if d.confidence >= float(threshold or run.conf)]
    assert len(boxes) == len(shown) >= 4, (len(boxes), len(shown))
    scale = live.shape[1] / run.photo.width
    assert drawn_picture.shape == live.shape
    for frame, stroke in boxes:
        colour = np.array([int(stroke[i:i + 2], 16) for i in (5, 3, 1)])  # #rrggbb as BGR
        assert _frame_colour_share(live, frame, colour, scale) >= 0.6, (frame, stroke, "live")
        assert _frame_colour_share(drawn_picture, frame, colour, scale) >= 0.6, (frame, stroke, "drawn")
