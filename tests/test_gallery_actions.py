"""The gallery's browsing and bulk actions on the server side: previous/next through a listing,
the annotated view drawn for a slider and class toggles, the duplicate check, bulk zip and
bulk delete, and the filter bar's refresh signal. (The browser side: test_gallery_browser.py.)"""
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from tests.factories import add_analysis, add_boxes
from tests.helpers import HX, analyses, csrf_from, kept, trashed, upload
from tests.images import drawn, encode, sample
from webapp.analyses import listing
from webapp.library import counts
from webapp.extensions import db
from webapp.models import Run, User
from webapp.vision.detector import Box

START = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
def photos(client, auth, app):
    """A signed-in user with three finished photos (oldest first), the newest with boxes."""
    auth.signup()
    for i in range(3):
        upload(client, (f"photo{i}.png", encode(sample(320 + i, 240), "PNG")))
    rows = analyses(app)
    add_boxes(app, rows[-1].public_id, [("person", 0, 0.9, (10, 10, 120, 200)), ("tie", 27, 0.4, (40, 60, 60, 120)),
                                        ("person", 0, 0.3, (150, 20, 300, 230)), ("dog", 16, 0.1, (5, 5, 50, 50))])
    return analyses(app)


def bulk(client, page="/analyses", **fields):
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post("/analyses/bulk", data={"csrf_token": token, **fields})


# ---- previous / next ----

def test_previous_and_next_follow_the_listing_the_user_came_from(app, client, auth):
    auth.signup()
    made = [add_analysis(app, user_email="ada@example.com", original_filename=f"p{i}.jpg",
                         created_at=START + timedelta(hours=i), labels=[("cat", 0.9)] if i % 2 else [("dog", 0.9)])
            for i in range(6)]
    cats = [a for a in made if a.photo.original_filename in ("p1.jpg", "p3.jpg", "p5.jpg")]  # newest first: p5 p3 p1
    page = client.get(f"/analyses/{cats[1].public_id}?label=cat").get_data(as_text=True)
    assert f'href="/analyses/{cats[2].public_id}?label=cat" title="p5.jpg' in page  # previous: newer
    assert f'href="/analyses/{cats[0].public_id}?label=cat" title="p1.jpg' in page  # next: older
    assert f'href="/analyses?label=cat#analysis-{cats[1].public_id}"' in page
    oldest_first = client.get(f"/analyses/{cats[1].public_id}?label=cat&sort=oldest").get_data(as_text=True)
    assert f"/analyses/{cats[0].public_id}?label=cat&amp;sort=oldest\" title=\"p1.jpg (←)" in oldest_first


def test_the_first_and_last_photo_have_no_previous_or_next(app, client, auth):
    auth.signup()
    first, last = (add_analysis(app, created_at=START + timedelta(hours=i)) for i in range(2))
    newest = client.get(f"/analyses/{last.public_id}").get_data(as_text=True)
    assert 'rel="prev"' not in newest and 'rel="next"' in newest
    oldest = client.get(f"/analyses/{first.public_id}").get_data(as_text=True)
    assert 'rel="prev"' in oldest and 'rel="next"' not in oldest


def test_neighbours_never_step_into_another_users_photos(app, client, auth):
    auth.signup()
    mine = add_analysis(app, created_at=START)
    add_analysis(app, user_email="eve@example.com", created_at=START + timedelta(hours=1))
    page = client.get(f"/analyses/{mine.public_id}").get_data(as_text=True)
    assert 'rel="prev"' not in page and 'rel="next"' not in page


def test_same_second_photos_are_each_stepped_through_once(app):
    """Ties on created_at are broken by id, as the gallery's keyset pages break them."""
    made = [add_analysis(app, created_at=START) for _ in range(4)]
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        seen, current = [], db.session.get(Run, max(a.id for a in made))
        while current is not None:
            seen.append(current.id)
            current = listing.neighbours(user, listing.Filters(), current)[1]
    assert seen == sorted((a.id for a in made), reverse=True)


# ---- the annotated view, as the slider and class toggles show it ----

def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def as_jpeg(image_bgr: np.ndarray) -> np.ndarray:
    """The image as the annotated JPEG (quality 90) brings it back: its text's edges blurred alike."""
    return decode(cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).astype(int)


