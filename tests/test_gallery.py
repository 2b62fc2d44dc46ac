"""The gallery, the detail page, images, downloads, deleting, and who may see what."""
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories import add_analysis
from tests.helpers import HX, analyses, csrf_from, kept, stored_files, trashed, upload
from tests.images import encode, sample
from webapp.web.limits import too_large_message
from webapp.extensions import db
from webapp.models import RunStatus, Detection


@pytest.fixture
def done(client, auth, app):
    """A signed-in user with one finished analysis of a small PNG (random-weight model)."""
    auth.signup()
    upload(client, ("photo.png", encode(sample(320, 240), "PNG")))
    [analysis] = analyses(app)
    assert analysis.status == RunStatus.DONE
    return analysis


def test_gallery_is_empty_with_a_friendly_message(client, auth):
    auth.signup()
    page = client.get("/analyses").get_data(as_text=True)
    assert "No photos yet" in page and 'name="images"' in page and "multiple" in page


def test_upload_hint_states_the_limit_as_it_is_enforced(make_app, auth_factory):
    app = make_app(MAX_CONTENT_LENGTH=5 * 1024 * 1024)
    client, auth = auth_factory(app)
    auth.signup()
    page = client.get("/analyses").get_data(as_text=True)
    assert "each sent on its own, up to 5 MB per photo" in page  # the page's script: a request per photo
    assert "up to 5 MB in all per upload" in page  # without JavaScript: one request
    assert "MB each" not in page
    with app.test_request_context():
        message = too_large_message()
    assert f'data-max-bytes="{5 * 1024 * 1024}"' in page and f'data-too-large="{message}"' in page


def test_gallery_lists_newest_first(client, auth, app):
    auth.signup()
    for name in ("one.png", "two.png", "three.png"):
        upload(client, (name, encode(sample(), "PNG")))
    page = client.get("/analyses").get_data(as_text=True)
    assert page.index("three.png") < page.index("two.png") < page.index("one.png")


def test_gallery_filters_by_label(client, auth, app):
    auth.signup()
    dog = add_analysis(app, labels=[("dog", 0.9), ("person", 0.8)])
    cat = add_analysis(app, labels=[("cat", 0.9), ("dog", 0.1)])  # a dog below the threshold
    page = client.get("/analyses?label=dog").get_data(as_text=True)
    assert f"analysis-{dog.public_id}" in page and f"analysis-{cat.public_id}" not in page
    page = client.get("/analyses?label=cat").get_data(as_text=True)
    assert f"analysis-{cat.public_id}" in page and f"analysis-{dog.public_id}" not in page
    assert "No photo matches <strong>horse</strong>" in client.get("/analyses?label=horse").get_data(as_text=True)


def test_label_chips_count_photos(client, auth, app):
    auth.signup()
    add_analysis(app, labels=[("dog", 0.9), ("dog", 0.8)])
    add_analysis(app, labels=[("dog", 0.7)])
    page = " ".join(client.get("/analyses").get_data(as_text=True).split())
    assert re.search(r'href="/analyses\?label=dog" class="chip"\s*title="2 photos with dog">dog '
                     r'<span class="photos">2<span class="visually-hidden"> photos</span>', page)
    # the cards count boxes, written differently
    assert re.search(r'title="2 dog boxes in this photo">dog <span class="count">×2</span>', page)
    assert re.search(r'title="1 dog box in this photo">dog <span class="count">×1</span>', page)


