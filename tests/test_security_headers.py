"""Every response carries the security headers; pages get a Content-Security-Policy with no
inline script or style, and Swagger UI (/docs) a policy of its own that it works under."""
import pytest

from tests.helpers import ApiActions

POLICY_PARTS = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                "frame-ancestors 'none'", "base-uri 'self'", "form-action 'self'"]


def directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/login", "/signup", "/healthz", "/api/v1/openapi.json", "/nowhere"])
def test_every_response_has_the_security_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "Content-Security-Policy" in response.headers


def test_pages_get_a_policy_without_inline_script_or_style(client):
    found = directives(client.get("/login"))
    for part in POLICY_PARTS:
        assert part in found.values()
    assert "unsafe-inline" not in client.get("/login").headers["Content-Security-Policy"]
    assert "unsafe-eval" not in client.get("/login").headers["Content-Security-Policy"]


def test_signed_in_pages_and_errors_carry_the_policy_too(client, auth):
    auth.signup()
    assert "script-src 'self'" in client.get("/analyses").headers["Content-Security-Policy"]
    assert "script-src 'self'" in client.get("/analyses/" + "0" * 32).headers["Content-Security-Policy"]


def test_no_page_has_an_inline_script_or_style(client, auth):
    auth.signup()
    for path in ["/", "/analyses", "/account", "/login", "/signup", "/docs"]:
        html = client.get(path).get_data(as_text=True)
        assert " style=" not in html and "<style" not in html, path
        scripts = [s for s in html.split("<script")[1:] if 'type="application/json"' not in s.split(">")[0]]
        assert all(" src=" in s.split(">")[0] for s in scripts), path


def test_swagger_ui_gets_the_pages_policy_with_its_data_icons(client):
    """test_browser's Swagger UI test runs "Try it out" under it with no violation."""
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert client.get("/docs").headers["Content-Security-Policy"] == policy
    assert "data:" in directives(client.get("/docs"))["img-src"]


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_api_answers_carry_the_headers(client):
    api = ApiActions(client).user()
    response = client.get("/api/v1/me", headers=api.headers)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("path", ["/login", "/analyses", "/healthz", "/s/x", "/api/v1/me"])
def test_a_host_that_is_not_a_host_name_is_a_400_not_a_500(client, path):
    response = client.get(path, headers={"Host": "a" * 64 + ".example.com"})  # a label over 63 characters
    assert response.status_code == 400, response.data[:300]
    assert b"Traceback" not in response.data


def test_an_htmx_current_url_that_is_not_a_url_is_ignored(client):
    response = client.get("/analyses", headers={"HX-Request": "true", "HX-Current-URL": "http://[x"})
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")


def test_private_pages_and_json_are_never_stored_and_shared_pages_neither(app, client, auth):
    from tests.helpers import share_link, upload
    from tests.images import encode, sample

    auth.signup()
    upload(client, ("p.png", encode(sample(), "PNG")))
    api = ApiActions(client)
    api.login()
    public_id = api.get("/api/v1/analyses").json["items"][0]["id"]
    link = share_link(client, public_id)
    for url in ("/analyses", f"/analyses/{public_id}", "/account", "/account/keys", "/account/shares",
                f"/analyses/{public_id}/detections.json"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert {"private", "no-store"} <= set(response.headers["Cache-Control"].replace(" ", "").split(",")), url
    for url in ("/api/v1/analyses", f"/api/v1/analyses/{public_id}", "/api/v1/me"):
        response = api.get(url)
        assert {"private", "no-store"} <= set(response.headers["Cache-Control"].replace(" ", "").split(",")), url
    shared = app.test_client().get(link)
    assert shared.status_code == 200 and "no-store" in shared.headers["Cache-Control"]
    static = app.test_client().get("/static/app.css")  # files say their own caching
    assert "no-store" not in static.headers.get("Cache-Control", "")
