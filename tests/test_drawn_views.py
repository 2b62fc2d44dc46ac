"""Annotated views drawn for a confidence and classes are the only pixel work a web process does:
each is drawn once and kept, drawn at most DRAW_CONCURRENCY at a time per process, and views not
drawn before are limited per address."""
import threading
import time
from pathlib import Path

import pytest

from tests.factories import add_boxes
from tests.helpers import analyses, share_link, stored_files, upload
from tests.images import encode, sample
from webapp.analyses import viewer


@pytest.fixture
def draws(monkeypatch):
    """Each view drawn (its confidence), and how many were being drawn at once at most."""
    real, made, lock = viewer.draw_view, [], threading.Lock()
    state = {"now": 0, "most": 0, "pause": 0.0}

    def counted(run, min_conf, classes):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(state["pause"])
        try:
            made.append(min_conf)
            return real(run, min_conf, classes)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(viewer, "draw_view", counted)
    counted.made, counted.state = made, state
    return counted


def photo_with_boxes(client, auth, app) -> str:
    auth.signup()
    upload(client, ("photo.png", encode(sample(320, 240), "PNG")))
    [run] = analyses(app)
    add_boxes(app, run.public_id, [("cat", 15, 0.9, (10, 10, 100, 100)), ("dog", 16, 0.4, (50, 50, 200, 200))])
    return run.public_id


def test_a_drawn_view_is_kept_and_sent_again_without_drawing_it(client, auth, app, draws):
    public_id = photo_with_boxes(client, auth, app)
    first = client.get(f"/analyses/{public_id}/image/annotated?conf=0.3")
    again = client.get(f"/analyses/{public_id}/image/annotated?conf=0.3")  # no If-None-Match: another browser
    assert first.status_code == again.status_code == 200
    assert first.data == again.data and first.headers["ETag"] == again.headers["ETag"]
    assert draws.made == [0.3]


def test_views_drawn_for_a_share_link_are_kept_too(client, auth, app, draws):
    public_id = photo_with_boxes(client, auth, app)
    path = share_link(client, public_id)
    anonymous = app.test_client()
    for _ in range(3):
        assert anonymous.get(path + "/image/annotated?conf=0.5&classes=cat").status_code == 200
    assert draws.made == [0.5]


def test_views_not_drawn_before_are_limited_per_address(make_app, auth_factory, draws):
    app = make_app(DRAWN_VIEW_RATE_LIMIT="2 per minute")
    client, auth = auth_factory(app)
    public_id = photo_with_boxes(client, auth, app)
    url = f"/analyses/{public_id}/image/annotated?conf="
    assert [client.get(url + c).status_code for c in ("0.3", "0.5", "0.95")] == [200, 200, 429]
    assert client.get(url + "0.3").status_code == 200  # one kept is sent, whoever asks
    other = {"REMOTE_ADDR": "127.0.0.9"}
    assert client.get(url + "0.3&classes=dog", environ_overrides=other).status_code == 200
    assert draws.made == [0.3, 0.5, 0.3]


