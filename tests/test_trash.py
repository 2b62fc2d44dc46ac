"""The Trash: a delete moves a photo there, gone from every listing and read; it comes back with
Undo or a restore (its labels counted again), is deleted for good on request, and is purged by
the running system TRASH_DAYS later. The API says the same (DELETE, ?permanent=true, /trash)."""
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.factories import add_boxes
from tests.helpers import ApiActions, AuthActions, analyses, csrf_from, kept, stored_files, trashed
from tests.images import encode, sample
from tests.test_batching import Gate, photos_png
from webapp.analyses import trash
from webapp.extensions import db
from webapp.jobs.scheduling import get_runner
from webapp.library import counts
from webapp.models import Photo, RunStatus, User


def uploaded(api, name: str, width: int = 160, labels=()) -> dict:
    response = api.upload((name, encode(sample(width, 120), "PNG")), query="?wait=true")
    assert response.status_code == 201, response.json
    body = response.json["analyses"][0]
    if labels:
        add_boxes(api.client.application, body["id"], [(label, 0, 0.9, (1, 1, 20, 20)) for label in labels])
    return body


@pytest.fixture
def two(api):
    """A signed-in API user with two photos: a cat (to be deleted) and a dog."""
    api.user()
    return uploaded(api, "cat.png", 160, ["cat"]), uploaded(api, "dog.png", 161, ["dog"])


def assert_counts_true(app):
    with app.app_context():
        assert counts.check_counts() == []


def move_back(app, days: int) -> None:
    """Every photo in the Trash was deleted `days` days ago."""
    with app.app_context():
        for photo in db.session.scalars(sa.select(Photo).where(Photo.trashed_at.is_not(None))):
            photo.trashed_at -= timedelta(days=days)
        db.session.commit()


def delete_on_the_page(client, *photos) -> str:
    """Log in and delete these photos from the gallery, as its page does; the page's CSRF token."""
    AuthActions(client).login()
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    for photo in photos:
        client.post(f"/analyses/{photo['id']}/delete", data={"csrf_token": token})
    return token


def test_api_delete_moves_the_photo_to_the_trash_and_answers_204(app, api, two):
    cat, dog = two
    files = stored_files(app)
    assert api.delete(f"/api/v1/analyses/{cat['id']}").status_code == 204
    assert [r.public_id for r in trashed(app)] == [cat["id"]] and [r.public_id for r in kept(app)] == [dog["id"]]
    assert stored_files(app) == files  # nothing deleted yet: it can come back as it was
    assert_counts_true(app)


def test_a_photo_in_the_trash_is_gone_from_every_listing_and_read(app, api, two):
    cat, dog = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    listed = api.get("/api/v1/analyses").json
    assert [item["id"] for item in listed["items"]] == [dog["id"]] and listed["total"] == 1
    assert api.get("/api/v1/analyses?label=cat").json["items"] == []
    for path in (f"/api/v1/analyses/{cat['id']}", f"/api/v1/analyses/{cat['id']}/image",
                 f"/api/v1/analyses/{cat['id']}/export", f"/api/v1/analyses/{cat['id']}/runs"):
        assert api.get(path).status_code == 404, path
    assert api.delete(f"/api/v1/analyses/{cat['id']}").status_code == 404  # not twice
    exported = api.get("/api/v1/analyses/export?format=json").json
    assert [image["filename"] for image in exported["images"]] == ["dog.png"]
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        assert user.photos == 2 and user.trashed == 1  # the quota still counts it


def test_the_gallery_and_the_photo_pages_no_longer_find_it(app, client, two):
    cat, dog = two
    AuthActions(client).login()
    page = client.get("/analyses").get_data(as_text=True)
    token = csrf_from(page)
    client.post(f"/analyses/{cat['id']}/delete", data={"csrf_token": token})
    assert "Moved cat.png to the Trash." in client.get("/analyses").get_data(as_text=True)
    gallery = client.get("/analyses").get_data(as_text=True)
    assert "dog.png" in gallery and "cat.png" not in gallery
    assert client.get(f"/analyses/{cat['id']}").status_code == 404
    assert client.get(f"/analyses/{cat['id']}/image/thumbnail").status_code == 404
    assert client.get(f"/analyses/sha256/{cat['sha256']}").status_code == 404  # not offered as a duplicate
    assert "Trash <span class=\"count\">(1)</span></a>" in gallery


