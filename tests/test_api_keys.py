"""API keys: created signed in (page or API), shown once, stored hashed, listed, revoked; they
authenticate API requests within their scope and their rate limit."""
import hashlib
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.helpers import ApiActions, csrf_from
from tests.images import encode, sample
from webapp.extensions import db
from webapp.models import ApiKey

PHOTO = encode(sample(), "PNG")


def new_key(client, api, **body):
    response = client.post("/api/v1/keys", json={"name": "camera", **body}, headers=api.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def upload_with(client, headers):
    return client.post("/api/v1/analyses", data={"images": [(io.BytesIO(PHOTO), "p.png")]}, headers=headers,
                       content_type="multipart/form-data")


def test_a_key_is_shown_once_and_stored_as_its_sha256_only(app, client):
    api = ApiActions(client).user()
    created = new_key(client, api)
    assert created["key"].startswith("spt_") and len(created["key"]) >= 40
    assert created["prefix"] == created["key"][:12] and created["scope"] == "full"
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey))
        assert row.secret_hash == hashlib.sha256(created["key"].encode()).hexdigest()
        assert created["key"] not in {str(v) for v in vars(row).values()}
    listed = client.get("/api/v1/keys", headers=api.headers).get_json()["keys"]
    assert [k["name"] for k in listed] == ["camera"] and "key" not in listed[0]


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_key_authenticates_api_requests_like_a_token(app, client, header):
    raw = new_key(client, ApiActions(client).user())["key"]
    headers = {"Authorization": f"Bearer {raw}"} if header == "bearer" else {"X-API-Key": raw}
    fresh = app.test_client()  # no session cookie
    assert fresh.get("/api/v1/me", headers=headers).get_json()["email"] == "ada@example.com"
    assert upload_with(fresh, headers).status_code == 202
    assert fresh.get("/api/v1/analyses", headers=headers).status_code == 200


def test_a_revoked_key_is_refused_at_once(app, client):
    api = ApiActions(client).user()
    created = new_key(client, api)
    headers = {"X-API-Key": created["key"]}
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/keys/{created['id']}", headers=api.headers).status_code == 204
    response = app.test_client().get("/api/v1/me", headers=headers)
    assert response.status_code == 401 and "revoked" in response.get_json()["detail"]
    assert upload_with(app.test_client(), headers).status_code == 401


def test_a_detect_only_key_may_upload_but_not_list_or_read(app, client):
    raw = new_key(client, ApiActions(client).user(), scope="detect-only")["key"]
    headers = {"X-API-Key": raw}
    fresh = app.test_client()
    assert upload_with(fresh, headers).status_code == 202
    listing = fresh.get("/api/v1/analyses", headers=headers)
    assert listing.status_code == 403 and "detect-only" in listing.get_json()["detail"]
    assert fresh.get("/api/v1/me", headers=headers).status_code == 403
    assert fresh.get("/api/v1/analyses/export", headers=headers).status_code == 403


def test_a_key_cannot_manage_keys(app, client):
    raw = new_key(client, ApiActions(client).user())["key"]
    response = app.test_client().post("/api/v1/keys", json={"name": "more"}, headers={"X-API-Key": raw})
    assert response.status_code == 403
    assert app.test_client().get("/api/v1/keys", headers={"X-API-Key": raw}).status_code == 403


def test_someone_elses_key_cannot_be_revoked(app, client):
    created = new_key(client, ApiActions(client).user())
    other = ApiActions(app.test_client()).user("grace@example.com")
    assert other.client.delete(f"/api/v1/keys/{created['id']}", headers=other.headers).status_code == 404
    assert app.test_client().get("/api/v1/me", headers={"X-API-Key": created["key"]}).status_code == 200


@pytest.mark.parametrize("raw", ["spt_not-a-real-key", "spt_", "spt_" + "x" * 500, "spt_\x00abc"])
def test_an_unknown_or_malformed_key_is_a_401(client, raw):
    response = client.get("/api/v1/me", headers={"X-API-Key": raw})
    assert response.status_code == 401 and response.mimetype == "application/problem+json"


