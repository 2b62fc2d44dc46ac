"""API authentication: sign-up, log-in, the refresh-token life cycle, bad tokens, rate limits."""
from datetime import datetime, timedelta, timezone

import jwt
import pytest
import sqlalchemy as sa

from tests.factories import add_analysis
from tests.helpers import ApiActions, PASSWORD, fresh_redis, redis_url
from webapp.extensions import db
from webapp.models import RefreshToken, User
from webapp.auth.accounts import PASSWORD_MIN_LENGTH
from webapp.auth.tokens import hash_token


def refresh_rows(app):
    with app.app_context():
        return db.session.scalars(sa.select(RefreshToken).order_by(RefreshToken.id)).all()


def test_signup_answers_201_with_the_user_and_no_hash(api):
    response = api.signup(email=" Ada@Example.com ")
    assert response.status_code == 201
    assert set(response.json) == {"id", "email", "created_at", "usage"}
    assert response.json["usage"]["photos"] == 0
    assert response.json["email"] == "ada@example.com"


def test_signup_with_a_taken_email_is_409(api):
    api.signup()
    response = api.signup(email="ADA@example.com")
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("body", [
    {"email": "not-an-email", "password": PASSWORD},
    {"email": "ada@example.com", "password": "short"},
    {"email": "ada@example.com"},
    {},
    [],
])
def test_invalid_signup_is_422_with_field_errors(client, body):
    response = client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 422
    assert response.json["status"] == 422 and response.json["errors"]


def test_signup_without_json_is_415(client):
    response = client.post("/api/v1/auth/signup", data="email=a")
    assert response.status_code == 415 and response.json["title"]


def test_login_returns_a_bearer_token_and_a_strict_httponly_refresh_cookie(api):
    api.signup()
    response = api.login()
    assert response.status_code == 200
    assert response.json["token_type"] == "bearer" and response.json["expires_in"] == 900
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("refresh_token=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/api/v1/auth"):
        assert attribute in cookie
    assert "Secure" not in cookie  # testing; production cookies are Secure


def test_wrong_password_and_unknown_email_get_the_same_401(api):
    api.signup()
    wrong = api.login(password="wrong password")
    unknown = api.login(email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json["detail"] == unknown.json["detail"]


def test_me_answers_the_token_owner(api):
    api.user()
    response = api.get("/api/v1/me")
    assert response.status_code == 200 and response.json["email"] == "ada@example.com"


def test_me_without_credentials_is_401_with_a_challenge(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


def test_refresh_rotates_the_cookie_and_the_old_token_stops_working(api, client):
    api.user()
    first = client.get_cookie("refresh_token", path="/api/v1/auth").value
    response = api.refresh()
    assert response.status_code == 200 and response.json["access_token"]
    second = client.get_cookie("refresh_token", path="/api/v1/auth").value
    assert second != first
    assert api.get("/api/v1/me").status_code == 200
    client.set_cookie("refresh_token", first, path="/api/v1/auth")
    assert api.refresh().status_code == 401


def test_reusing_a_rotated_token_revokes_the_whole_family(api, client, app):
    api.user()
    stolen = client.get_cookie("refresh_token", path="/api/v1/auth").value
    api.refresh()  # the owner rotates
    current = client.get_cookie("refresh_token", path="/api/v1/auth").value
    client.set_cookie("refresh_token", stolen, path="/api/v1/auth")
    reuse = api.refresh()  # the thief replays the old one
    assert reuse.status_code == 401 and "already used" in reuse.json["detail"]
    client.set_cookie("refresh_token", current, path="/api/v1/auth")
    assert api.refresh().status_code == 401  # the owner's newest token is revoked too
    assert all(row.revoked_at is not None for row in refresh_rows(app))


def test_a_second_login_is_a_separate_family(api, client, app):
    api.user()
    other = ApiActions(app.test_client())
    other.login()
    rows = refresh_rows(app)
    assert len({row.family for row in rows}) == 2


def test_refresh_tokens_are_stored_only_as_sha256(api, client, app):
    api.user()
    raw = client.get_cookie("refresh_token", path="/api/v1/auth").value
    [row] = refresh_rows(app)
    assert row.token_hash == hash_token(raw) and len(row.token_hash) == 64
    with app.app_context():
        dump = " ".join(str(v) for r in db.session.execute(sa.text("SELECT * FROM refresh_token")) for v in r)
    assert raw not in dump


def test_refresh_without_the_csrf_header_is_refused(api, client):
    api.user()
    response = client.post("/api/v1/auth/refresh")
    assert response.status_code == 403 and "X-Requested-With" in response.json["detail"]


def test_refresh_from_another_origin_is_refused(api, client):
    api.user()
    response = client.post("/api/v1/auth/refresh", headers={
        "X-Requested-With": "XMLHttpRequest", "Origin": "https://evil.example"})
    assert response.status_code == 403


def test_refresh_without_a_cookie_is_401(client):
    response = client.post("/api/v1/auth/refresh", headers=ApiActions.REFRESH_HEADERS)
    assert response.status_code == 401


def test_logout_revokes_the_refresh_token_and_clears_the_cookie(api, client, app):
    api.user()
    raw = client.get_cookie("refresh_token", path="/api/v1/auth").value
    response = api.logout()
    assert response.status_code == 204
    assert "refresh_token=;" in response.headers["Set-Cookie"]
    assert refresh_rows(app)[0].revoked_at is not None
    client.set_cookie("refresh_token", raw, path="/api/v1/auth")
    assert api.refresh().status_code == 401


def later(monkeypatch, seconds: float) -> None:
    """Move the clocks that tokens are checked against `seconds` on (the refresh tokens' rows,
    and PyJWT's for access tokens), rather than waiting."""
    import jwt.api_jwt

    from webapp.auth import tokens

    ahead = timedelta(seconds=seconds)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + ahead

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    monkeypatch.setattr(tokens, "utcnow", lambda: datetime.now(timezone.utc) + ahead)


def test_an_expired_refresh_token_is_refused(make_app, monkeypatch):
    app = make_app(REFRESH_TOKEN_TTL=1)
    api = ApiActions(app.test_client())
    api.user()
    later(monkeypatch, 1.2)
    assert api.refresh().status_code == 401


def test_an_expired_access_token_is_401(make_app, monkeypatch):
    app = make_app(ACCESS_TOKEN_TTL=1)
    api = ApiActions(app.test_client())
    api.user()
    later(monkeypatch, 2.1)
    response = api.get("/api/v1/me")
    assert response.status_code == 401 and "invalid_token" in response.headers["WWW-Authenticate"]


def forged(app, **overrides):
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id))
    now = datetime.now(timezone.utc)
    claims = {"sub": str(user_id), "type": "access", "fresh": False, "jti": "x",
              "iat": now, "nbf": now, "exp": now + timedelta(minutes=5), **overrides}
    return claims


