import pytest
import sqlalchemy as sa

from tests.helpers import PASSWORD, break_function
from webapp.extensions import db
from webapp.models import User


def user_count(app):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def test_signup_creates_an_account_and_signs_in(client, auth, app):
    response = auth.signup(email="  Ada@Example.COM ")
    assert response.status_code == 302 and response.location == "/analyses"
    page = client.get("/analyses").get_data(as_text=True)
    assert "ada@example.com" in page and "Log out" in page
    with app.app_context():
        assert db.session.scalar(sa.select(User.email)) == "ada@example.com"


def test_signup_with_a_taken_email_in_other_case_is_a_form_error(client, auth, app):
    auth.signup()
    auth.logout()
    response = auth.signup(email="ADA@example.com ")
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    assert user_count(app) == 1


@pytest.mark.parametrize("email, password, confirm, message", [
    ("ada@example.com", "short", "short", "at least 8 characters"),
    ("ada@example.com", PASSWORD, "different password", "do not match"),
    ("not-an-email", PASSWORD, PASSWORD, "Invalid email address"),
    ("", PASSWORD, PASSWORD, "This field is required"),
])
def test_signup_rejects_invalid_input(auth, app, email, password, confirm, message):
    response = auth.signup(email=email, password=password, confirm=confirm)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert user_count(app) == 0


def test_user_table_holds_no_plain_text_password(auth, app):
    auth.signup()
    with app.app_context():
        rows = db.session.execute(sa.text('SELECT * FROM "user"')).all()
    assert rows and all(PASSWORD not in str(value) for row in rows for value in row)


def test_login_with_right_password_signs_in(client, auth):
    auth.signup()
    auth.logout()
    response = auth.login(email="ADA@example.com")
    assert response.status_code == 302 and response.location == "/analyses"
    assert client.get("/analyses").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_answer(client, auth):
    auth.signup()
    auth.logout()
    wrong = auth.login(password="not the password")
    unknown = auth.login(email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "Invalid email or password." in wrong.get_data(as_text=True)
    assert "Invalid email or password." in unknown.get_data(as_text=True)
    assert client.get("/analyses").status_code == 302


def test_login_follows_a_local_next(auth):
    auth.signup()
    auth.logout()
    response = auth.login(next_url="/analyses?label=dog")
    assert response.location == "/analyses?label=dog"


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "http:/evil.example",
    "javascript:alert(1)", "evil.example",
])
def test_login_never_redirects_off_site(auth, target):
    auth.signup()
    auth.logout()
    response = auth.login(next_url=target)
    assert response.status_code == 302 and response.location == "/analyses"


def test_remember_me_sets_a_persistent_cookie(client, auth):
    auth.signup()
    auth.logout()
    auth.login(remember=True)
    assert client.get_cookie("remember_token") is not None


def test_logout_signs_out(client, auth):
    auth.signup()
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/analyses").status_code == 302


def test_logout_refuses_get(client, auth):
    auth.signup()
    assert client.get("/logout").status_code == 405


@pytest.mark.parametrize("url, data", [
    ("/logout", {}),
    ("/logout", {"csrf_token": "forged"}),
    ("/login", {"email": "ada@example.com", "password": PASSWORD, "csrf_token": "forged"}),
    ("/signup", {"email": "eve@example.com", "password": PASSWORD, "confirm": PASSWORD}),
])
def test_state_changes_without_a_valid_csrf_token_are_refused(client, auth, url, data):
    auth.signup()
    response = client.post(url, data=data)
    assert response.status_code == 400
    assert client.get("/analyses").status_code == 200  # still signed in


def test_pages_need_login_and_come_back_after_it(client, auth):
    response = client.get("/analyses?label=cat")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    auth.signup()
    auth.logout()
    response = auth.login(next_url="/analyses?label=cat")
    assert response.location == "/analyses?label=cat"


def test_home_page_invites_visitors_to_sign_up(client):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/signup"' in page and 'href="/login"' in page


def test_signed_in_home_goes_to_the_gallery(client, auth):
    auth.signup()
    assert client.get("/").location == "/analyses"


def test_login_form_is_rate_limited_per_address(make_app, auth_factory):
    app = make_app(RATELIMIT_AUTH="3 per minute")
    client, auth = auth_factory(app)
    statuses = [auth.login(password="wrong password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    response = auth.login()
    assert response.status_code == 429 and "Too Many Requests" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/login").status_code == 200  # reading the form is not limited


def test_an_unexpected_error_shows_a_friendly_500_page(client, auth, monkeypatch):
    auth.signup()
    break_function(monkeypatch, "webapp.analyses.listing.label_summary")
    response = client.get("/analyses")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.get_data(as_text=True)
    assert "boom" not in response.get_data(as_text=True)


def test_a_secure_cookie_dropped_over_plain_http_is_explained(make_app, auth_factory):
    """Production marks cookies Secure; a browser on http:// then never sends the session back."""
    app = make_app(SESSION_COOKIE_SECURE=True)
    client, auth = auth_factory(app)
    token = auth.csrf("/login")
    client.delete_cookie("session")  # what the browser did with the Secure cookie
    response = client.post("/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Secure (HTTPS only)" in page and "SESSION_COOKIE_SECURE=0" in page


def test_a_stale_form_is_explained_without_library_jargon(client, auth):
    auth.signup()
    response = client.post("/logout", data={"csrf_token": "forged"})
    main = response.get_data(as_text=True).split('<main id="main">', 1)[1]
    assert response.status_code == 400 and "This form has expired" in main and "CSRF" not in main