def test_an_upload_with_an_unknown_key_is_refused_before_its_body_is_read(client):
    response = client.post("/api/v1/analyses", data=b"x" * 1000, headers={
        "X-API-Key": "spt_unknown", "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 401


def test_keys_are_rate_limited_per_key(make_app):
    app = make_app(API_KEY_RATE_LIMIT="3 per minute")
    client = app.test_client()
    api = ApiActions(client).user()
    first, second = new_key(client, api)["key"], new_key(client, api, name="other")["key"]
    statuses = [app.test_client().get("/api/v1/me", headers={"X-API-Key": first}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = app.test_client().get("/api/v1/me", headers={"X-API-Key": first})
    assert int(limited.headers["Retry-After"]) > 0
    assert app.test_client().get("/api/v1/me", headers={"X-API-Key": second}).status_code == 200


def test_last_used_is_written_at_most_once_a_minute(app, client):
    created = new_key(client, ApiActions(client).user())
    headers = {"X-API-Key": created["key"]}
    app.test_client().get("/api/v1/me", headers=headers)
    with app.app_context():
        first = db.session.scalar(sa.select(ApiKey.last_used_at))
    app.test_client().get("/api/v1/me", headers=headers)
    with app.app_context():
        assert db.session.scalar(sa.select(ApiKey.last_used_at)) == first
        db.session.execute(sa.update(ApiKey).values(last_used_at=first - timedelta(minutes=2)))
        db.session.commit()
    app.test_client().get("/api/v1/me", headers=headers)
    with app.app_context():
        assert db.session.scalar(sa.select(ApiKey.last_used_at)) > first - timedelta(seconds=1)


def test_the_keys_page_creates_shows_once_lists_and_revokes(app, client, auth):
    auth.signup()
    page = client.get("/account/keys")
    assert page.status_code == 200 and "No keys yet" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    created = client.post("/account/keys", data={"name": "garage camera", "scope": "detect-only",
                                                 "csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    assert "shown this once" in created and 'value="spt_' in created
    listing = client.get("/account/keys").get_data(as_text=True)
    assert "garage camera" in listing and "detect-only" in listing and 'value="spt_' not in listing
    with app.app_context():
        key_id = db.session.scalar(sa.select(ApiKey.id))
    token = csrf_from(listing)
    client.post(f"/account/keys/{key_id}/revoke", data={"csrf_token": token})
    assert "No keys yet" in client.get("/account/keys").get_data(as_text=True)


def test_a_key_name_is_required_on_the_page_and_in_the_api(client, auth, app):
    auth.signup()
    token = csrf_from(client.get("/account/keys").get_data(as_text=True))
    assert client.post("/account/keys", data={"name": "  ", "csrf_token": token}).status_code == 422
    api = ApiActions(app.test_client()).user("grace@example.com")
    response = api.client.post("/api/v1/keys", json={"name": "bad\x00name"}, headers=api.headers)
    assert response.status_code == 422


DETECT_ONLY_ROUTES = {("POST", "/api/v1/analyses"), ("POST", "/v1/vision/detection")}  # docs/api.md, API keys


def test_a_detect_only_key_opens_only_the_routes_its_scope_names(app):
    """Every route of the URL map, every method, with a detect-only key and with no credential at
    all: a route the key opens (2xx with it, not without) must be one the docs list for the scope."""
    client = app.test_client()
    api = ApiActions(client).user()
    key = new_key(client, api, scope="detect-only")["key"]
    photo = upload_with(client, api.headers).get_json()["analyses"][0]["id"]
    values = {"public_id": photo, "other_id": photo, "run_id": photo, "variant": "original", "format": "json",
              "share_id": "x" * 16, "token": "x", "key_id": "1", "filename": "app.css"}
    opened = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        url = rule.build({name: values.get(name, "x") for name in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            form = {"images": [(io.BytesIO(PHOTO), "p.png")], "image": (io.BytesIO(PHOTO), "p.png")}
            with_key = app.test_client().open(url, method=method, headers={"X-API-Key": key}, data=form,
                                              content_type="multipart/form-data")
            anonymous = app.test_client().open(url, method=method, data={
                "images": [(io.BytesIO(PHOTO), "p.png")], "image": (io.BytesIO(PHOTO), "p.png")},
                content_type="multipart/form-data")
            if with_key.status_code < 300 and not anonymous.status_code < 300:
                opened.append((method, rule.rule))
    assert set(opened) == DETECT_ONLY_ROUTES, opened