def test_restore_brings_it_back_with_its_labels_counted(app, api, two):
    cat, _ = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    restored = api.post(f"/api/v1/trash/{cat['id']}/restore")
    assert restored.status_code == 200 and restored.json["id"] == cat["id"] and restored.json["shown"] is True
    assert [item["id"] for item in api.get("/api/v1/analyses?label=cat").json["items"]] == [cat["id"]]
    assert api.get(f"/api/v1/analyses/{cat['id']}").status_code == 200
    assert api.get("/api/v1/trash").json == {"items": [], "total": 0}
    assert_counts_true(app)


def test_restoring_through_the_api_answers_the_run_the_photo_shows(app, api, two):
    cat, _ = two
    second = api.client.post(f"/api/v1/analyses/{cat['id']}/runs?wait=true", data={"conf": "0.5"},
                             headers=api.headers).json["analyses"][0]
    api.delete(f"/api/v1/analyses/{second['id']}")
    restored = api.post(f"/api/v1/trash/{second['id']}/restore").json
    assert restored["id"] == second["id"] and restored["shown"] is True and restored["model"]["conf"] == 0.5


def test_deleting_for_good_from_the_trash_page_asks_first(app, client, two):
    cat, _ = two
    delete_on_the_page(client, cat)
    page = client.get("/trash").get_data(as_text=True)
    button = page.split('id="delete-for-good"', 1)[1].split(">", 1)[0]
    assert 'hx-confirm="Delete the selected photos for good? This cannot be undone."' in button


def test_a_gallery_whose_photos_are_all_in_the_trash_says_so(app, client, two):
    delete_on_the_page(client, *two)
    client.get("/analyses")
    assert "Your 2 photos are in the" in client.get("/analyses").get_data(as_text=True)


def test_the_api_lists_the_trash_with_when_each_goes_for_good(app, api, two):
    cat, _ = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    listed = api.get("/api/v1/trash").json
    assert listed["total"] == 1
    [item] = listed["items"]
    assert item["id"] == cat["photo"]["id"] and item["filename"] == "cat.png" and item["runs"] == 1
    assert item["sha256"] == cat["sha256"] and item["stored_bytes"] > 0
    assert item["urls"]["restore"] == f"/api/v1/trash/{cat['photo']['id']}/restore"
    assert api.get(item["urls"]["thumbnail"]).mimetype == "image/jpeg"
    with app.app_context():
        photo = db.session.scalar(sa.select(Photo).where(Photo.public_id == cat["photo"]["id"]))
        assert item["purge_at"] == (photo.trashed_at + timedelta(days=30)).isoformat().replace("+00:00", "Z") or \
            item["purge_at"].startswith((photo.trashed_at + timedelta(days=30)).date().isoformat())


def test_someone_elses_trash_is_not_found(app, api, two):
    cat, _ = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    eve = ApiActions(app.test_client()).user("eve@example.com")
    assert eve.get("/api/v1/trash").json["total"] == 0
    for response in (eve.post(f"/api/v1/trash/{cat['id']}/restore"), eve.delete(f"/api/v1/trash/{cat['id']}"),
                     eve.get(f"/api/v1/trash/{cat['id']}/thumbnail")):
        assert response.status_code == 404
    assert len(trashed(app)) == 1


def test_restoring_or_deleting_what_is_not_in_the_trash_is_404(api, two):
    cat, _ = two
    assert api.post(f"/api/v1/trash/{cat['id']}/restore").status_code == 404
    assert api.delete(f"/api/v1/trash/{cat['id']}").status_code == 404
    assert api.post("/api/v1/trash/not-an-id/restore").status_code == 404


