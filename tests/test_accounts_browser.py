"""Accounts in Chromium: a forgotten password by mail, "Download everything" with its progress
and download, and deleting the account; axe-clean pages on both screens and themes."""
import io
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser import png_files, shot, sign_up, upload_and_wait
from tests.test_accessibility import violations_everywhere

pytestmark = [pytest.mark.browser, pytest.mark.any_database]  # the services are tested on both databases


def axe_clean(page, name: str) -> None:
    found = violations_everywhere(page, name)
    assert not found, found


def test_a_forgotten_password_is_reset_through_the_mailed_link(serve, page, mailbox, request):
    base, app = serve(**mailbox.settings())
    app.config["PUBLIC_URL"] = base  # the links lead back to this test's server
    sign_up(page, base, "forgetful@example.com")
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("link", name="Forgot your password?").click()
    axe_clean(page, "forgot password")
    page.fill("#email", "forgetful@example.com")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_text("a link to reset its password is on its way")).to_be_visible()
    link = mailbox.link(mailbox.wait_for("forgetful@example.com"))
    assert link.startswith(base + "/reset-password/")
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Choose a new password")
    axe_clean(page, "reset password")
    page.fill("#password", "my new passphrase")
    page.fill("#confirm", "my new passphrase")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_text("Your new password is set")).to_be_visible()
    page.fill("#email", "forgetful@example.com")
    page.fill("#password", "my new passphrase")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/analyses")
    page.goto(link)  # once only
    expect(page.locator(".error.banner")).to_contain_text("used already")
    shot(page, request, "reset-link-used")


def test_download_everything_shows_its_progress_and_downloads_the_originals(serve, page, tmp_path, request,
                                                                             monkeypatch):
    from webapp.auth import takeout

    base, app = serve()
    sign_up(page, base, "leaver@example.com")
    files = png_files(tmp_path, 4)
    upload_and_wait(page, files)
    real_write = zipfile.ZipFile.write

    def slow_write(self, filename, *args, **kwargs):  # a big library: the page has time to show progress
        time.sleep(0.6)
        return real_write(self, filename, *args, **kwargs)

    monkeypatch.setattr(takeout.zipfile.ZipFile, "write", slow_write)
    monkeypatch.setattr(takeout, "PROGRESS_SECONDS", 0.0)
    page.goto(f"{base}/account")
    axe_clean(page, "account")
    page.get_by_role("button", name="Download everything").click()
    expect(page.locator("#takeout-progress")).to_contain_text(" of 4 photos")
    shot(page, request, "takeout-progress")
    expect(page.locator("#takeout-ready")).to_be_visible(timeout=30_000)
    shot(page, request, "takeout-ready")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the zip").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    originals = sorted(archive.read(n) for n in archive.namelist() if n.startswith("originals/"))
    assert originals == sorted(Path(f).read_bytes() for f in files)
    assert download.value.suggested_filename.startswith("spotter-")


def test_deleting_the_account_asks_for_the_password_and_signs_out(serve, page, tmp_path, request):
    base, app = serve()
    sign_up(page, base, "goodbye@example.com")
    upload_and_wait(page, png_files(tmp_path, 1))
    page.goto(f"{base}/account")
    delete = page.get_by_role("region", name="Delete my account")
    delete.get_by_label("Your password").fill("not my password")
    delete.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_text("That is not your password: nothing was deleted.")).to_be_visible()
    axe_clean(page, "account with a deletion error")
    delete = page.get_by_role("region", name="Delete my account")
    delete.get_by_label("Your password").fill("correct horse battery")
    delete.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_text("Your account is deleted")).to_be_visible()
    shot(page, request, "account-deleted")
    assert not any(Path(app.config["UPLOAD_DIR"]).rglob("*.png"))
    page.goto(f"{base}/login")
    page.fill("#email", "goodbye@example.com")
    page.fill("#password", "correct horse battery")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".error.banner")).to_contain_text("Invalid email or password")
    assert urlsplit(page.url).path == "/login"