def test_the_annotated_view_draws_the_boxes_at_the_sliders_confidence_of_the_ticked_classes(app, client, photos):
    analysis = photos[-1]
    response = client.get(f"/analyses/{analysis.public_id}/image/annotated?conf=0.35&classes=person,tie")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert "private" in response.headers["Cache-Control"]
    original = decode(client.get(f"/analyses/{analysis.public_id}/image/original").data)
    expected = as_jpeg(drawn(original, [Box(0, "person", 0.9, 10, 10, 120, 200), Box(27, "tie", 0.4, 40, 60, 60, 120)]))
    fewer = as_jpeg(drawn(original, [Box(0, "person", 0.9, 10, 10, 120, 200)]))
    got = decode(response.data).astype(int)
    tie = (slice(50, 130), slice(30, 70))  # around the tie's box: drawn, as the page shows it
    assert np.abs(got - expected).mean() < 4  # JPEG noise around the edges
    assert np.abs(got - expected)[tie].mean() * 3 < np.abs(got - fewer)[tie].mean()


def test_the_annotated_view_with_no_class_ticked_draws_no_box(client, photos):
    analysis = photos[-1]
    bare = decode(client.get(f"/analyses/{analysis.public_id}/image/annotated?conf=0.1&classes=").data).astype(int)
    original = decode(client.get(f"/analyses/{analysis.public_id}/image/original").data).astype(int)
    assert np.abs(bare - original).mean() < 2


def test_the_annotated_view_is_a_download_named_for_its_threshold(client, photos):
    response = client.get(f"/analyses/{photos[-1].public_id}/image/annotated?conf=0.5&download=1")
    assert response.headers["Content-Disposition"] == "attachment; filename=photo2-annotated-0.50.jpg"


def test_the_annotated_view_answers_304_while_unchanged(client, photos):
    url = f"/analyses/{photos[-1].public_id}/image/annotated?conf=0.5"
    etag = client.get(url).headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("query", ["conf=abc", "conf=1.5", "conf=-0.1", "conf=nan", "classes=" + "x," * 3000])
def test_a_bad_annotated_view_query_is_a_400_not_a_500(client, photos, query):
    response = client.get(f"/analyses/{photos[-1].public_id}/image/annotated?{query}")
    assert response.status_code == 400


def test_nobody_else_gets_the_annotated_view(app, client, photos, auth):
    auth.logout()
    auth.signup("eve@example.com")
    assert client.get(f"/analyses/{photos[-1].public_id}/image/annotated?conf=0.5").status_code == 404


def test_the_detail_page_lists_only_classes_with_boxes_at_its_threshold_with_counts(client, photos):
    page = client.get(f"/analyses/{photos[-1].public_id}").get_data(as_text=True)
    assert '<label class="check" data-label="dog" hidden>' in page  # 0.1 < 0.25: none shown
    assert '<label class="check" data-label="person" >' in page
    assert 'person <span class="count">2</span>' in page and 'tie <span class="count">1</span>' in page


# ---- the duplicate check of the upload queue ----

def test_the_duplicate_check_finds_a_photo_by_its_bytes(client, photos):
    data = encode(sample(320, 240), "PNG")
    import hashlib

    found = client.get(f"/analyses/sha256/{hashlib.sha256(data).hexdigest()}")
    assert found.status_code == 200
    assert found.json == {"found": True, "id": photos[0].public_id, "filename": "photo0.png",
                          "url": f"/analyses/{photos[0].public_id}"}
    assert client.get("/analyses/sha256/" + "ab" * 32).status_code == 404


def test_the_duplicate_check_sees_only_the_users_own_photos(client, photos, auth):
    auth.logout()
    auth.signup("eve@example.com")
    assert client.get(f"/analyses/sha256/{photos[0].photo.sha256}").status_code == 404


def test_a_malformed_digest_is_a_400(client, photos):
    assert client.get("/analyses/sha256/not-a-digest").status_code == 400


# ---- bulk actions ----

def test_bulk_zip_has_originals_annotated_images_and_the_detections_as_coco_and_csv(client, photos):
    chosen = [photos[0].public_id, photos[2].public_id]
    response = bulk(client, action="zip", ids=chosen)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = sorted(archive.namelist())
    assert sorted(n for n in names if n.startswith("originals/")) == ["originals/photo0.png", "originals/photo2.png"]
    assert len([n for n in names if n.startswith("annotated/")]) == 2
    coco = json.loads(archive.read("detections-coco.json"))
    originals = {n.split("/", 1)[1] for n in names if n.startswith("originals/")}
    assert {image["file_name"] for image in coco["images"]} == originals
    assert sorted(a["score"] for a in coco["annotations"]) == [0.3, 0.4, 0.9]  # at the photo's threshold
    assert {a["category_id"] for a in coco["annotations"]} <= {c["id"] for c in coco["categories"]}
    rows = archive.read("detections.csv").decode().splitlines()
    assert rows[0].startswith("analysis_id,filename") and len(rows) == 4
    assert archive.read("originals/photo0.png") == encode(sample(320, 240), "PNG")
    assert sorted(n for n in names if n.startswith("annotated/")) == ["annotated/photo0.jpg", "annotated/photo2.jpg"]


