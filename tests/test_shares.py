"""Share links: a signed, expiring, revocable read-only page of one result, for anyone with it."""
import re
import time
import types

import pytest
import sqlalchemy as sa

from tests.helpers import analyses, csrf_from, upload
from tests.images import encode, sample
from tests.factories import add_boxes
from webapp.extensions import db
from webapp.models import ShareLink

HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")


@pytest.fixture
def result(client, auth, app):
    """A signed-in owner with one finished photo (with boxes) and one other photo."""
    auth.signup("owner@example.com")
    upload(client, ("private-name.png", encode(sample(320, 240), "PNG")))
    upload(client, ("other.png", encode(sample(321, 240), "PNG")))
    first, other = analyses(app)
    add_boxes(app, first.public_id, [("person", 0, 0.9, (10, 10, 120, 200)), ("tie", 27, 0.4, (40, 60, 60, 120))])
    return first, other


def share(client, public_id: str, expires: str = "7d"):
    token = csrf_from(client.get(f"/analyses/{public_id}").get_data(as_text=True))
    return client.post(f"/analyses/{public_id}/share", data={"csrf_token": token, "expires": expires})


def link_of(client, app) -> str:
    """The path of the newest link, as the Shared links page shows it."""
    page = client.get("/account/shares").get_data(as_text=True)
    return re.search(r'value="http://localhost(/s/[^"]+)"', page).group(1)


def test_a_link_shows_the_result_to_someone_signed_out(app, client, auth, result):
    assert share(client, result[0].public_id).status_code == 302
    path = link_of(client, app)
    auth.logout()
    anonymous = app.test_client()
    response = anonymous.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Shared photo" in page and "tie" in page and 'id="conf"' in page  # boxes, slider, table
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"] and '<meta name="robots" content="noindex' in page
    for src in re.findall(r'(?:src|data-src)="(/s/[^"]+)"', page):
        image = anonymous.get(src)
        assert image.status_code == 200 and image.mimetype.startswith("image/")
        assert image.headers["Referrer-Policy"] == "no-referrer"
    assert anonymous.get(path + "/image/annotated?conf=0.5&classes=person").status_code == 200
    assert "Set-Cookie" not in response.headers  # no session made for a visitor


def test_the_shared_page_shows_nothing_else_of_the_account(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    auth.logout()
    page = app.test_client().get(path).get_data(as_text=True)
    assert "owner@example.com" not in page and "private-name" not in page and "other.png" not in page
    assert not HEX_ID.findall(page)  # no public id, share id or any other id
    with app.app_context():
        link = db.session.scalar(sa.select(ShareLink))
        numbers = {str(link.id), str(link.run_id), str(link.user_id)}
    urls = re.findall(r'(?:href|src|action|data-src)="([^"]+)"', page)
    assert all(url.startswith(("/s/", "/static/", "#")) or url == "/" for url in urls), urls
    assert not any(re.search(rf"/{n}(?:\b|/)", url) for url in urls for n in numbers)


def test_the_shared_page_says_neither_when_the_link_was_made_nor_how_the_photo_was_analysed(app, client, auth,
                                                                                            result):
    """An expiry is the link's creation plus a lifetime from a short list: it would date the
    photo's sharing (as Last-Modified would, which shared images never carry). The model's file
    name and the inference time are the owner's setup."""
    share(client, result[0].public_id, expires="1d")
    path = link_of(client, app)
    auth.logout()
    page = app.test_client().get(path).get_data(as_text=True)
    with app.app_context():
        model = db.session.scalar(sa.select(ShareLink)).run.model_name
    assert "<time" not in page and "expires" not in page
    assert model.rsplit("/", 1)[-1] not in page and "inference" not in page.lower()


def test_a_tampered_link_is_a_404(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    auth.logout()
    anonymous = app.test_client()
    for bad in (path[:-2] + ("AA" if not path.endswith("AA") else "BB"), "/s/nonsense", "/s/" + "x" * 400):
        response = anonymous.get(bad)
        assert response.status_code == 404
        assert "does not exist" in response.get_data(as_text=True)
    assert anonymous.get(path[:-2] + "AA/image/original").status_code in (404,)


def test_a_link_signed_with_another_secret_is_a_404(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    app.config["SECRET_KEY"] = "rotated"
    assert app.test_client().get(path).status_code == 404


def test_an_expired_link_is_a_friendly_410(app, client, auth, result, monkeypatch):
    share(client, result[0].public_id, expires="1d")
    path = link_of(client, app)
    anonymous = app.test_client()
    assert anonymous.get(path).status_code == 200
    later = time.time() + 25 * 3600
    monkeypatch.setattr("itsdangerous.timed.time", types.SimpleNamespace(time=lambda: later))
    response = anonymous.get(path)
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert anonymous.get(path + "/image/original").status_code == 410


def test_a_link_that_never_expires_still_works_much_later(app, client, auth, result, monkeypatch):
    share(client, result[0].public_id, expires="never")
    path = link_of(client, app)
    later = time.time() + 3 * 365 * 24 * 3600
    monkeypatch.setattr("itsdangerous.timed.time", types.SimpleNamespace(time=lambda: later))
    assert app.test_client().get(path).status_code == 200


def test_a_revoked_link_is_a_410_at_once(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    page = client.get("/account/shares").get_data(as_text=True)
    revoke = re.search(r'action="(/account/shares/[0-9a-f]+/revoke)"', page).group(1)
    assert client.post(revoke, data={"csrf_token": csrf_from(page)}).status_code == 302
    response = app.test_client().get(path)
    assert response.status_code == 410 and "stopped sharing" in response.get_data(as_text=True)
    assert app.test_client().get(path + "/image/annotated").status_code == 410


def test_nobody_else_can_revoke_a_link(app, client, auth, result):
    share(client, result[0].public_id)
    page = client.get("/account/shares").get_data(as_text=True)
    revoke = re.search(r'action="(/account/shares/[0-9a-f]+/revoke)"', page).group(1)
    auth.logout()
    auth.signup("eve@example.com")
    token = csrf_from(client.get("/account/shares").get_data(as_text=True))
    assert client.post(revoke, data={"csrf_token": token}).status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(ShareLink.revoked_at)) is None


def test_nobody_else_can_share_someone_elses_photo(app, client, auth, result):
    auth.logout()
    auth.signup("eve@example.com")
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.post(f"/analyses/{result[0].public_id}/share", data={"csrf_token": token, "expires": "7d"})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShareLink)) == 0


def test_an_unknown_lifetime_is_refused_with_a_message(app, client, auth, result):
    assert share(client, result[0].public_id, expires="forever-and-ever").status_code == 302
    assert "Choose how long the link lasts" in client.get(f"/analyses/{result[0].public_id}").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShareLink)) == 0


