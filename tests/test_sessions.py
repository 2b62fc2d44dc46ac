"""Logging out ends sessions for real: every cookie issued before a logout (session or remember
me, on any device) is dead afterwards; "log out of all devices" and a password change also end
the API's refresh tokens and access tokens."""
import io
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from tests.helpers import PASSWORD, ApiActions, AuthActions, csrf_from

NEW_PASSWORD = "another long passphrase"


def copy_cookies(source, target, *names):
    for name in names:
        cookie = source.get_cookie(name)
        if cookie is not None:
            target.set_cookie(name, cookie.value)


def test_after_logout_a_copy_of_the_old_session_cookie_no_longer_works(app, client, auth):
    auth.signup()
    stolen = app.test_client()
    copy_cookies(client, stolen, "session")
    assert stolen.get("/analyses").status_code == 200
    auth.logout()
    assert stolen.get("/analyses").status_code == 302
    assert stolen.get("/api/v1/me").status_code == 401


def test_after_logout_the_old_remember_cookie_no_longer_works(app, client, auth):
    auth.signup()
    auth.logout()
    auth.login(remember=True)
    kept = app.test_client()
    copy_cookies(client, kept, "remember_token")
    assert kept.get("/analyses").status_code == 200  # the remember cookie alone signs in
    auth.logout()
    fresh = app.test_client()
    copy_cookies(kept, fresh, "remember_token")
    assert fresh.get("/analyses").status_code == 302


def test_each_login_gets_a_new_remember_token(client, auth):
    auth.signup()
    auth.logout()
    auth.login(remember=True)
    first = client.get_cookie("remember_token").value
    auth.logout()
    auth.login(remember=True)
    assert client.get_cookie("remember_token").value != first


def test_the_remember_cookie_lives_thirty_days_not_a_year(client, auth):
    auth.signup()
    auth.logout()
    response = auth.login(remember=True)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_token="))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert timedelta(days=29) < expires - datetime.now(timezone.utc) <= timedelta(days=30)


def test_the_account_page_shows_the_account(client, auth):
    auth.signup()
    page = client.get("/account").get_data(as_text=True)
    assert "ada@example.com" in page and "Log out of all devices" in page and "Change password" in page


def signed_in_elsewhere(app):
    """Another browser, and an API script, of the same account."""
    other = app.test_client()
    AuthActions(other).login()
    api = ApiActions(app.test_client())
    api.login()
    assert other.get("/analyses").status_code == 200 and api.get("/api/v1/me").status_code == 200
    return other, api


def test_logging_out_of_all_devices_ends_every_session_and_api_token(app, client, auth):
    auth.signup()
    other, api = signed_in_elsewhere(app)
    token = csrf_from(client.get("/account").get_data(as_text=True))
    response = client.post("/account/logout-everywhere", data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/analyses").status_code == 302
    assert other.get("/analyses").status_code == 302
    assert api.get("/api/v1/me").status_code == 401  # the access token is dead at once
    assert api.refresh().status_code == 401  # and so is the refresh token


def change_password(client, current, new, confirm=None):
    token = csrf_from(client.get("/account").get_data(as_text=True))
    return client.post("/account/password", data={
        "csrf_token": token, "current": current, "password": new, "confirm": confirm or new})


def test_a_password_change_needs_the_current_password(client, auth):
    auth.signup()
    response = change_password(client, "not my password", NEW_PASSWORD)
    assert response.status_code == 422
    assert "Your current password is not right." in response.get_data(as_text=True)


def test_a_password_change_ends_other_sessions_and_api_tokens_but_not_this_one(app, client, auth):
    auth.signup()
    other, api = signed_in_elsewhere(app)
    response = change_password(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert client.get("/analyses").status_code == 200  # still signed in here
    assert other.get("/analyses").status_code == 302
    assert api.refresh().status_code == 401
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 401
    assert AuthActions(app.test_client()).login(password=NEW_PASSWORD).status_code == 302


def test_a_new_password_follows_the_sign_up_rules(client, auth):
    auth.signup()
    response = change_password(client, PASSWORD, "short")
    assert response.status_code == 422 and "Use at least 8 characters." in response.get_data(as_text=True)


def test_a_password_change_keeps_this_browser_s_keep_me_signed_in(app, client, auth):
    auth.signup()
    auth.logout()
    auth.login(remember=True)
    change_password(client, PASSWORD, NEW_PASSWORD)
    later = app.test_client()
    copy_cookies(client, later, "remember_token")
    assert later.get("/analyses").status_code == 200


@pytest.mark.parametrize("login_id", ["1:²", "²:0", "1:٠", "1:-1", " 1:0", "1", "1:0:0", "9" * 30 + ":0"])
def test_a_login_id_that_is_not_ascii_id_and_version_signs_no_one_in(client, auth, login_id):
    auth.signup()
    with client.session_transaction() as session:
        session["_user_id"] = login_id
    assert client.get("/analyses").status_code == 302


def test_an_upload_from_someone_not_signed_in_is_refused_before_its_body_is_read(client, monkeypatch):
    from flask_wtf import csrf as flask_wtf_csrf

    parsed = []
    monkeypatch.setattr(flask_wtf_csrf.CSRFProtect, "protect", lambda *a, **k: parsed.append(True))
    body = {"images": (io.BytesIO(b"x" * 5_000_000), "big.jpg")}
    page = client.post("/analyses", data=body, content_type="multipart/form-data")
    assert page.status_code == 302 and "/login" in page.headers["Location"] and parsed == []
    body = {"images": (io.BytesIO(b"x" * 5_000_000), "big.jpg")}
    api = client.post("/api/v1/analyses", data=body, content_type="multipart/form-data",
                      headers={"Authorization": "Bearer not-a-token"})
    assert api.status_code == 401 and parsed == []
