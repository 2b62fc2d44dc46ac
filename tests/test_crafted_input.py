"""Crafted input never reaches the database as it is: a NUL byte or a malformed id is a 4xx,
never a 500 (PostgreSQL refuses NUL in text; SQLite does not), on both databases."""
import os

import pytest

from tests.factories import add_analysis
from tests.helpers import ApiActions, csrf_from

NUL_ID = "0" * 16 + "\x00" + "0" * 15
BAD_IDS = [NUL_ID, "%00", "A" * 32, "0" * 33]

PAGE_ROUTES = [
    ("GET", "/analyses/{id}"), ("GET", "/analyses/{id}/card"), ("GET", "/analyses/{id}/image/original"),
    ("GET", "/analyses/{id}/detections.json"), ("POST", "/analyses/{id}/delete"), ("POST", "/analyses/{id}/retry"),
]
API_ROUTES = [
    ("GET", "/api/v1/analyses/{id}"), ("DELETE", "/api/v1/analyses/{id}"), ("GET", "/api/v1/analyses/{id}/image"),
    ("GET", "/api/v1/analyses/{id}/export"), ("POST", "/api/v1/analyses/{id}/retry"),
]


@pytest.mark.parametrize("method,route", PAGE_ROUTES)
@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_malformed_analysis_id_on_a_page_is_a_404(client, auth, method, route, bad):
    auth.signup()
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.open(route.format(id=bad), method=method, data={"csrf_token": token})
    assert response.status_code == 404


@pytest.mark.parametrize("method,route", API_ROUTES)
@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_malformed_analysis_id_in_the_api_is_a_404_problem(client, method, route, bad):
    api = ApiActions(client).user()
    response = client.open(route.format(id=bad), method=method, headers=api.headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_real_id_still_resolves(client, auth, app):
    auth.signup()
    analysis = add_analysis(app)
    assert client.get(f"/analyses/{analysis.public_id}").status_code == 200


@pytest.mark.parametrize("url", ["/analyses?label=dog%00", "/analyses?label=%00", "/api/v1/analyses?label=dog%00",
                                 "/analyses?page=10000000000000000000", "/api/v1/analyses?page=10000000000000000000",
                                 "/analyses?from=2026-01-01%00", "/analyses?cursor=%00"])
def test_crafted_list_queries_are_never_a_500(client, auth, url):
    api = ApiActions(client).user()
    auth.login()
    response = client.get(url, headers=api.headers if url.startswith("/api") else {})
    assert response.status_code < 500


@pytest.mark.parametrize("email", ["ada\x00@example.com", "ada@example.com\x00", "\x00", "ada@exa\x01mple.com"])
def test_a_control_character_in_a_login_email_is_refused_by_the_api(client, email):
    response = client.post("/api/v1/auth/login", json={"email": email, "password": "whatever it is"})
    assert response.status_code in (401, 422)


@pytest.mark.parametrize("email", ["ada\x00@example.com", "ada@example.com\x00", "ada@exa\x01mple.com"])
def test_a_control_character_in_a_login_email_is_a_form_error(client, auth, email):
    token = auth.csrf("/login")
    response = client.post("/login", data={"email": email, "password": "whatever it is", "csrf_token": token})
    assert response.status_code in (401, 422)


@pytest.mark.parametrize("email", ["ada\x00@example.com", "ada@exa\x01mple.com"])
def test_a_control_character_in_a_signup_email_is_refused(client, auth, email):
    assert client.post("/api/v1/auth/signup", json={"email": email, "password": "a long passphrase"}).status_code == 422
    token = auth.csrf("/signup")
    response = client.post("/signup", data={"email": email, "password": "a long passphrase",
                                            "confirm": "a long passphrase", "csrf_token": token})
    assert response.status_code == 422


def test_a_huge_form_to_a_non_upload_route_is_refused_before_it_is_parsed(client, monkeypatch):
    from flask_wtf import csrf as flask_wtf_csrf

    parsed = []
    monkeypatch.setattr(flask_wtf_csrf.CSRFProtect, "protect", lambda *args, **kwargs: parsed.append(True))
    body = "&".join(f"a{i}=b" for i in range(200_000)).encode()  # 2.3 MB, 200,000 fields
    response = client.post("/logout", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and parsed == []
    assert "the limit is 64 KB for anything but an upload" in response.get_data(as_text=True)


def test_a_huge_json_body_is_a_413_problem(client):
    response = client.post("/api/v1/auth/signup", data=b'{"email": "' + b"a" * 100_000 + b'"}',
                           content_type="application/json")
    assert response.status_code == 413 and response.mimetype == "application/problem+json"


def test_deeply_nested_json_is_a_400_not_a_500(client):
    deep = "[" * 5000 + "]" * 5000
    response = client.post("/api/v1/auth/signup", data='{"email": "a@b.co", "password": ' + deep + "}",
                           content_type="application/json")
    assert response.status_code == 400 and response.json["detail"] == "The JSON body is nested too deeply."


def test_an_upload_may_still_be_large(client, auth):
    from PIL import Image

    from tests.helpers import upload
    from tests.images import encode

    auth.signup()
    big = encode(Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3)), "PNG")  # noise: ~360 KB
    assert len(big) > 64 * 1024
    assert upload(client, ("big.png", big)).status_code in (200, 201, 302)


@pytest.mark.parametrize("label", ["%00", "a%00b", "%1b[31m"])
def test_a_control_character_in_a_label_filter_is_a_422_not_a_silent_no_filter(client, label):
    api = ApiActions(client).user()
    for path in ("/api/v1/analyses", "/api/v1/analyses/export"):
        response = client.get(f"{path}?label={label}", headers=api.headers)
        assert response.status_code == 422, path


def test_an_oversized_json_body_sent_chunked_is_a_413_not_invalid_json(client):
    import io as _io

    body = b'{"email": "' + b"a" * 100_000 + b'", "password": "x"}'
    response = client.post("/api/v1/auth/login", input_stream=_io.BytesIO(body), content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