def test_bulk_zip_adds_a_short_suffix_only_to_names_that_clash(client, auth, app):
    auth.signup()
    for i in range(2):
        upload(client, ("IMG_0001.png", encode(sample(320 + i, 240), "PNG")))
    upload(client, ("img_0001.jpg", encode(sample(330, 240), "JPEG")))  # the same name on a case-blind disk
    first, second, third = analyses(app)
    response = bulk(client, action="zip", ids=[r.public_id for r in (first, second, third)])
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert sorted(n for n in names if n.startswith("originals/")) == sorted([
        "originals/IMG_0001.png", f"originals/IMG_0001-{second.public_id[:8]}.png",
        f"originals/img_0001-{third.public_id[:8]}.jpg"])


def test_bulk_actions_ignore_other_users_photos(app, client, photos, auth):
    theirs = add_analysis(app, user_email="eve@example.com")
    response = bulk(client, action="delete", confirm="1", ids=[theirs.public_id])
    assert response.status_code == 302
    assert len(analyses(app)) == 4  # nothing deleted
    assert "Select at least one photo" in client.get("/analyses").get_data(as_text=True)


def test_bulk_delete_asks_first_naming_the_count(app, client, photos):
    page = bulk(client, action="delete", ids=[p.public_id for p in photos[:2]]).get_data(as_text=True)
    assert "Move 2 photos to the Trash?" in page and "photo0.png" in page
    assert len(analyses(app)) == 3


def test_bulk_delete_confirmed_moves_those_photos_to_the_trash_and_counts_them_out(app, client, photos):
    response = bulk(client, action="delete", confirm="1", ids=[photos[2].public_id, photos[0].public_id])
    assert response.status_code == 302
    assert [a.public_id for a in kept(app)] == [photos[1].public_id]
    assert sorted(a.public_id for a in trashed(app)) == sorted([photos[0].public_id, photos[2].public_id])
    assert "Moved 2 photos to the Trash." in client.get("/analyses").get_data(as_text=True)
    with app.app_context():
        assert counts.check_counts() == []


def test_select_all_in_a_filter_takes_every_match_including_pages_not_loaded(app, client, auth):
    auth.signup()
    for i in range(7):
        add_analysis(app, created_at=START + timedelta(hours=i), labels=[("cat", 0.9)] if i < 5 else [("dog", 0.9)])
    app.config["GALLERY_PER_PAGE"] = 2
    gallery = client.get("/analyses?label=cat").get_data(as_text=True)
    assert "Select all 5 photos in this filter" in gallery
    response = bulk(client, page="/analyses?label=cat", action="delete", confirm="1", all="1", label="cat")
    assert response.headers["Location"] == "/analyses?label=cat"
    assert sorted(a.public_id for a in kept(app)) == sorted(
        a.public_id for a in analyses(app) if a.detections[0].label == "dog")
    assert len(kept(app)) == 2 and len(trashed(app)) == 5
    with app.app_context():
        assert counts.check_counts() == []


def test_bulk_refuses_more_than_its_limit(app, client, photos, monkeypatch):
    monkeypatch.setattr("webapp.analyses.routes.BULK_LIMIT", 2)
    response = bulk(client, action="zip", all="1")
    assert response.status_code == 302
    assert "Select at most 2 photos at once." in client.get("/analyses").get_data(as_text=True)


@pytest.mark.parametrize("action", ["", "explode"])
def test_an_unknown_bulk_action_is_explained(client, photos, action):
    assert bulk(client, action=action, ids=[photos[0].public_id]).status_code == 302
    assert "Choose what to do" in client.get("/analyses").get_data(as_text=True)


def test_bulk_needs_the_csrf_token(client, photos):
    response = client.post("/analyses/bulk", data={"action": "delete", "confirm": "1", "ids": photos[0].public_id})
    assert response.status_code == 400
    assert len(photos) == 3


# ---- the filter bar ----

