"""Failed sign-ins are counted per account, whatever address they come from: past
LOGIN_FAILURE_LIMIT the account's sign-in is refused (even with the right password) with a
"try again in N minutes" message, on the page and in the API. Counters live in the rate
limiter's storage (Redis in the compose stack), so every worker shares them."""
import json

import pytest

from tests.helpers import PASSWORD, csrf_from, redis_url

LIMIT = "5 per 15 minutes"


@pytest.fixture
def config_overrides():
    return {"LOGIN_FAILURE_LIMIT": LIMIT}


def page_login(client, password, address, email="ada@example.com"):
    environ = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=environ).get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base=environ)


def api_login(client, password, address, email="ada@example.com"):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_the_right_password_from_a_new_address_is_refused_after_failures_from_others(app, auth):
    auth.signup()
    auth.logout()
    client = app.test_client()
    for attempt in range(5):
        assert page_login(client, "wrong password", f"10.0.0.{attempt % 2 + 1}").status_code == 401
    response = page_login(app.test_client(), PASSWORD, "192.0.2.7")
    assert response.status_code == 429
    text = response.get_data(as_text=True)
    assert "Too many failed sign-ins" in text and "try again in 15 minutes" in text


def test_the_api_refuses_a_locked_account_with_a_429_problem_and_retry_after(app, auth):
    auth.signup()
    client = app.test_client()
    for attempt in range(5):
        assert api_login(client, "wrong password", f"10.0.1.{attempt}").status_code == 401
    response = api_login(client, PASSWORD, "198.51.100.1")
    assert response.status_code == 429 and response.mimetype == "application/problem+json"
    assert "try again in 15 minutes" in response.get_json()["detail"]
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60


def test_failures_on_the_page_and_in_the_api_count_together(app, auth):
    auth.signup()
    client = app.test_client()
    for _ in range(3):
        page_login(client, "wrong password", "10.0.2.1")
    for _ in range(2):
        api_login(client, "wrong password", "10.0.2.2")
    assert api_login(client, PASSWORD, "10.0.2.3").status_code == 429


def test_failures_below_the_limit_are_forgotten_after_a_successful_sign_in(app, auth):
    auth.signup()
    client = app.test_client()
    for _ in range(4):
        api_login(client, "wrong password", "10.0.3.1")
    assert api_login(client, PASSWORD, "10.0.3.1").status_code == 200
    for _ in range(4):
        api_login(client, "wrong password", "10.0.3.1")
    assert api_login(client, PASSWORD, "10.0.3.1").status_code == 200


def test_another_account_is_not_affected(app, auth):
    auth.signup()
    auth.logout()
    auth.signup(email="grace@example.com")
    client = app.test_client()
    for _ in range(6):
        api_login(client, "wrong password", "10.0.4.1")
    assert api_login(client, PASSWORD, "10.0.4.1", email="grace@example.com").status_code == 200


def test_an_unknown_email_is_limited_alike_so_lockout_does_not_reveal_accounts(app):
    client = app.test_client()
    for _ in range(5):
        assert api_login(client, "wrong password", "10.0.5.1", email="nobody@example.com").status_code == 401
    assert api_login(client, "wrong password", "10.0.5.1", email="nobody@example.com").status_code == 429


def test_the_email_is_counted_as_it_is_stored_so_case_and_spaces_do_not_reset_it(app, auth):
    auth.signup()
    client = app.test_client()
    for attempt, email in enumerate(["ada@example.com", "ADA@example.com", " Ada@Example.com ", "ada@EXAMPLE.com",
                                     "ada@example.COM"]):
        api_login(client, "wrong password", f"10.0.6.{attempt}", email=email)
    assert api_login(client, PASSWORD, "10.0.6.9").status_code == 429


def test_wrong_current_passwords_on_the_account_page_count_too(app, auth, client):
    auth.signup()
    for _ in range(5):
        token = csrf_from(client.get("/account").get_data(as_text=True))
        client.post("/account/password", data={"current": "wrong password", "password": "another long one",
                                               "confirm": "another long one", "csrf_token": token})
    token = csrf_from(client.get("/account").get_data(as_text=True))
    response = client.post("/account/password", data={"current": PASSWORD, "password": "another long one",
                                                      "confirm": "another long one", "csrf_token": token})
    assert response.status_code == 429 and "Too many failed sign-ins" in response.get_data(as_text=True)


def test_the_counter_is_kept_in_redis_when_the_rate_limiter_uses_it(make_app, auth):
    from tests.helpers import fresh_redis

    url = redis_url(11)
    fresh_redis(url)
    first = make_app(RATELIMIT_STORAGE_URI=url, LOGIN_FAILURE_LIMIT=LIMIT)
    first.test_client().post("/api/v1/auth/signup", json={"email": "ada@example.com", "password": PASSWORD})
    for _ in range(5):
        api_login(first.test_client(), "wrong password", "10.0.7.1")
    second = make_app(create_schema=False, RATELIMIT_STORAGE_URI=url, LOGIN_FAILURE_LIMIT=LIMIT)
    assert api_login(second.test_client(), PASSWORD, "10.0.7.2").status_code == 429
    assert json.loads(api_login(second.test_client(), PASSWORD, "10.0.7.2").data)["status"] == 429


def test_a_browser_that_signed_in_before_still_signs_in_while_others_lock_the_account(app, auth, client):
    """The device cookie (OWASP): failures from elsewhere cannot lock the owner out of a browser
    they have used, nor keep an intruder's session safe from "log out of all devices"."""
    auth.signup()  # this browser gets a device cookie
    auth.logout()
    for attempt in range(6):
        api_login(app.test_client(), "wrong password", f"10.0.8.{attempt}")
    assert page_login(app.test_client(), PASSWORD, "10.0.8.50").status_code == 429  # a new browser
    response = page_login(client, PASSWORD, "10.0.8.51")  # the owner's
    assert response.status_code == 302 and response.location == "/analyses"


def test_a_browsers_own_failures_lock_that_browser(app, auth, client):
    auth.signup()
    auth.logout()
    for _ in range(5):
        assert page_login(client, "wrong password", "10.0.9.1").status_code == 401
    assert page_login(client, PASSWORD, "10.0.9.1").status_code == 429


def test_a_forged_or_foreign_device_cookie_gives_no_way_around_the_lock(app, auth, client):
    auth.signup(email="grace@example.com")  # a device cookie, but for another account
    auth.logout()
    app.test_client().post("/api/v1/auth/signup", json={"email": "ada@example.com", "password": PASSWORD})
    for attempt in range(5):
        api_login(app.test_client(), "wrong password", f"10.0.10.{attempt}")
    assert page_login(client, PASSWORD, "10.0.10.9").status_code == 429
    forged = app.test_client()
    forged.set_cookie("spotter_device", "eyJ1IjoxLCJuIjoiMDAwMCJ9.forged")
    assert page_login(forged, PASSWORD, "10.0.10.8").status_code == 429


def test_attempts_at_once_cannot_slip_past_the_limit(app, auth):
    import threading

    auth.signup()
    statuses = []

    def attempt(i):
        statuses.append(api_login(app.test_client(), "wrong password", f"10.0.11.{i}").status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(401) == 5 and statuses.count(429) == 15