def test_gallery_pages_load_more_as_you_scroll(make_app, auth_factory):
    app = make_app(GALLERY_PER_PAGE=2)
    client, auth = auth_factory(app)
    auth.signup()
    for _ in range(3):
        add_analysis(app, labels=[("dog", 0.9)])
    first = client.get("/analyses").get_data(as_text=True)
    assert first.count('class="tile status-') == 2 and 'hx-trigger="revealed' in first
    next_url = re.search(r'class="more" hx-get="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "cursor=" in next_url
    more = client.get(next_url, headers=HX).get_data(as_text=True)
    assert more.count('class="tile status-') == 1 and "<html" not in more and "revealed" not in more


def test_gallery_chips_narrow_to_photos_showing_every_selected_label(client, auth, app):
    auth.signup()
    both = add_analysis(app, labels=[("dog", 0.9), ("person", 0.8)])
    dog = add_analysis(app, labels=[("dog", 0.9)])
    page = client.get("/analyses?label=dog").get_data(as_text=True)
    assert 'href="/analyses?label=dog&amp;label=person"' in page  # "+ person" narrows further
    page = client.get("/analyses?label=dog&label=person").get_data(as_text=True)
    assert f"analysis-{both.public_id}" in page and f"analysis-{dog.public_id}" not in page
    assert "Photos with <strong>dog and person</strong>" in page


def test_gallery_filters_by_dates_and_sorts_oldest_first(client, auth, app):
    from datetime import datetime, timezone

    auth.signup()
    early = add_analysis(app, created_at=datetime(2026, 1, 5, tzinfo=timezone.utc))
    late = add_analysis(app, created_at=datetime(2026, 2, 5, tzinfo=timezone.utc))
    january = client.get("/analyses?from=2026-01-01&to=2026-01-31").get_data(as_text=True)
    assert f"analysis-{early.public_id}" in january and f"analysis-{late.public_id}" not in january
    oldest = client.get("/analyses?sort=oldest").get_data(as_text=True)
    assert oldest.index(f"analysis-{early.public_id}") < oldest.index(f"analysis-{late.public_id}")
    assert "Ignored the date" in client.get("/analyses?from=yesterday").get_data(as_text=True)


def test_gallery_uses_a_fixed_number_of_queries(make_app, auth_factory):
    app = make_app(GALLERY_PER_PAGE=50)
    client, auth = auth_factory(app)
    auth.signup()
    counts = []
    for n in (2, 20):
        while len(analyses(app)) < n:
            add_analysis(app, labels=[("dog", 0.9), ("cat", 0.5)])
        statements = []

        def count(*args, seen=statements):
            seen.append(args[2])

        with app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute", count)
            try:
                assert client.get("/analyses?label=dog").status_code == 200
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert 0 < counts[0] == counts[1]


def test_detail_page_shows_the_result(client, done):
    page = client.get(f"/analyses/{done.public_id}").get_data(as_text=True)
    assert "photo.png" in page and 'id="conf"' in page and 'id="overlay"' in page
    assert f"/analyses/{done.public_id}/image/annotated" in page
    assert f"/analyses/{done.public_id}/image/original" in page
    assert f"/analyses/{done.public_id}/delete" in page


def test_detail_page_of_a_pending_analysis_fetches_itself_when_told_its_run_finished(client, auth, app):
    auth.signup()
    pending = add_analysis(app, status=RunStatus.PENDING)
    page = client.get(f"/analyses/{pending.public_id}").get_data(as_text=True)
    assert f'data-going="{pending.public_id}"' in page and 'hx-trigger="finished, poll"' in page
    assert 'hx-select="#detail"' in page and 'id="live-events"' in page


@pytest.mark.parametrize("variant, mimetype", [
    ("original", "image/png"), ("annotated", "image/jpeg"), ("thumbnail", "image/jpeg"),
])
def test_images_are_served_to_their_owner_with_cache_headers(client, done, variant, mimetype):
    response = client.get(f"/analyses/{done.public_id}/image/{variant}")
    assert response.status_code == 200 and response.mimetype == mimetype
    directives = {d.strip() for d in response.headers["Cache-Control"].split(",")}
    assert response.headers["ETag"] and "private" in directives and "public" not in directives
    again = client.get(f"/analyses/{done.public_id}/image/{variant}",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_unknown_image_variant_is_404(client, done):
    assert client.get(f"/analyses/{done.public_id}/image/secret").status_code == 404


def test_annotated_image_downloads_as_an_attachment(client, done):
    response = client.get(f"/analyses/{done.public_id}/image/annotated?download=1")
    assert response.headers["Content-Disposition"].startswith("attachment")


def test_detections_download_as_json(client, auth, app):
    auth.signup()
    analysis = add_analysis(app, labels=[("dog", 0.9)])
    response = client.get(f"/analyses/{analysis.public_id}/detections.json")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    assert response.json["detections"] == [
        {"name": "dog", "class": 0, "confidence": 0.9, "box": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}}
    ]


def test_detections_of_a_photo_with_a_non_latin_name_download_under_that_name(client, auth, app):
    auth.signup()
    analysis = add_analysis(app, labels=[("dog", 0.9)], original_filename="夏の海.jpg")
    response = client.get(f"/analyses/{analysis.public_id}/detections.json")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert f"filename*=UTF-8''%E5%A4%8F%E3%81%AE%E6%B5%B7-{analysis.public_id[:8]}-detections.json" in disposition
    assert f"filename=download-{analysis.public_id[:8]}-detections.json;" in disposition  # for old clients


def test_delete_moves_the_photo_to_the_trash_with_its_files(client, app, done):
    token = csrf_from(client.get(f"/analyses/{done.public_id}").get_data(as_text=True))
    files = stored_files(app)
    response = client.post(f"/analyses/{done.public_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert kept(app) == [] and [r.public_id for r in trashed(app)] == [done.public_id]
    assert stored_files(app) == files
    assert client.get(f"/analyses/{done.public_id}").status_code == 404


def test_emptying_the_trash_removes_rows_and_files(client, app, done):
    token = csrf_from(client.get(f"/analyses/{done.public_id}").get_data(as_text=True))
    client.post(f"/analyses/{done.public_id}/delete", data={"csrf_token": token})
    response = client.post("/trash", data={"csrf_token": token, "action": "empty"})
    assert response.status_code == 302
    assert analyses(app) == [] and stored_files(app) == []
    assert list(Path(app.config["UPLOAD_DIR"]).rglob("*")) == [] or all(
        p.is_dir() and not any(p.iterdir()) for p in Path(app.config["UPLOAD_DIR"]).rglob("*"))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Detection)) == 0


