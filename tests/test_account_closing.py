"""Leaving: "Delete my account" (with the password) removes every row and file of the account and
nothing of anyone else's; "Download everything" builds a zip in the background whose originals
are the uploads byte for byte and whose COCO file loads in pycocotools; exports stream."""
import io
import json
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import PASSWORD, ApiActions, AuthActions, csrf_from, share_link, stored_files, upload
from tests.images import encode, sample
from tests.factories import add_boxes
from webapp.extensions import db
from webapp.models import Run, Takeout, User


def photos_of(client, app, names, size=(320, 240)):
    """Upload these photos (PNG and JPEG) and give each finished run two boxes."""
    files = [(name, encode(sample(size[0] + i, size[1]), "JPEG" if name.endswith(".jpg") else "PNG"))
             for i, name in enumerate(names)]
    assert upload(client, *files).status_code in (200, 201, 202, 302, 303)
    with app.app_context():
        ids = list(db.session.scalars(sa.select(Run.public_id).join(User).where(
            User.email == _email(client, app)).order_by(Run.id)))
    for public_id in ids:
        add_boxes(app, public_id, [("person", 0, 0.9, (10, 10, 100, 200)), ("dog", 16, 0.6, (150, 50, 300, 230))])
    return dict(files)


def _email(client, app) -> str:
    return client.get("/account").get_data(as_text=True).split("Signed in as <strong>")[1].split("<")[0]


def everything_of(app, user_id: int) -> dict:
    """Rows in every table that belong to this user (a `user_id` column, or its runs' detections)."""
    found = {}
    with app.app_context():
        for table in db.metadata.sorted_tables:
            if "user_id" in table.c:
                found[table.name] = db.session.scalar(sa.select(sa.func.count()).select_from(table)
                                                      .where(table.c.user_id == user_id))
        found["user"] = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(User.id == user_id))
        found["detection"] = db.session.scalar(sa.text(
            "SELECT count(*) FROM detection d WHERE NOT EXISTS (SELECT 1 FROM analysis a WHERE a.id = d.analysis_id)"))
    return found


def user_id(app, email) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(User.id).where(User.email == email))


def delete_account(client, password=PASSWORD):
    page = client.get("/account").get_data(as_text=True)
    return client.post("/account/delete", data={"delete_password": password, "csrf_token": csrf_from(page)})


def test_deleting_the_account_leaves_no_row_or_file_of_it_and_nothing_of_others_touched(app, client, auth):
    other = app.test_client()
    AuthActions(other).signup("bob@example.com")
    photos_of(other, app, ["bob.png"])
    auth.signup()
    photos_of(client, app, ["a.png", "b.jpg"])
    with app.app_context():
        first = db.session.scalar(sa.select(Run.public_id).join(User).where(User.email == "ada@example.com"))
    share_link(client, first)
    script = ApiActions(app.test_client())
    script.login()
    script.post("/api/v1/keys", json={"name": "cam"})
    client.post("/account/takeout", data={"csrf_token": csrf_from(client.get("/account").get_data(as_text=True))})
    ada, bob = user_id(app, "ada@example.com"), user_id(app, "bob@example.com")
    bob_files = {p: p.read_bytes() for p in stored_files(app)
                 if p.relative_to(app.config["UPLOAD_DIR"]).parts[0] == str(bob)}
    bob_rows = everything_of(app, bob)
    assert any(p.relative_to(app.config["UPLOAD_DIR"]).parts[0] == str(ada) for p in stored_files(app))

    refused = delete_account(client, password="not my password")
    assert refused.status_code == 422 and "nothing was deleted" in refused.get_data(as_text=True)
    done = delete_account(client)
    assert done.status_code == 303

    left = everything_of(app, ada)
    assert set(left.values()) == {0}, left
    assert not (Path(app.config["UPLOAD_DIR"]) / str(ada)).exists()
    assert {p: p.read_bytes() for p in stored_files(app)} == bob_files
    assert everything_of(app, bob) == bob_rows
    assert client.get("/analyses").status_code == 302  # signed out
    assert script.get("/api/v1/me").status_code == 401
    assert AuthActions(app.test_client()).login().status_code == 401


