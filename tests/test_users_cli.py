"""`flask users ...`: the operator's say over accounts, on both databases. A disabled account's
session, API token, API key and share link stop working at once, and its queued work is not run."""
import re
from urllib.parse import urlsplit

import sqlalchemy as sa

from tests import factories
from tests.helpers import ApiActions, AuthActions, csrf_from, share_link, upload
from tests.images import encode, sample
from webapp.extensions import db
from webapp.jobs import pipeline
from webapp.models import Run, RunStatus, User

LINK = re.compile(r"\S*/(reset-password/\S+|signup\?invite=\S+)")


def users(runner, *args, **kwargs):
    return runner.invoke(args=["users", *args], **kwargs)


def link_path(output: str) -> str:
    found = LINK.search(output)
    assert found, output
    parts = urlsplit(found.group(0))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_list_shows_every_account_with_its_photos_and_whether_it_is_disabled(app, runner):
    factories.add_analysis(app, user_email="ada@example.com")
    with app.app_context():
        factories.user("bob@example.com")
    users(runner, "disable", "bob@example.com")
    output = users(runner, "list").output
    ada, bob = [line for line in output.splitlines() if "@" in line]
    assert ada.startswith("ada@example.com") and " 1 photos" in ada and "DISABLED" not in ada
    assert bob.startswith("bob@example.com") and "DISABLED" in bob


