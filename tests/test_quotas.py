"""Limits per upload and per account: MAX_FILES_PER_UPLOAD files in one request, QUOTA_PHOTOS
photos and QUOTA_BYTES bytes kept per user. A refusal says which limit, and stores nothing."""
import io
import threading

import pytest
import sqlalchemy as sa

from tests.helpers import ApiActions, analyses, csrf_from, stored_files, upload
from tests.images import encode, sample
from webapp.library import counts
from webapp.extensions import db
from webapp.models import User

PHOTO = encode(sample(), "PNG")


def photos(n: int) -> list[tuple[str, bytes]]:
    return [(f"p{i}.png", encode(sample(90 + i, 64), "PNG")) for i in range(n)]


def kept(app, email="ada@example.com") -> tuple[int, int]:
    with app.app_context():
        return tuple(db.session.execute(sa.select(User.photos, User.stored_bytes).where(User.email == email)).one())


class TestFilesPerUpload:
    @pytest.fixture
    def config_overrides(self):
        return {"MAX_FILES_PER_UPLOAD": 3}

    def test_the_api_refuses_more_files_than_the_limit_with_a_413_naming_it(self, app, client):
        api = ApiActions(client).user()
        response = api.upload(*photos(4))
        assert response.status_code == 413 and response.mimetype == "application/problem+json"
        assert "at most 3 files per upload" in response.get_json()["detail"]
        assert "this one had 4" in response.get_json()["detail"]
        assert analyses(app) == [] and stored_files(app) == []

    def test_the_page_refuses_more_files_than_the_limit_and_stores_nothing(self, app, client, auth):
        auth.signup()
        response = upload(client, *photos(4), headers={"HX-Request": "true"})
        assert response.status_code == 413
        assert "at most 3 files per upload" in response.get_data(as_text=True)
        assert analyses(app) == [] and stored_files(app) == []

    def test_the_limit_itself_is_accepted(self, app, client):
        assert ApiActions(client).user().upload(*photos(3)).status_code == 202
        assert len(analyses(app)) == 3


class TestPhotoQuota:
    @pytest.fixture
    def config_overrides(self):
        return {"QUOTA_PHOTOS": 2}

    def test_files_past_the_quota_are_refused_with_a_clear_message_and_nothing_stored(self, app, client):
        response = ApiActions(client).user().upload(*photos(3))
        assert response.status_code == 202
        body = response.get_json()
        assert len(body["analyses"]) == 2
        [refused] = body["rejected"]
        assert "Your library is full: it may hold 2 photos" in refused["reason"]
        assert len(analyses(app)) == 2
        assert len({p.parent for p in stored_files(app)}) == 2
        assert kept(app)[0] == 2

    def test_a_full_library_refuses_the_whole_upload_as_a_422(self, app, client):
        api = ApiActions(client).user()
        api.upload(*photos(2))
        response = api.upload(("more.png", PHOTO))
        assert response.status_code == 422
        assert "Your library is full" in response.get_json()["rejected"][0]["reason"]
        assert len(analyses(app)) == 2

    def test_a_photo_in_the_trash_still_counts_until_it_is_deleted_for_good(self, app, client):
        api = ApiActions(client).user()
        first = api.upload(*photos(2)).get_json()["analyses"][0]
        assert client.delete(f"/api/v1/analyses/{first['id']}", headers=api.headers).status_code == 204
        refused = api.upload(("again.png", PHOTO))
        assert refused.status_code == 422 and "photo" in refused.get_json()["rejected"][0]["reason"]
        assert api.delete(f"/api/v1/trash/{first['id']}").status_code == 204
        assert api.upload(("again.png", PHOTO)).status_code == 202
        assert kept(app)[0] == 2

    def test_deleting_a_photo_for_good_makes_room_again(self, app, client):
        api = ApiActions(client).user()
        first = api.upload(*photos(2)).get_json()["analyses"][0]
        assert api.delete(f"/api/v1/analyses/{first['id']}?permanent=true").status_code == 204
        assert api.upload(("again.png", PHOTO)).status_code == 202
        assert kept(app)[0] == 2

    def test_the_quota_is_per_user(self, app, client):
        ApiActions(client).user().upload(*photos(2))
        other = ApiActions(app.test_client()).user("grace@example.com")
        assert other.upload(("mine.png", PHOTO)).status_code == 202

    def test_the_page_shows_the_refusal_on_the_files_card(self, app, client, auth):
        auth.signup()
        upload(client, *photos(2))
        response = upload(client, ("third.png", PHOTO), headers={"HX-Request": "true"})
        assert response.status_code == 422
        assert "Your library is full" in response.get_data(as_text=True)