def test_the_takeout_has_the_originals_byte_for_byte_and_a_coco_file_pycocotools_loads(app, client, auth, tmp_path):
    from pycocotools.coco import COCO

    auth.signup()
    originals = photos_of(client, app, ["beach.jpg", "beach.png", "cat.png"])
    with app.app_context():
        first = db.session.scalar(sa.select(Run.public_id).order_by(Run.id))
    share_link(client, first)
    script = ApiActions(app.test_client())
    script.login()
    secret = script.post("/api/v1/keys", json={"name": "cam"}).get_json()["key"]
    page = client.get("/account").get_data(as_text=True)
    assert client.post("/account/takeout", data={"csrf_token": csrf_from(page)}).status_code == 303
    status = client.get("/account/takeout/status").get_data(as_text=True)  # the sync executor built it already
    assert "Your download is ready" in status
    with app.app_context():
        takeout = db.session.scalar(sa.select(Takeout))
    response = client.get(f"/account/takeout/{takeout.public_id}")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    assert "private" in response.headers["Cache-Control"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = archive.namelist()
    stored = sorted(archive.read(n) for n in names if n.startswith("originals/"))
    assert stored == sorted(originals.values())
    assert sorted(n.rsplit("-", 1)[0] for n in names if n.startswith("originals/")) == [
        "originals/beach", "originals/beach", "originals/cat"]
    (tmp_path / "coco.json").write_bytes(archive.read("detections-coco.json"))
    coco = COCO(str(tmp_path / "coco.json"))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 6
    assert {a["category_id"] for a in coco.loadAnns(coco.getAnnIds())} <= set(coco.getCatIds())
    for image in coco.loadImgs(coco.getImgIds()):
        assert image["file_name"] in names
    runs = json.loads(archive.read("runs.json"))["runs"]
    assert len(runs) == 3 and {"conf", "iou", "imgsz", "classes"} <= set(runs[0]["settings"])
    assert len(runs[0]["detections"]) == 2
    links = json.loads(archive.read("share-links.json"))["share_links"]
    keys = json.loads(archive.read("api-keys.json"))["api_keys"]
    assert len(links) == 1 and len(keys) == 1 and keys[0]["name"] == "cam"
    everything = b"".join(archive.read(n) for n in names if n.endswith(".json"))
    assert secret.encode() not in everything and secret[4:20].encode() not in everything
    with app.app_context():
        share_id = db.session.scalar(sa.text("SELECT share_id FROM share_link"))
        key_hash = db.session.scalar(sa.text("SELECT secret_hash FROM api_key"))
    assert share_id.encode() not in everything and key_hash.encode() not in everything
    assert "README.txt" in names and "photos.json" in names


def start_takeout(client, app) -> Takeout:
    """"Download everything" pressed (the sync executor builds it before answering)."""
    client.post("/account/takeout", data={"csrf_token": csrf_from(client.get("/account").get_data(as_text=True))})
    with app.app_context():
        return db.session.scalar(sa.select(Takeout))


def test_a_takeout_is_another_accounts_not_found(app, client, auth):
    auth.signup()
    photos_of(client, app, ["a.png"])
    takeout = start_takeout(client, app)
    other = app.test_client()
    AuthActions(other).signup("bob@example.com")
    assert other.get(f"/account/takeout/{takeout.public_id}").status_code == 404


def test_an_expired_takeout_is_gone_and_its_file_deleted(app, client, auth):
    from datetime import timedelta

    auth.signup()
    photos_of(client, app, ["a.png"])
    public_id = start_takeout(client, app).public_id
    with app.app_context():
        takeout = db.session.scalar(sa.select(Takeout))
        takeout.expires_at = takeout.expires_at - timedelta(hours=25)
        path = Path(app.config["UPLOAD_DIR"]) / takeout.path
        db.session.commit()
    assert path.is_file()
    response = client.get(f"/account/takeout/{public_id}")
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert not path.exists()


def test_the_takeout_link_is_valid_for_a_day(app, client, auth):
    auth.signup()
    takeout = start_takeout(client, app)
    assert abs((takeout.expires_at - takeout.finished_at).total_seconds() - 24 * 3600) < 5


@pytest.mark.parametrize("fmt", ["json", "coco", "csv", "yolo"])
def test_the_bulk_export_written_in_batches_matches_the_one_built_in_memory(app, fmt, monkeypatch):
    from webapp.analyses import exports, listing

    script = ApiActions(app.test_client())
    script.user()
    for i in range(7):
        script.upload((f"p{i}.png", encode(sample(64 + i, 48), "PNG")))
    with app.app_context():
        for public_id in db.session.scalars(sa.select(Run.public_id)):
            add_boxes(app, public_id, [("person", 0, 0.9, (1, 1, 30, 30))])
    monkeypatch.setattr(listing, "batches_matching", _small_batches(listing.batches_matching))
    streamed = script.get(f"/api/v1/analyses/export?format={fmt}")
    assert streamed.status_code == 200
    with app.test_request_context():
        user = db.session.scalar(sa.select(User))
        runs = listing.all_matching(user, listing.Filters(), with_detections=True)
        built = exports.export(runs, fmt, None, "analyses", dataset=True)
        expected = built.body if isinstance(built.body, bytes) else built.body.read()
    if fmt == "json":
        assert json.loads(streamed.data) == json.loads(expected)
    elif fmt == "coco":
        ours, theirs = json.loads(streamed.data), json.loads(expected)
        ours["info"].pop("date_created"), theirs["info"].pop("date_created")
        assert ours == theirs and len(ours["annotations"]) == 7
    elif fmt == "csv":
        assert streamed.data == expected
    else:
        a, b = zipfile.ZipFile(io.BytesIO(streamed.data)), zipfile.ZipFile(io.BytesIO(expected))
        assert sorted(a.namelist()) == sorted(b.namelist()) and len(a.namelist()) == 16


def _small_batches(real):
    def batches(user, wanted, size=500):
        return real(user, wanted, size=2)
    return batches