def test_a_process_draws_one_view_at_a_time_and_tells_the_rest_to_try_again(client, auth, app, draws,
                                                                               monkeypatch):
    public_id = photo_with_boxes(client, auth, app)
    draws.state["pause"] = 0.5
    monkeypatch.setattr(viewer, "DRAW_WAIT_SECONDS", 0.2)
    answers = []

    name = app.config["SESSION_COOKIE_NAME"]
    session = client.get_cookie(name).value

    def ask(conf):
        other = app.test_client()
        other.set_cookie(name, session)  # the same signed-in owner, from another browser
        response = other.get(f"/analyses/{public_id}/image/annotated?conf={conf}")
        answers.append((response.status_code, response.headers.get("Retry-After")))

    threads = [threading.Thread(target=ask, args=(c,)) for c in ("0.3", "0.5", "0.95")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert draws.state["most"] == 1
    # the two refused are told to come back soon: a view takes a second or two
    assert sorted(answers, key=lambda a: a[0]) == [(200, None), (503, "2"), (503, "2")]


def test_a_view_asked_for_while_it_is_being_drawn_waits_for_that_drawing(client, auth, app, draws):
    """The page shows a view and its download asks for the same one at once: drawn once, and the
    download is not refused because other views hold every turn."""
    public_id = photo_with_boxes(client, auth, app)
    draws.state["pause"] = 0.5
    url = f"/analyses/{public_id}/image/annotated?conf="
    # the page's view drawing, another view waiting for its turn, then the download
    answers = _ask_together(app, client, {"shown": url + "0.3", "other": url + "0.5", "download": url + "0.3"})
    assert answers["download"] == answers["shown"] and answers["shown"][0] == 200
    assert answers["other"][0] == 200 and sorted(draws.made) == [0.3, 0.5]


def _ask_together(app, client, urls: dict[str, str]) -> dict:
    """Each url asked for by the same signed-in owner from another browser, 0.15 s apart, at once."""
    name = app.config["SESSION_COOKIE_NAME"]
    session = client.get_cookie(name).value
    answers = {}

    def ask(key, url):
        other = app.test_client()
        other.set_cookie(name, session)
        response = other.get(url)
        answers[key] = (response.status_code, len(response.data))

    threads = [threading.Thread(target=ask, args=item) for item in urls.items()]
    for thread in threads:
        thread.start()
        time.sleep(0.15)
    for thread in threads:
        thread.join(30)
    return answers


def test_the_annotated_image_asked_for_while_it_is_being_drawn_waits_for_that_drawing(client, auth, app, draws):
    """The page's "Annotated image" and its download, the slider untouched: drawn once, both sent."""
    public_id = photo_with_boxes(client, auth, app)
    draws.state["pause"] = 0.5
    url = f"/analyses/{public_id}/image/annotated"
    answers = _ask_together(app, client, {"shown": url, "other": url + "?conf=0.5", "download": url + "?download=1"})
    assert answers["download"] == answers["shown"] and answers["shown"][0] == 200
    assert answers["other"][0] == 200 and len(draws.made) == 2


def test_one_request_in_all_waits_for_a_drawing_under_way_so_views_hold_at_most_three_threads(client, auth, app,
                                                                                               draws):
    public_id = photo_with_boxes(client, auth, app)
    draws.state["pause"] = 0.5
    url = f"/analyses/{public_id}/image/annotated?conf="
    answers = _ask_together(app, client, {"a": url + "0.3", "b": url + "0.5", "a again": url + "0.3",
                                          "b again": url + "0.5"})
    assert [answers[k][0] for k in ("a", "b", "a again", "b again")] == [200, 200, 200, 503]


def test_a_run_keeps_its_latest_views_only(client, auth, app, draws, monkeypatch):
    monkeypatch.setattr(viewer, "VIEWS_KEPT", 2)
    public_id = photo_with_boxes(client, auth, app)
    for conf in ("0.3", "0.5", "0.95"):  # both boxes, the cat, none
        client.get(f"/analyses/{public_id}/image/annotated?conf={conf}")
    assert len([p for p in stored_files(app) if p.parent.name == "views"]) == 2


def test_deleting_a_run_removes_its_kept_views(client, auth, app):
    from tests.helpers import post_form

    public_id = photo_with_boxes(client, auth, app)
    post_form(client, f"/analyses/{public_id}/runs", page=f"/analyses/{public_id}")  # a second run
    client.get(f"/analyses/{public_id}/image/annotated?conf=0.3")
    views = [p for p in stored_files(app) if p.parent.name == "views"]
    assert len(views) == 1
    response = post_form(client, f"/analyses/{public_id}/delete-run", page=f"/analyses/{public_id}")
    assert response.status_code in (200, 302), response.status_code
    assert not any(Path(p).exists() for p in views)


def test_confidences_and_classes_that_draw_the_same_boxes_are_one_view(client, auth, app, draws):
    public_id = photo_with_boxes(client, auth, app)  # boxes at 0.9 (cat) and 0.4 (dog)
    url = f"/analyses/{public_id}/image/annotated?"
    for query in ("conf=0.5", "conf=0.500001", "conf=0.6", "conf=0.5&classes=cat", "conf=0.5&classes=cat,zzz"):
        assert client.get(url + query).status_code == 200
    assert len(draws.made) == 1
    assert len([p for p in stored_files(app) if p.parent.name == "views"]) == 1


def test_a_kept_view_removed_while_it_is_read_is_drawn_again_not_sent_empty(client, auth, app, draws):
    public_id = photo_with_boxes(client, auth, app)
    url = f"/analyses/{public_id}/image/annotated?conf=0.3"
    first = client.get(url).data
    [view] = [p for p in stored_files(app) if p.parent.name == "views"]
    view.unlink()  # another request let it go (the run's oldest, or its run deleted)
    again = client.get(url)
    assert again.status_code == 200 and again.data == first
    assert len(draws.made) == 2


def test_a_shared_photo_that_must_be_encoded_again_is_encoded_once_and_kept(client, auth, app, monkeypatch):
    """A stranger's copy of a photo whose file cannot be walked (a PNG cut before its end) is made
    from its pixels: once, then sent as kept, not decoded again for every visitor."""
    from webapp.vision import images

    auth.signup()
    cut = encode(sample(320, 240), "PNG")[:-12]  # no IEND chunk: decodes, but cannot be walked
    upload(client, ("cut.png", cut))
    [run] = analyses(app)
    assert run.status == "done"
    path = share_link(client, run.public_id)
    real, made = images.decode, []
    monkeypatch.setattr(images, "decode", lambda *a, **k: made.append(1) or real(*a, **k))
    anonymous = app.test_client()
    copies = [anonymous.get(path + "/image/original") for _ in range(3)]
    assert [c.status_code for c in copies] == [200, 200, 200]
    assert copies[0].data == copies[1].data == copies[2].data and copies[0].data.startswith(b"\x89PNG")
    assert len(made) == 1


def test_a_shared_view_too_busy_to_draw_says_to_come_back_in_two_seconds(client, auth, app, monkeypatch):
    """The share link's images are rate-limited by flask-limiter, whose headers must not turn the
    drawing turn's `Retry-After: 2` into the limit window's end, nor add one to an image sent."""
    public_id = photo_with_boxes(client, auth, app)
    path = share_link(client, public_id)
    anonymous = app.test_client()
    sent = anonymous.get(path + "/image/annotated")
    assert sent.status_code == 200 and "Retry-After" not in sent.headers
    monkeypatch.setattr(viewer, "_queue_for", lambda turn: False)  # every turn taken, and as many waiting
    busy = anonymous.get(path + "/image/annotated?conf=0.5")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"


# ---- drawn when asked: the annotated image and thumbnail are not made by detection ----

def test_detection_draws_nothing_and_the_annotated_image_is_drawn_once_when_first_asked_for(client, auth, app,
                                                                                             draws):
    from webapp.vision.detector import Box
    from webapp.vision.draw import draw_boxes, encode_jpeg
    from webapp.vision.images import decode

    public_id = photo_with_boxes(client, auth, app)
    assert not [p for p in stored_files(app) if p.name.startswith("annotated")]  # detection drew nothing
    first = client.get(f"/analyses/{public_id}/image/annotated")
    again = client.get(f"/analyses/{public_id}/image/annotated")
    assert first.status_code == again.status_code == 200 and first.data == again.data
    assert draws.made == [0.25]  # once, at the run's own threshold
    assert [p.name for p in stored_files(app) if p.name.startswith("annotated")] == ["annotated.jpg"]
    [run] = analyses(app)
    photo = next(p for p in stored_files(app) if p.name.startswith("original"))
    boxes = [Box(d.class_id, d.label, d.confidence, d.x1, d.y1, d.x2, d.y2) for d in run.detections_at()]
    assert first.data == encode_jpeg(draw_boxes(decode(photo.read_bytes(), 40_000_000).image, boxes))  # as before


def test_the_gallery_shows_annotated_thumbnails_and_plain_ones_when_asked(client, auth, app):
    import cv2
    import numpy as np

    public_id = photo_with_boxes(client, auth, app)
    page = client.get("/analyses").get_data(as_text=True)
    boxed = f"/analyses/{public_id}/image/annotated-thumbnail"
    assert f'src="{boxed}"' in page
    drawn = client.get(boxed)
    plain = client.get(f"/analyses/{public_id}/image/thumbnail")
    assert drawn.status_code == 200 and drawn.mimetype == "image/jpeg"
    framed, bare = (cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_COLOR) for r in (drawn, plain))
    assert framed.shape == bare.shape and np.abs(framed.astype(int) - bare.astype(int)).max() > 100  # frames on it
    client.set_cookie("thumbnails", "plain")
    page = client.get("/analyses").get_data(as_text=True)
    assert f'src="/analyses/{public_id}/image/thumbnail"' in page and f'data-boxed="{boxed}"' in page


def test_the_bulk_zip_has_the_annotated_image_of_a_photo_never_looked_at(client, auth, app):
    import io
    import zipfile

    from tests.helpers import csrf_from

    public_id = photo_with_boxes(client, auth, app)
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    response = client.post("/analyses/bulk", data={"csrf_token": token, "ids": [public_id], "action": "zip"})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert any(name.startswith("annotated/") for name in names), names
