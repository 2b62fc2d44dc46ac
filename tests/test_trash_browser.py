"""The Trash in Chromium: a card's delete says so with an Undo that brings the photo back; a
delete from the photo's page goes on to the next photo; the Trash page restores; the running
app purges what has waited TRASH_DAYS."""
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser import shot
from tests.factories import add_analysis
from tests.helpers import analyses, kept, trashed
from tests.test_gallery_browser import log_in
from webapp.extensions import db
from webapp.models import Photo

pytestmark = pytest.mark.browser

START = datetime(2026, 9, 20, 12, tzinfo=timezone.utc)


def library(app) -> list[str]:
    """Ada's three photos, a.jpg the oldest; their ids, newest first."""
    made = [add_analysis(app, original_filename=name, created_at=START + timedelta(days=i), labels=[("cat", 0.9)])
            for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg"])]
    return [run.public_id for run in reversed(made)]


def test_delete_undo_delete_restore_and_the_purge(serve, page, request):
    base, app = serve(TRASH_PURGE_SECONDS=1)
    c, b, a = library(app)
    log_in(page, base)
    card = page.locator(f"#analysis-{b}")
    card.hover()
    card.get_by_role("button", name="Delete b.jpg (to the Trash)").click()
    expect(card).to_have_count(0)
    undo = page.locator("#undo-area")
    expect(undo).to_contain_text("Moved b.jpg to the Trash.")
    expect(page.get_by_role("link", name="Trash (1)")).to_be_visible()
    expect(undo).to_be_in_viewport()  # at the foot of the screen, wherever the delete was made
    shot(page, request, "gallery-undo")
    undo.get_by_role("button", name="Undo").click()
    expect(page.locator(".flash-success")).to_have_text("Restored 1 photo.")
    expect(page.locator(f"#analysis-{b}")).to_have_count(1)
    assert not trashed(app)

    page.goto(f"{base}/analyses/{b}")  # from its page: on to the next photo (a.jpg, older)
    page.get_by_role("button", name="Delete photo").click()
    page.wait_for_url(f"**/analyses/{a}")
    expect(page.locator("h1")).to_have_text("a.jpg")
    expect(page.locator("#undo-area")).to_contain_text("Moved b.jpg to the Trash.")

    page.get_by_role("link", name="Open the Trash").click()
    page.wait_for_url("**/trash")
    expect(page.locator(".trash-item")).to_have_count(1)
    page.get_by_role("button", name="Restore b.jpg").click()
    expect(page.locator(".flash-success")).to_contain_text("Restored 1 photo")
    expect(page.locator(".empty")).to_contain_text("The Trash is empty.")
    assert sorted(r.photo.original_filename for r in kept(app)) == ["a.jpg", "b.jpg", "c.jpg"]
    shot(page, request, "trash-restored")

    page.goto(f"{base}/analyses")
    page.locator(f"#analysis-{c}").hover()
    page.get_by_role("button", name="Delete c.jpg (to the Trash)").click()
    expect(page.locator("#undo-area")).to_contain_text("Moved c.jpg to the Trash.")
    with app.app_context():  # 30 days on
        for photo in db.session.scalars(sa.select(Photo).where(Photo.trashed_at.is_not(None))):
            photo.trashed_at -= timedelta(days=30)
        db.session.commit()
    deadline = time.monotonic() + 20
    while trashed(app) and time.monotonic() < deadline:  # a request starts a purge at most every second
        page.goto(f"{base}/trash")
        page.wait_for_timeout(500)
    page.goto(f"{base}/trash")
    expect(page.locator(".empty")).to_contain_text("The Trash is empty.")
    assert sorted(r.photo.original_filename for r in analyses(app)) == ["a.jpg", "b.jpg"]


def test_on_a_phone_the_header_with_the_trash_fits_the_screen(serve, browser):
    base, app = serve()
    c, b, a = library(app)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, base)
    page.goto(f"{base}/analyses/{b}")
    page.get_by_role("button", name="Delete photo").click()
    page.wait_for_url(f"**/analyses/{a}")
    for path in ("/analyses", "/trash", "/account", "/account/keys", "/account/shares"):
        page.goto(base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        expect(page.get_by_role("button", name="Log out", exact=True)).to_be_in_viewport()
    context.close()