def test_create_prints_a_one_time_link_that_sets_the_password(app, runner):
    result = users(runner, "create", "New@Example.com")
    assert result.exit_code == 0 and "new@example.com created" in result.output
    assert "PUBLIC_URL is not set" in result.output  # the path alone, and what to do about it
    client = app.test_client()
    path = link_path(result.output)
    page = client.get(path)
    assert page.status_code == 200
    client.post(path, data={"password": "chosen by new", "confirm": "chosen by new",
                            "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert AuthActions(app.test_client()).login("new@example.com", "chosen by new").status_code == 302
    assert client.get(path).status_code == 410  # once


def test_links_are_whole_with_public_url(make_app):
    app = make_app(PUBLIC_URL="https://photos.example.com")
    result = app.test_cli_runner().invoke(args=["users", "create", "ada@example.com"])
    assert "https://photos.example.com/reset-password/" in result.output
    assert "PUBLIC_URL is not set" not in result.output


def test_create_refuses_a_taken_email_and_a_non_email(app, runner):
    with app.app_context():
        factories.user("ada@example.com")
    taken = users(runner, "create", "ADA@example.com")
    assert taken.exit_code == 1 and "has an account already" in taken.output
    bad = users(runner, "create", "not an email")
    assert bad.exit_code == 1 and "is not an email address" in bad.output


def test_reset_password_prints_a_link_and_the_old_password_works_until_it_is_used(app, runner):
    with app.app_context():
        factories.user("ada@example.com")
    result = users(runner, "reset-password", "ada@example.com")
    assert result.exit_code == 0
    assert AuthActions(app.test_client()).login().status_code == 302
    client = app.test_client()
    path = link_path(result.output)
    page = client.get(path)
    client.post(path, data={"password": "operator gave me", "confirm": "operator gave me",
                            "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert AuthActions(app.test_client()).login().status_code == 401
    assert AuthActions(app.test_client()).login(password="operator gave me").status_code == 302


def test_commands_on_an_unknown_email_say_so(runner):
    for command in ("reset-password", "disable", "enable", "delete"):
        result = users(runner, command, "ghost@example.com")
        assert result.exit_code == 1 and "No account uses ghost@example.com" in result.output, command


def test_disabling_stops_the_session_token_key_and_share_link_at_once(app, client, auth):
    auth.signup()
    upload(client, ("cat.png", encode(sample(64, 48), "PNG")))
    with app.app_context():
        public_id = db.session.scalar(sa.select(Run.public_id))
    link = share_link(client, public_id)
    script = ApiActions(app.test_client())
    script.login()
    key = script.post("/api/v1/keys", json={"name": "cam"}).get_json()["key"]
    stranger = app.test_client()
    assert stranger.get(link).status_code == 200
    assert app.test_client().get("/api/v1/me", headers={"X-API-Key": key}).status_code == 200

    assert users(app.test_cli_runner(), "disable", "ada@example.com").exit_code == 0
    assert client.get("/analyses").status_code == 302
    assert script.get("/api/v1/me").status_code == 401
    assert script.refresh().status_code == 401
    assert app.test_client().get("/api/v1/me", headers={"X-API-Key": key}).status_code == 401
    assert stranger.get(link).status_code == 410
    login = AuthActions(app.test_client()).login()
    assert login.status_code == 403 and "disabled" in login.get_data(as_text=True)
    api_login = ApiActions(app.test_client()).login()
    assert api_login.status_code == 403 and "disabled" in api_login.get_json()["detail"]

    assert users(app.test_cli_runner(), "enable", "ada@example.com").exit_code == 0
    assert AuthActions(app.test_client()).login().status_code == 302
    assert app.test_client().get("/api/v1/me", headers={"X-API-Key": key}).status_code == 200
    assert stranger.get(link).status_code == 200


def test_a_disabled_accounts_queued_work_is_not_run(app, runner):
    queued = factories.add_analysis(app, status=RunStatus.PENDING)
    users(runner, "disable", "ada@example.com")
    with app.app_context():
        pipeline.run_one(queued.id)
        run = db.session.get(Run, queued.id)
        assert run.status == RunStatus.FAILED and "disabled" in run.error


def test_a_disabled_account_cannot_ask_for_a_reset_link_nor_use_one(make_app, mailbox):
    app = make_app(**mailbox.settings())
    runner = app.test_cli_runner()
    with app.app_context():
        factories.user("ada@example.com")
    path = link_path(runner.invoke(args=["users", "reset-password", "ada@example.com"]).output)
    runner.invoke(args=["users", "disable", "ada@example.com"])
    page = app.test_client().get(urlsplit(path).path)
    assert page.status_code == 410 and "disabled" in page.get_data(as_text=True)
    client = app.test_client()
    form = client.get("/forgot-password").get_data(as_text=True)
    client.post("/forgot-password", data={"email": "ada@example.com", "csrf_token": csrf_from(form)})
    client.post("/forgot-password", data={"email": "bob@example.com", "csrf_token": csrf_from(form)})
    with app.app_context():
        factories.user("carol@example.com")
    client.post("/forgot-password", data={"email": "carol@example.com", "csrf_token": csrf_from(form)})
    mailbox.wait_for("carol@example.com")
    assert [m["To"] for m in mailbox.messages] == ["carol@example.com"]


def test_delete_asks_to_confirm_unless_yes(app, runner):
    factories.add_analysis(app, user_email="ada@example.com")
    refused = users(runner, "delete", "ada@example.com", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    confirmed = users(runner, "delete", "ada@example.com", input="y\n")
    assert confirmed.exit_code == 0 and "is deleted" in confirmed.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_delete_with_yes_does_not_ask(app, runner):
    with app.app_context():
        factories.user("ada@example.com")
    result = users(runner, "delete", "--yes", "ada@example.com")
    assert result.exit_code == 0 and "?" not in result.output


def test_the_users_commands_have_help(runner):
    output = users(runner, "--help").output
    for command in ("list", "create", "reset-password", "invite", "disable", "enable", "delete"):
        assert command in output


def test_disabling_ends_the_accounts_links_for_good(app, runner):
    with app.app_context():
        factories.user("ada@example.com")
    path = link_path(users(runner, "reset-password", "ada@example.com").output)
    users(runner, "disable", "ada@example.com")
    refused = users(runner, "reset-password", "ada@example.com")
    assert refused.exit_code == 1 and "is disabled" in refused.output
    users(runner, "enable", "ada@example.com")
    assert app.test_client().get(path).status_code == 410  # not brought back by enabling
    fresh = link_path(users(runner, "reset-password", "ada@example.com").output)
    assert app.test_client().get(fresh).status_code == 200


def test_deleting_an_account_deletes_its_invitation_even_after_an_address_change(make_app):
    from webapp.auth import accounts
    from webapp.models import Invite

    app = make_app(SIGNUP="invite")
    runner = app.test_cli_runner()
    output = users(runner, "invite", "guest@example.com").output
    client = app.test_client()
    path = link_path(output)
    page = client.get(path).get_data(as_text=True)
    token = path.split("invite=", 1)[1]
    client.post("/signup", data={"email": "guest@example.com", "password": "guest password!",
                                 "confirm": "guest password!", "invite": token, "csrf_token": csrf_from(page)})
    with app.app_context():
        accounts.change_email(accounts.find_user("guest@example.com"), "other@example.com")
    users(runner, "delete", "--yes", "other@example.com")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Invite)) == 0