def test_the_filter_bar_shows_the_top_labels_and_the_rest_behind_more(app, client, auth):
    auth.signup()
    names = [f"label{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        for _ in range(12 - i):  # label00 on 12 photos ... label11 on 1
            add_analysis(app, labels=[(name, 0.9)])
    page = client.get("/analyses").get_data(as_text=True)
    bar = page.split('id="filter-bar"', 1)[1].split("</nav>", 1)[0]
    top, more = bar.split('class="more-labels"', 1)
    assert all(f"{n} <span" in top for n in names[:8]) and "label08" not in top
    assert all(f'data-name="{n}"' in more for n in names[8:])
    assert all(f'<option value="{n}">' in more for n in names)  # the type-ahead knows every label
    chosen = client.get("/analyses?label=label11").get_data(as_text=True)
    assert "label11 <span" in chosen.split('class="more-labels"', 1)[0]  # a chosen label stays in view


def test_a_card_that_finished_tells_the_page_to_refresh_its_filter_bar(app, client, photos):
    response = client.get(f"/analyses/{photos[0].public_id}/card", headers=HX)
    assert response.headers["HX-Trigger"] == "labelsChanged"


def test_the_annotated_download_of_a_photo_with_a_non_latin_name_is_named_in_utf8(client, auth, app):
    auth.signup("names@example.com")
    upload(client, ('café 日本 "q".png', encode(sample(), "PNG")))
    [analysis] = analyses(app)
    response = client.get(f"/analyses/{analysis.public_id}/image/annotated?conf=0.30&download=1")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert "filename*=UTF-8''caf%C3%A9%20%E6%97%A5%E6%9C%AC" in disposition
    assert disposition.endswith("-annotated-0.30.jpg")
    disposition.encode("latin-1")  # a header the server can send


@pytest.mark.parametrize("uploaded, starts", [("x" * 300 + ".png", "x" * 80 + "-"), ("🙂🙂.png", "photo-"),
                                               ("---.png", "photo-")])
def test_image_downloads_are_named_after_the_photo_within_bounds(client, auth, app, uploaded, starts):
    auth.signup("names@example.com")
    upload(client, (uploaded, encode(sample(), "PNG")))
    [analysis] = analyses(app)
    for url in (f"/analyses/{analysis.public_id}/image/original?download=1",
                f"/analyses/{analysis.public_id}/image/annotated?conf=0.30&download=1"):
        disposition = client.get(url).headers["Content-Disposition"]
        assert f'filename="{starts}' in disposition or f"filename={starts}" in disposition, disposition


def test_select_all_does_nothing_when_the_filter_matches_other_photos_than_the_user_saw(app, client, auth):
    auth.signup()
    for _ in range(3):
        add_analysis(app, labels=[("cat", 0.9)])
    page = "/analyses?label=cat"
    add_analysis(app, labels=[("cat", 0.9)])  # finished after the page showed "3"
    response = bulk(client, page=page, action="delete", confirm="1", all="1", label="cat", total="3")
    assert response.status_code == 302 and len(analyses(app)) == 4
    assert "now matches 4 photos, not the 3 you selected" in client.get(page).get_data(as_text=True)


@pytest.mark.parametrize("bad", [{"from": "garbage"}, {"to": "2026-02-30"}])
def test_select_all_with_a_filter_it_cannot_read_does_nothing(app, client, photos, bad):
    response = bulk(client, action="delete", confirm="1", all="1", label="person", **bad)
    assert response.status_code == 302 and len(analyses(app)) == 3
    assert "Nothing was done." in client.get("/analyses").get_data(as_text=True)


def test_with_a_label_chosen_the_other_chips_count_what_adding_them_would_leave(app, client, auth):
    auth.signup()
    add_analysis(app, labels=[("person", 0.9), ("dog", 0.9)])
    add_analysis(app, labels=[("person", 0.9), ("dog", 0.8), ("cat", 0.7)])
    add_analysis(app, labels=[("car", 0.9), ("dog", 0.9)])
    bar = client.get("/analyses?label=person").get_data(as_text=True).split('id="filter-bar"', 1)[1]
    bar = " ".join(bar.split("</nav>", 1)[0].split())
    assert 'title="Also dog: 2 photos with dog">+ dog <span class="photos">2' in bar  # dog alone: 3
    assert 'title="Also cat: 1 photo with cat">+ cat <span class="photos">1' in bar
    assert "car" not in bar  # person and car: no photo