class TestByteQuota:
    def test_bytes_are_counted_on_upload_and_given_back_on_delete(self, app, client):
        api = ApiActions(client).user()
        [one] = api.upload(("one.png", PHOTO)).get_json()["analyses"]
        on_disk = sum(p.stat().st_size for p in stored_files(app) if p.stem in ("original", "thumbnail"))
        assert kept(app) == (1, on_disk)
        client.delete(f"/api/v1/analyses/{one['id']}", headers=api.headers)
        assert kept(app) == (1, on_disk)  # in the Trash: still on disk
        client.delete("/api/v1/trash", headers=api.headers)
        assert kept(app) == (0, 0)

    def test_an_upload_past_the_byte_quota_is_refused_and_nothing_is_stored(self, make_app):
        app = make_app(QUOTA_BYTES=1500)  # room for one small photo and its thumbnail (about 1 KB)
        client = app.test_client()
        api = ApiActions(client).user()
        assert api.upload(("first.png", PHOTO)).status_code == 202
        assert 750 < kept(app)[1] <= 1500
        response = api.upload(("second.png", encode(sample(400, 300), "PNG")))  # its original alone does not fit
        assert response.status_code == 422
        assert "Your storage is full" in response.get_json()["rejected"][0]["reason"]
        assert len(analyses(app)) == 1 and len({p.parent for p in stored_files(app)}) == 1

    def test_check_counts_compares_the_kept_bytes(self, app, client, runner):
        ApiActions(client).user().upload(("one.png", PHOTO))
        with app.app_context():
            db.session.execute(sa.update(User).values(stored_bytes=1))
            db.session.commit()
            assert any("kept 1 bytes" in line for line in counts.check_counts())
            counts.rebuild_counts()
            assert counts.check_counts() == []


class TestConcurrentUploads:
    @pytest.fixture
    def config_overrides(self):
        return {"QUOTA_PHOTOS": 3, "UPLOADS_AT_ONCE": 0}  # eight at once reach the quota check

    def test_uploads_at_once_never_go_past_the_quota(self, app):
        api = ApiActions(app.test_client()).user()
        headers = api.headers
        statuses = []

        def send(i):
            client = app.test_client()
            data = {"images": [(io.BytesIO(encode(sample(90 + i, 64), "PNG")), f"c{i}.png")]}
            statuses.append(client.post("/api/v1/analyses", data=data, headers=headers,
                                        content_type="multipart/form-data").status_code)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses).count(202) == 3
        assert len(analyses(app)) == 3 and kept(app)[0] == 3


def test_the_account_page_and_the_api_show_usage_against_the_quotas(make_app):
    app = make_app(QUOTA_PHOTOS=500, QUOTA_BYTES=2 * 1024**3)
    client = app.test_client()
    api = ApiActions(client).user()
    api.upload(("one.png", PHOTO))
    me = client.get("/api/v1/me", headers=api.headers).get_json()
    assert me["usage"]["photos"] == 1 and me["usage"]["quota_photos"] == 500
    assert me["usage"]["stored_bytes"] == kept(app)[1] and me["usage"]["quota_bytes"] == 2 * 1024**3
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": "ada@example.com", "password": "correct horse battery",
                                "csrf_token": token})
    page = client.get("/account").get_data(as_text=True)
    assert "1 photo of 500" in page and "of 2 GB" in page and "<meter" in page