@pytest.mark.parametrize("case", ["other key", "alg none", "refresh type", "garbage", "no sub"])
def test_tampered_tokens_are_401(api, app, case):
    api.user()
    key = app.config["JWT_SECRET_KEY"]
    if case == "other key":
        token = jwt.encode(forged(app), "another-key-entirely-0123456789abcdef", algorithm="HS256")
    elif case == "alg none":
        token = jwt.encode(forged(app), None, algorithm="none")
    elif case == "refresh type":
        token = jwt.encode(forged(app, type="refresh"), key, algorithm="HS256")
    elif case == "no sub":
        claims = forged(app)
        del claims["sub"]
        token = jwt.encode(claims, key, algorithm="HS256")
    else:
        token = "not.a.jwt"
    response = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_properly_signed_token_is_accepted(api, app):
    api.user()
    token = jwt.encode(forged(app), app.config["JWT_SECRET_KEY"], algorithm="HS256")
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_browser_session_works_for_reads(client, auth):
    auth.signup()
    assert client.get("/api/v1/me").json["email"] == "ada@example.com"


def test_the_browser_session_needs_the_csrf_token_for_changes(client, auth, app):
    auth.signup()
    analysis = add_analysis(app)
    assert client.delete(f"/api/v1/analyses/{analysis.public_id}").status_code == 403
    token = auth.csrf("/analyses")
    response = client.delete(f"/api/v1/analyses/{analysis.public_id}", headers={"X-CSRFToken": token})
    assert response.status_code == 204


@pytest.mark.parametrize("url, body", [
    ("/api/v1/auth/login", {"email": "ada@example.com", "password": "wrong password"}),
    ("/api/v1/auth/signup", {"email": "x@example.com", "password": "short"}),
    ("/api/v1/auth/refresh", None),
])
def test_auth_endpoints_are_rate_limited(make_app, url, body):
    app = make_app(RATELIMIT_AUTH="3 per minute")
    client = app.test_client()
    statuses = [client.post(url, json=body, headers=ApiActions.REFRESH_HEADERS).status_code for _ in range(4)]
    assert statuses[:3] != [429] * 3 and statuses[3] == 429
    response = client.post(url, json=body, headers=ApiActions.REFRESH_HEADERS)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/problem+json"


def test_rate_limits_can_live_in_redis(make_app):
    url = redis_url(15)
    limits = fresh_redis(url)
    app = make_app(RATELIMIT_AUTH="2 per minute", RATELIMIT_STORAGE_URI=url)
    client = app.test_client()
    body = {"email": "ada@example.com", "password": "wrong password"}
    statuses = [client.post("/api/v1/auth/login", json=body).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert limits.keys("LIMITS*")


def test_api_login_normalises_the_email_as_the_form_does(api):
    api.signup(email="ada@example.com")
    assert api.login(email="  ADA@Example.COM ").status_code == 200


@pytest.mark.parametrize("length, accepted", [(PASSWORD_MIN_LENGTH - 1, False), (PASSWORD_MIN_LENGTH, True)])
def test_one_password_policy_for_the_form_and_the_api(make_app, auth_factory, length, accepted):
    app = make_app()
    client, auth = auth_factory(app)
    by_form = auth.signup(email="form@example.com", password="p" * length)
    by_api = ApiActions(app.test_client()).signup(email="api@example.com", password="p" * length)
    assert (by_form.status_code == 302, by_api.status_code == 201) == (accepted, accepted)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(api, app, scheme):
    api.user()
    token = jwt.encode(forged(app), app.config["JWT_SECRET_KEY"], algorithm="HS256")
    assert api.client.get("/api/v1/me", headers={"Authorization": f"{scheme} {token}"}).status_code == 200


def test_an_access_token_without_an_expiry_is_401(api, app):
    api.user()
    claims = forged(app)
    del claims["exp"]
    token = jwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")
    response = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "invalid_token" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("token", ["not.a.jwt", "a" * 40, "eyJhbGciOiJIUzI1NiJ9.e30.x"])
def test_a_401_does_not_echo_the_decoder_s_exception(api, token):
    api.user()
    detail = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json["detail"]
    assert detail == "Invalid access token: log in again (POST /api/v1/auth/login)."
