"""The rough edges a new user hit (issue 24), each fixed: Enter in the label search picks the first
matching label; a new API key survives a reload without making a second one; a share link is made
and shown on the photo's page with a copy button; ended links fold away."""
import re

import pytest
import sqlalchemy as sa

from tests.factories import add_analysis
from tests.helpers import analyses, csrf_from, upload
from tests.images import encode, sample
from webapp.extensions import db
from webapp.models import ApiKey, ShareLink


def library(app) -> None:
    add_analysis(app, labels=[("zebra", 0.9)])
    for _ in range(3):
        add_analysis(app, labels=[("bazebo", 0.9), ("cat", 0.9)])


def test_enter_in_the_label_search_picks_the_first_matching_label(app, client, auth):
    auth.signup()
    library(app)
    response = client.get("/analyses?find=ZEB")
    assert response.status_code == 302 and response.headers["Location"] == "/analyses?label=zebra"  # a prefix first


def test_the_label_search_keeps_the_labels_and_dates_already_chosen(app, client, auth):
    auth.signup()
    library(app)
    response = client.get("/analyses?label=cat&from=2020-01-01&find=baz")
    assert response.headers["Location"] == "/analyses?label=cat&label=bazebo&from=2020-01-01"


def test_the_label_search_matching_nothing_says_so_and_filters_nothing(app, client, auth):
    auth.signup()
    library(app)
    response = client.get("/analyses?find=qqq")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "No label matches “qqq”." in page
    assert len(re.findall(r'id="analysis-[0-9a-f]{32}"', page)) == 4


@pytest.mark.parametrize("typed", ["\x00", "%00z", "\x01\x02", "_"])
def test_the_label_search_with_control_characters_or_a_wildcard_matches_nothing(app, client, auth, typed):
    auth.signup()
    library(app)
    response = client.get("/analyses", query_string={"find": typed})
    assert response.status_code == 200 and "No label matches" in response.get_data(as_text=True)


def test_a_new_key_is_shown_after_a_redirect_so_a_reload_makes_no_second_key(app, client, auth):
    auth.signup()
    token = csrf_from(client.get("/account/keys").get_data(as_text=True))
    created = client.post("/account/keys", data={"name": "garage camera", "scope": "full", "csrf_token": token})
    assert created.status_code == 303 and created.headers["Location"] == "/account/keys"
    shown = client.get("/account/keys")
    page = shown.get_data(as_text=True)
    assert 'value="spt_' in page and 'data-copy="new-key"' in page and "no-store" in shown.headers["Cache-Control"]
    again = client.get("/account/keys").get_data(as_text=True)  # the reload: the list, not a second key
    assert 'value="spt_' not in again and "garage camera" in again
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey)) == 1


def test_sharing_from_the_photo_page_shows_the_link_there_with_a_copy_button(app, client, auth):
    auth.signup()
    run = add_analysis(app, labels=[("cat", 0.9)])
    page = client.get(f"/analyses/{run.public_id}").get_data(as_text=True)
    made = client.post(f"/analyses/{run.public_id}/share", data={"csrf_token": csrf_from(page), "expires": "7d"})
    assert made.headers["Location"] == f"/analyses/{run.public_id}"
    detail = client.get(made.headers["Location"]).get_data(as_text=True)
    url = re.search(r'<input[^>]*id="copy-1"[^>]*value="([^"]+)"', detail).group(1)
    assert "/s/" in url and 'data-copy="copy-1"' in detail
    assert client.get(url.replace("http://localhost", "")).status_code == 200


def test_ended_links_fold_away_under_their_own_heading(app, client, auth):
    auth.signup()
    run = add_analysis(app, labels=[("cat", 0.9)])
    token = csrf_from(client.get(f"/analyses/{run.public_id}").get_data(as_text=True))
    for _ in range(2):
        client.post(f"/analyses/{run.public_id}/share", data={"csrf_token": token, "expires": "7d"})
    with app.app_context():
        first = db.session.scalar(sa.select(ShareLink.share_id).order_by(ShareLink.id))
    client.post(f"/account/shares/{first}/revoke", data={"csrf_token": token})
    page = client.get("/account/shares").get_data(as_text=True)
    live, ended = page.split('<details class="ended-links"')
    assert f'id="link-{first}"' in ended and f'id="link-{first}"' not in live
    assert "Ended links (1)" in ended and "copy" in live


# ---- Run again: a mistyped class ----

def run_again(client, public_id: str, **fields):
    token = csrf_from(client.get(f"/analyses/{public_id}").get_data(as_text=True))
    return client.post(f"/analyses/{public_id}/runs", data={"csrf_token": token, **fields})


@pytest.mark.real_model  # the COCO names
def test_a_mistyped_class_is_refused_on_the_form_with_what_was_typed_kept(app, client, auth):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    response = run_again(client, first.public_id, conf="0.4", classes="person, zebraa")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="person, zebraa"' in page and 'value="0.4"' in page and "<details class=\"rerun\" open" in page
    assert "No class named zebraa: did you mean zebra?" in page
    error = page.split('id="rerun-error"', 1)[1].split("</p>", 1)[0]
    assert "hair drier" not in error and len(error) < 200  # not the 80 names
    assert len(analyses(app)) == 1


@pytest.mark.real_model  # the COCO names
def test_the_class_field_offers_the_models_classes(app, client, auth):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    page = client.get(f"/analyses/{first.public_id}").get_data(as_text=True)
    classes = re.search(r'<datalist id="rerun-classes"[^>]*data-classes="([^"]+)"', page).group(1)
    assert "person" in classes and "toothbrush" in classes


@pytest.mark.real_model  # the COCO names
def test_the_api_names_close_matches_for_a_mistyped_class(app, api):
    api.user()
    response = api.upload(("p.png", encode(sample(), "PNG")), classes="persn")
    assert response.status_code == 422
    assert "did you mean person?" in response.get_data(as_text=True)


def session_of(client, app) -> dict:
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    return app.session_interface.get_signing_serializer(app).loads(cookie.value) if cookie else {}


def test_a_new_keys_secret_is_never_readable_in_the_session_cookie(app, client, auth):
    auth.signup()
    token = csrf_from(client.get("/account/keys").get_data(as_text=True))
    client.post("/account/keys", data={"name": "cam", "scope": "full", "csrf_token": token})
    waiting = session_of(client, app)
    assert "spt_" not in str(waiting) and waiting["new_api_key"]["sealed"]


def test_logging_out_drops_a_new_keys_secret_not_yet_shown(app, client, auth):
    auth.signup()
    token = csrf_from(client.get("/account/keys").get_data(as_text=True))
    client.post("/account/keys", data={"name": "cam", "scope": "full", "csrf_token": token})
    client.post("/logout", data={"csrf_token": token})
    assert "new_api_key" not in session_of(client, app)


def test_a_sealed_secret_opens_for_a_few_minutes_only(app, monkeypatch):
    from webapp.auth import keys

    with app.test_request_context():
        sealed = keys.seal("spt_secret")
        assert keys.unseal(sealed) == "spt_secret"
        assert keys.unseal(sealed[:-2] + "xx") is None and keys.unseal(None) is None
        monkeypatch.setattr(keys, "SEALED_SECONDS", -1)
        assert keys.unseal(sealed) is None
