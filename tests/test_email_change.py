"""Changing one's email: confirmed by a link mailed to the new address (the current password
asked first); the old address is told; the link works once."""
from urllib.parse import urlsplit

import pytest

from tests.helpers import PASSWORD, AuthActions, csrf_from


@pytest.fixture
def mail_app(make_app, mailbox):
    return make_app(**mailbox.settings())


def ask_change(client, new, password=PASSWORD):
    page = client.get("/account").get_data(as_text=True)
    return client.post("/account/email", data={"new_email": new, "email_password": password,
                                               "csrf_token": csrf_from(page)})


def confirm(client, path):
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})


def test_a_new_address_is_used_once_its_link_is_opened(mail_app, mailbox):
    client = mail_app.test_client()
    AuthActions(client).signup()
    asked = ask_change(client, "Ada.New@Example.com")
    assert asked.status_code == 303
    link = mailbox.link(mailbox.wait_for("ada.new@example.com"))
    assert link.startswith("https://photos.example.com/account/email/")
    notice = mailbox.wait_for("ada@example.com")
    assert "ada.new@example.com" in notice.get_content() and "https://" not in notice.get_content()
    assert "ada@example.com" in client.get("/account").get_data(as_text=True)  # not before the link
    done = confirm(client, urlsplit(link).path)
    assert done.status_code == 303
    assert "ada.new@example.com" in client.get("/account").get_data(as_text=True)
    assert AuthActions(mail_app.test_client()).login("ada.new@example.com").status_code == 302
    assert AuthActions(mail_app.test_client()).login("ada@example.com").status_code == 401
    again = mail_app.test_client().get(urlsplit(link).path)
    assert again.status_code == 410


def test_a_wrong_password_changes_nothing_and_mails_nothing(mail_app, mailbox):
    client = mail_app.test_client()
    AuthActions(client).signup()
    refused = ask_change(client, "other@example.com", password="not it at all")
    assert refused.status_code == 422 and "not right" in refused.get_data(as_text=True)
    assert mailbox.messages == []


def test_an_address_another_account_uses_gets_no_link_and_the_same_answer(mail_app, mailbox):
    AuthActions(mail_app.test_client()).signup("bob@example.com")
    client = mail_app.test_client()
    AuthActions(client).signup()
    taken = ask_change(client, "bob@example.com")
    free = ask_change(client, "free@example.com")
    assert taken.status_code == free.status_code == 303
    mailbox.wait_for("free@example.com")
    assert mailbox.to("bob@example.com") == []


def test_without_mail_the_account_page_says_to_ask_the_operator(client, auth):
    auth.signup()
    page = client.get("/account").get_data(as_text=True)
    assert "cannot be changed here: ask its operator" in page
    refused = client.post("/account/email", data={"new_email": "x@example.com", "email_password": PASSWORD,
                                                  "csrf_token": csrf_from(page)})
    assert refused.status_code == 422 and "Mail is not set up" in refused.get_data(as_text=True)


def test_an_email_change_link_stays_dead_when_the_address_changes_back(mail_app, mailbox):
    from webapp.auth import accounts

    client = mail_app.test_client()
    AuthActions(client).signup()
    ask_change(client, "fresh@example.com")
    ask_change(client, "other@example.com")
    fresh = urlsplit(mailbox.link(mailbox.wait_for("fresh@example.com"))).path
    other = urlsplit(mailbox.link(mailbox.wait_for("other@example.com"))).path
    confirm(client, fresh)
    with mail_app.app_context():
        accounts.change_email(accounts.find_user("fresh@example.com"), "ada@example.com")
    assert mail_app.test_client().get(other).status_code == 410


def test_email_changes_are_limited_per_account(make_app, mailbox):
    app = make_app(**mailbox.settings(RESET_RATE_LIMIT="2 per hour"))
    client = app.test_client()
    AuthActions(client).signup()
    assert ask_change(client, "one@example.com").status_code == 303
    assert ask_change(client, "two@example.com").status_code == 303
    third = ask_change(client, "three@example.com")
    assert third.status_code == 429 and "Too many address changes" in third.get_data(as_text=True)