def test_deleting_from_the_trash_removes_its_rows_and_files_and_nothing_else(app, api, two):
    cat, dog = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    folder = trashed(app)[0].photo.folder
    assert api.delete(f"/api/v1/trash/{cat['id']}").status_code == 204
    assert [r.public_id for r in analyses(app)] == [dog["id"]]
    assert stored_files(app) and not any(folder in str(p) for p in stored_files(app))
    assert_counts_true(app)


def test_emptying_the_trash_through_the_api_says_how_many(app, api, two):
    for photo in two:
        api.delete(f"/api/v1/analyses/{photo['id']}")
    assert api.delete("/api/v1/trash").json == {"deleted": 2}
    assert analyses(app) == [] and stored_files(app) == []
    assert_counts_true(app)


def test_undo_restores_what_that_delete_moved_and_nothing_else(app, client, two):
    cat, dog = two
    AuthActions(client).login()
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    client.post(f"/analyses/{dog['id']}/delete", data={"csrf_token": token})  # an earlier delete
    client.get("/analyses")
    client.post(f"/analyses/{cat['id']}/delete", data={"csrf_token": token})
    page = client.get("/analyses").get_data(as_text=True)
    assert "Moved cat.png to the Trash." in page
    batch = page.split('name="batch" value="')[1].split('"')[0]
    response = client.post("/trash/undo", data={"csrf_token": token, "batch": batch, "back": "/analyses?label=cat"})
    assert response.headers["Location"] == "/analyses?label=cat"
    assert [r.public_id for r in kept(app)] == [cat["id"]] and [r.public_id for r in trashed(app)] == [dog["id"]]
    assert "Restored 1 photo." in client.get("/analyses").get_data(as_text=True)
    assert_counts_true(app)


@pytest.mark.parametrize("back", ["//evil.example/x", "/\\evil.example", "/\t/evil.example", "https://evil.example/"])
def test_undo_goes_back_only_to_a_page_of_this_site(app, client, two, back):
    cat, _ = two
    token = delete_on_the_page(client, cat)
    batch = client.get("/analyses").get_data(as_text=True).split('name="batch" value="')[1].split('"')[0]
    response = client.post("/trash/undo", data={"csrf_token": token, "batch": batch, "back": back})
    assert response.headers["Location"] == "/analyses"


def test_deleting_from_a_photos_page_goes_on_to_the_next_photo(app, client, two):
    cat, dog = two  # dog is newer: the gallery shows it first, then cat
    AuthActions(client).login()
    token = csrf_from(client.get(f"/analyses/{dog['id']}").get_data(as_text=True))
    response = client.post(f"/analyses/{dog['id']}/delete", data={"csrf_token": token})
    assert response.headers["Location"] == f"/analyses/{cat['id']}"
    assert "Moved dog.png to the Trash." in client.get(response.headers["Location"]).get_data(as_text=True)


def test_the_trash_page_lists_shows_and_restores(app, client, two):
    cat, _ = two
    token = delete_on_the_page(client, cat)
    page = client.get("/trash").get_data(as_text=True)
    photo_id = cat["photo"]["id"]
    assert "cat.png" in page and "1 photo in the Trash" in page and "dog.png" not in page
    assert client.get(f"/trash/{photo_id}/thumbnail").status_code == 200
    response = client.post("/trash", data={"csrf_token": token, "action": "restore", "ids": [photo_id]})
    assert response.status_code == 302 and len(kept(app)) == 2
    assert "The Trash is empty." in client.get("/trash").get_data(as_text=True)
    assert client.get(f"/trash/{photo_id}/thumbnail").status_code == 404


def test_the_trash_page_refuses_an_unknown_action_or_no_selection(app, client, two):
    AuthActions(client).login()
    token = csrf_from(client.get("/trash").get_data(as_text=True))
    client.post("/trash", data={"csrf_token": token, "action": "explode"})
    assert "Choose what to do" in client.get("/trash").get_data(as_text=True)
    client.post("/trash", data={"csrf_token": token, "action": "restore"})
    assert "Select at least one photo first." in client.get("/trash").get_data(as_text=True)