def test_a_photo_in_the_trash_stops_its_links_until_it_is_restored(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    client.post(f"/analyses/{result[0].public_id}/delete", data={"csrf_token": token})
    assert app.test_client().get(path).status_code == 404
    client.post("/trash", data={"csrf_token": token, "action": "restore", "ids": result[0].photo.public_id})
    assert app.test_client().get(path).status_code == 200


def test_deleting_the_photo_for_good_kills_its_links(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    client.post(f"/analyses/{result[0].public_id}/delete", data={"csrf_token": token})
    client.post("/trash", data={"csrf_token": token, "action": "empty"})
    assert app.test_client().get(path).status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShareLink)) == 0


def test_the_same_link_is_shown_again_on_the_shared_links_page(app, client, auth, result):
    share(client, result[0].public_id)
    assert link_of(client, app) == link_of(client, app)


def test_shared_images_never_carry_the_owners_file_name(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    anonymous = app.test_client()
    shown = anonymous.get(path + "/image/original")
    assert shown.headers["Content-Disposition"] == "inline; filename=shared-original.png"
    saved = anonymous.get(path + "/image/annotated?conf=0.3&download=1")
    assert saved.headers["Content-Disposition"] == "attachment; filename=shared-annotated.jpg"


def test_error_pages_of_links_are_not_indexed_either(app, client, auth, result):
    response = app.test_client().get("/s/not-a-token")
    assert response.status_code == 404
    assert response.headers["Referrer-Policy"] == "no-referrer" and "noindex" in response.headers["X-Robots-Tag"]


def test_a_link_stamped_by_a_clock_a_little_ahead_still_works(app, client, auth, result):
    share(client, result[0].public_id, expires="1d")
    with app.app_context():
        link = db.session.scalar(sa.select(ShareLink))
        link.created_at = link.created_at + __import__("datetime").timedelta(minutes=5)
        db.session.commit()
    path = link_of(client, app)
    assert app.test_client().get(path).status_code == 200


def test_a_head_request_is_not_counted_as_a_view(app, client, auth, result):
    share(client, result[0].public_id)
    path = link_of(client, app)
    app.test_client().head(path)
    app.test_client().get(path)
    with app.app_context():
        assert db.session.scalar(sa.select(ShareLink.views)) == 1


def test_expired_links_do_not_count_towards_the_limit(app, client, auth, result, monkeypatch):
    from datetime import timedelta

    from webapp.shares import links as shares
    from webapp.models import utcnow

    monkeypatch.setattr(shares, "MAX_LINKS_PER_USER", 1)
    share(client, result[0].public_id, expires="1d")
    share(client, result[0].public_id, expires="1d")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShareLink)) == 1
    monkeypatch.setattr(shares, "utcnow", lambda: utcnow() + timedelta(days=2))
    share(client, result[0].public_id, expires="1d")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShareLink)) == 2
