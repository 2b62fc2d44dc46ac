"""Who may sign up: SIGNUP=open (anyone), invite (a single-use link for one email, from `flask
users invite`) or closed (nobody; the operator makes accounts). Pages and API alike."""
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import PASSWORD, ApiActions, AuthActions, csrf_from


def invite(app, email) -> str:
    result = app.test_cli_runner().invoke(args=["users", "invite", email])
    assert result.exit_code == 0, result.output
    line = next(line.strip() for line in result.output.splitlines() if "/signup?invite=" in line)
    return parse_qs(urlsplit(line).query)["invite"][0]


def sign_up_with(client, token, email, password=PASSWORD):
    page = client.get(f"/signup?invite={token}")
    return client.post("/signup", data={"email": email, "password": password, "confirm": password, "invite": token,
                                        "csrf_token": csrf_from(page.get_data(as_text=True))})


@pytest.fixture
def closed(make_app):
    return make_app(SIGNUP="closed")


@pytest.fixture
def by_invite(make_app):
    return make_app(SIGNUP="invite")


def test_closed_sign_up_says_so_and_creates_nothing(closed):
    client = closed.test_client()
    page = client.get("/signup")
    assert page.status_code == 403 and "Sign-up is closed" in page.get_data(as_text=True)
    posted = client.post("/signup", data={"email": "a@example.com", "password": PASSWORD, "confirm": PASSWORD,
                                          "csrf_token": AuthActions(client).csrf("/login")})
    assert posted.status_code == 403
    api = ApiActions(closed.test_client()).signup("a@example.com")
    assert api.status_code == 403 and "closed" in api.get_json()["detail"]
    assert AuthActions(closed.test_client()).login("a@example.com").status_code == 401


def test_closed_sign_up_hides_the_sign_up_links(closed):
    client = closed.test_client()
    for path in ("/", "/login"):
        assert 'href="/signup"' not in client.get(path).get_data(as_text=True), path


def test_closed_refuses_invitations(closed):
    result = closed.test_cli_runner().invoke(args=["users", "invite", "a@example.com"])
    assert result.exit_code == 1 and "SIGNUP is closed" in result.output


def test_invite_only_refuses_a_sign_up_without_an_invitation(by_invite):
    client = by_invite.test_client()
    page = client.get("/signup")
    assert page.status_code == 403 and "by invitation" in page.get_data(as_text=True)
    assert ApiActions(by_invite.test_client()).signup("a@example.com").status_code == 403


def test_an_invitation_signs_up_its_email_once(by_invite):
    token = invite(by_invite, "Guest@Example.com")
    client = by_invite.test_client()
    page = client.get(f"/signup?invite={token}")
    assert page.status_code == 200 and "guest@example.com" in page.get_data(as_text=True)
    done = sign_up_with(client, token, "guest@example.com")
    assert done.status_code == 302 and done.headers["Location"].endswith("/analyses")
    again = by_invite.test_client().get(f"/signup?invite={token}")
    assert again.status_code == 410 and "used already" in again.get_data(as_text=True)
    assert ApiActions(by_invite.test_client()).client.post(
        "/api/v1/auth/signup", json={"email": "guest2@example.com", "password": PASSWORD, "invite": token}
    ).status_code in (403, 410)


def test_an_invitation_for_one_email_cannot_sign_up_another(by_invite):
    token = invite(by_invite, "guest@example.com")
    refused = sign_up_with(by_invite.test_client(), token, "intruder@example.com")
    assert refused.status_code == 403 and "another email address" in refused.get_data(as_text=True)
    api = by_invite.test_client().post("/api/v1/auth/signup", json={
        "email": "intruder@example.com", "password": PASSWORD, "invite": token})
    assert api.status_code == 403
    assert sign_up_with(by_invite.test_client(), token, "guest@example.com").status_code == 302  # still unused


def test_an_invitation_works_through_the_api(by_invite):
    token = invite(by_invite, "script@example.com")
    made = by_invite.test_client().post("/api/v1/auth/signup", json={
        "email": "script@example.com", "password": PASSWORD, "invite": token})
    assert made.status_code == 201


def test_a_tampered_invitation_is_refused(by_invite):
    token = invite(by_invite, "guest@example.com")
    page = by_invite.test_client().get(f"/signup?invite={token[:-2]}xx")
    assert page.status_code == 410 and "not valid" in page.get_data(as_text=True)


def test_an_invitation_for_an_existing_account_is_refused(by_invite):
    token = invite(by_invite, "guest@example.com")
    sign_up_with(by_invite.test_client(), token, "guest@example.com")
    result = by_invite.test_cli_runner().invoke(args=["users", "invite", "guest@example.com"])
    assert result.exit_code == 1 and "has an account already" in result.output


def test_open_sign_up_is_the_default(app, auth):
    assert app.config["SIGNUP"] == "open"
    assert auth.signup().status_code == 302


def test_a_bad_signup_setting_stops_the_start(make_app):
    from webapp.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="SIGNUP must be one of open, invite, closed"):
        make_app(SIGNUP="maybe")


def test_mail_without_public_url_or_sender_stops_the_start(make_app):
    from webapp.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="PUBLIC_URL"):
        make_app(MAIL_URL="smtp://u:p@mail.example.com:587", MAIL_FROM="x@example.com")
    with pytest.raises(ConfigurationError, match="MAIL_FROM"):
        make_app(MAIL_URL="smtp://u:p@mail.example.com:587", PUBLIC_URL="https://photos.example.com")
    with pytest.raises(ConfigurationError, match="MAIL_URL must be"):
        make_app(MAIL_URL="http://mail.example.com", PUBLIC_URL="https://p.example.com", MAIL_FROM="x@example.com")