def test_a_run_finishing_while_its_photo_is_in_the_trash_does_not_bring_it_back(make_app, monkeypatch):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    gate = Gate(monkeypatch, app)
    api = ApiActions(app.test_client()).user()
    [photo] = api.upload(*photos_png(1)).json["analyses"]
    assert gate.entered.wait(60)  # its first run is being detected
    assert api.delete(f"/api/v1/analyses/{photo['id']}").status_code == 204
    gate.open()
    assert get_runner(app).wait(timeout=120)
    [run] = trashed(app)
    assert run.status == RunStatus.DONE and not run.current and kept(app) == []
    assert_counts_true(app)
    assert api.post(f"/api/v1/trash/{photo['id']}/restore").json["status"] == "done"
    assert [r.current for r in kept(app)] == [True]
    assert_counts_true(app)


def test_the_purge_deletes_what_waited_its_days_and_nothing_newer(app, api, two):
    cat, dog = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    move_back(app, 31)
    api.delete(f"/api/v1/analyses/{dog['id']}")
    with app.app_context():
        assert trash.purge_expired(30) == 1
    assert [r.public_id for r in analyses(app)] == [dog["id"]] and len(trashed(app)) == 1
    assert all(trashed(app)[0].photo.folder in str(p) for p in stored_files(app))
    assert_counts_true(app)


def test_the_running_app_purges_the_trash_by_itself(make_app):
    app = make_app(TRASH_PURGE_SECONDS=1)
    api = ApiActions(app.test_client()).user()
    cat = uploaded(api, "cat.png")
    api.delete(f"/api/v1/analyses/{cat['id']}")
    move_back(app, 30)
    deadline = time.monotonic() + 30
    while analyses(app) and time.monotonic() < deadline:
        api.get("/api/v1/trash")  # any request: at most one purge a second, in the background
        time.sleep(0.2)
    assert analyses(app) == [] and stored_files(app) == []
    assert_counts_true(app)


def test_flask_purge_trash_purges_what_is_due(app, api, two, runner):
    cat, _ = two
    api.delete(f"/api/v1/analyses/{cat['id']}")
    move_back(app, 30)
    result = runner.invoke(args=["purge-trash"])
    assert result.exit_code == 0 and "Purged 1 photo kept in the Trash 30 days or more." in result.output
    assert len(analyses(app)) == 1


def test_the_openapi_document_describes_the_trash(client):
    document = client.get("/api/v1/openapi.json").json
    paths = document["paths"]
    assert {"/api/v1/trash", "/api/v1/trash/{public_id}/restore", "/api/v1/trash/{public_id}"} <= set(paths)
    assert set(paths["/api/v1/trash"]) == {"get", "delete"}
    delete = paths["/api/v1/analyses/{public_id}"]["delete"]
    assert [p["name"] for p in delete["parameters"] if p["in"] == "query"] == ["permanent"]
    assert "trash" in [tag["name"] for tag in document["tags"]]


def test_the_upload_queue_offers_to_restore_a_photo_sent_again_from_the_trash(app, client, two):
    cat, _ = two
    token = delete_on_the_page(client, cat)
    question = client.get(f"/analyses/sha256/{cat['sha256']}?name=cat.png", headers={"HX-Request": "true"})
    page = question.get_data(as_text=True)
    assert question.status_code == 200 and "In your Trash (deleted" in page and "Restore it" in page
    response = client.post("/trash", data={"csrf_token": token, "action": "restore", "ids": cat["photo"]["id"],
                                           "back": "/analyses"})
    assert response.headers["Location"] == "/analyses" and len(kept(app)) == 2
    assert client.get(f"/analyses/sha256/{cat['sha256']}?name=cat.png", headers={"HX-Request": "true"}) \
        .get_data(as_text=True).count("Already in your library") == 1