def test_htmx_delete_from_a_card_sends_the_token_in_its_header_and_answers_only_the_undo(client, app, done):
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.post(f"/analyses/{done.public_id}/delete", headers={**HX, "X-CSRFToken": token})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="undo-area"') and 'hx-swap-oob="true"' in body  # the card: nothing
    assert "Moved photo.png to the Trash." in body and ">Undo</button>" in body
    assert kept(app) == [] and len(trashed(app)) == 1


def test_htmx_delete_of_the_only_photo_from_its_page_goes_back_to_the_gallery(client, app, done):
    token = csrf_from(client.get(f"/analyses/{done.public_id}").get_data(as_text=True))
    response = client.post(f"/analyses/{done.public_id}/delete",
                           headers={**HX, "HX-Trigger": "detail-delete", "X-CSRFToken": token})
    assert response.headers["HX-Redirect"] == "/analyses"
    assert "Moved photo.png to the Trash." in client.get("/analyses").get_data(as_text=True)


def test_htmx_delete_with_a_forged_token_is_refused(client, app, done):
    response = client.post(f"/analyses/{done.public_id}/delete", headers={**HX, "X-CSRFToken": "forged"})
    assert response.status_code == 400
    assert len(analyses(app)) == 1


def test_delete_needs_the_csrf_token(client, app, done):
    assert client.post(f"/analyses/{done.public_id}/delete").status_code == 400
    assert len(analyses(app)) == 1


def test_delete_refuses_get(client, done):
    assert client.get(f"/analyses/{done.public_id}/delete").status_code == 405


ID_ROUTES = [
    ("GET", "/analyses/{id}"),
    ("GET", "/analyses/{id}/card"),
    ("GET", "/analyses/{id}/image/original"),
    ("GET", "/analyses/{id}/image/annotated"),
    ("GET", "/analyses/{id}/image/thumbnail"),
    ("GET", "/analyses/{id}/detections.json"),
    ("POST", "/analyses/{id}/delete"),
    ("POST", "/analyses/{id}/retry"),
]


@pytest.mark.parametrize("method, route", ID_ROUTES)
def test_another_users_analysis_is_404(client, auth, app, done, method, route):
    auth.logout()
    auth.signup(email="eve@example.com")
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    url = route.format(id=done.public_id)
    response = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
    assert response.status_code == 404
    assert len(analyses(app)) == 1


@pytest.mark.parametrize("method, route", ID_ROUTES)
def test_a_signed_out_visitor_is_sent_to_log_in(client, auth, done, method, route):
    auth.logout()
    token = auth.csrf("/login")  # a signed-out browser tab still holds a valid form token
    response = client.open(route.format(id=done.public_id), method=method,
                           data={"csrf_token": token} if method == "POST" else None)
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")


@pytest.mark.parametrize("method, route", ID_ROUTES)
def test_an_unknown_id_is_404(client, done, method, route):
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.open(route.format(id="0" * 32), method=method,
                           data={"csrf_token": token} if method == "POST" else None)
    assert response.status_code == 404


def test_htmx_request_of_a_signed_out_visitor_redirects_the_page(client, done, auth):
    auth.logout()
    response = client.get(f"/analyses/{done.public_id}/card", headers=HX)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")


def test_a_huge_page_number_is_an_empty_page_not_an_error(client, auth):
    auth.signup()
    response = client.get("/analyses?page=99999999999999999999", headers=HX)
    assert response.status_code == 200 and 'class="tile' not in response.get_data(as_text=True)


def test_an_htmx_request_after_the_session_ended_says_so_on_the_login_page(client, done, auth):
    auth.logout()
    response = client.get(f"/analyses/{done.public_id}/card", headers=HX)
    assert response.status_code == 401
    assert "Your session has ended" in client.get(response.headers["HX-Redirect"]).get_data(as_text=True)


@pytest.mark.parametrize("variant", ["original", "display", "thumbnail"])
def test_images_of_a_photo_with_a_non_latin_name_download_under_that_name(client, auth, app, variant):
    from tests.images import encode, sample

    auth.signup()
    upload(client, ("夏の海.png", encode(sample(), "PNG")))
    [run] = analyses(app)
    response = client.get(f"/analyses/{run.public_id}/image/{variant}?download=1")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "filename*=UTF-8''%E5%A4%8F%E3%81%AE%E6%B5%B7-" in disposition
    assert 'filename="-' not in disposition and "filename=-" not in disposition  # an ASCII name that says something


@pytest.mark.parametrize("status, said", [(RunStatus.PENDING, "Waiting its turn…"),
                                          (RunStatus.RUNNING, "Reading the photo…")])
def test_a_card_without_a_thumbnail_yet_says_whether_it_waits_or_is_being_read(client, auth, app, status, said):
    auth.signup()
    add_analysis(app, status=status, thumbnail_path=None)
    page = client.get("/analyses").get_data(as_text=True)
    assert f'<span class="no-thumb">{said}</span>' in page
