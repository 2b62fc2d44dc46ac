"""Several runs of one photo: re-run with other settings or another model, list, compare, delete
one run or the whole photo; the gallery shows each photo once, with its latest finished run."""
import re
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import V8
from tests.helpers import ApiActions, analyses, csrf_from, delete_photo_elsewhere, stored_files, upload
from tests.images import encode, sample
from tests.factories import add_boxes
from webapp.analyses import uploads
from webapp.library import counts
from webapp.extensions import db
from webapp.models import Run, Photo



@pytest.fixture
def api(client):
    return ApiActions(client).user()


@pytest.fixture
def photo(api, app):
    """One uploaded photo (random-weight model: no boxes), finished; its first run's id."""
    response = api.upload(("photo.png", encode(sample(320, 240), "PNG")), query="?wait=true")
    return response.json["analyses"][0]["id"]


def rerun(api, public_id, **fields):
    return api.client.post(f"/api/v1/analyses/{public_id}/runs?wait=true", data=fields, headers=api.headers)


def test_a_rerun_keeps_the_first_run_and_the_list_shows_the_photo_once(api, app, photo):
    response = rerun(api, photo, conf="0.1", imgsz="320")
    assert response.status_code == 201
    second = response.json["analyses"][0]
    assert second["id"] != photo and second["photo"]["id"] == photo and second["photo"]["runs"] == 2
    assert second["model"]["conf"] == 0.1 and second["model"]["imgsz"] == 320 and second["shown"]
    runs = api.get(f"/api/v1/analyses/{photo}/runs").json["runs"]
    assert [r["id"] for r in runs] == [second["id"], photo]  # newest first
    assert [r["shown"] for r in runs] == [True, False]
    listing = api.get("/api/v1/analyses").json
    assert listing["total"] == 1 and [item["id"] for item in listing["items"]] == [second["id"]]
    assert api.get(f"/api/v1/analyses/{photo}").status_code == 200  # the first run still resolves
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Photo)) == 1
        assert counts.check_counts() == []


def test_each_run_has_its_own_annotated_image(api, app, photo):
    second = rerun(api, photo, conf="0.1").json["analyses"][0]
    for run in (photo, second["id"]):  # drawn when first asked for
        assert api.get(f"/api/v1/analyses/{run}/image?variant=annotated").status_code == 200
    names = sorted(p.name for p in stored_files(app))
    assert names == sorted(["original.png", "thumbnail.jpg", "annotated.jpg", f"annotated-{second['id']}.jpg"])


def test_deleting_a_run_keeps_the_photo_and_shows_the_other_run_again(api, app, photo):
    second = rerun(api, photo, conf="0.1").json["analyses"][0]["id"]
    assert api.delete(f"/api/v1/analyses/{photo}/runs/{second}").status_code == 204
    assert [a.public_id for a in analyses(app)] == [photo] and analyses(app)[0].current
    assert "annotated-" not in " ".join(p.name for p in stored_files(app))
    assert api.get(f"/api/v1/analyses/{second}").status_code == 404
    with app.app_context():
        assert counts.check_counts() == []


def test_the_photo_id_finds_the_photo_after_its_first_run_is_deleted(api, client, photo):
    second = rerun(api, photo, conf="0.1").json["analyses"][0]["id"]
    assert api.delete(f"/api/v1/analyses/{photo}/runs/{photo}").status_code == 204
    found = api.get(f"/api/v1/analyses/{photo}")
    assert found.status_code == 200 and found.json["id"] == second and found.json["photo"]["id"] == photo
    assert [r["id"] for r in api.get(f"/api/v1/analyses/{photo}/runs").json["runs"]] == [second]
    gone = api.delete(f"/api/v1/analyses/{photo}/runs/{photo}")
    assert gone.status_code == 404 and gone.json["detail"] == "This run does not exist, or it was deleted."
    assert api.get(f"/api/v1/analyses/{photo}/image?variant=original").status_code == 200


def test_someone_elses_photo_id_is_not_found_after_its_first_run_is_deleted(api, app, photo):
    rerun(api, photo, conf="0.1")
    assert api.delete(f"/api/v1/analyses/{photo}/runs/{photo}").status_code == 204
    other = ApiActions(app.test_client()).user("eve@example.com")
    assert other.get(f"/api/v1/analyses/{photo}").status_code == 404


def test_the_only_run_cannot_be_deleted_on_its_own(api, photo):
    response = api.delete(f"/api/v1/analyses/{photo}/runs/{photo}")
    assert response.status_code == 409 and "delete the photo instead" in response.json["detail"]


def test_deleting_the_photo_for_good_deletes_every_run_and_file(api, app, photo):
    second = rerun(api, photo, conf="0.1").json["analyses"][0]["id"]
    assert api.delete(f"/api/v1/analyses/{second}?permanent=true").status_code == 204
    assert analyses(app) == [] and stored_files(app) == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Photo)) == 0
        assert counts.check_counts() == []


def test_someone_elses_runs_are_not_found(api, app, photo, client):
    other = ApiActions(app.test_client()).user("eve@example.com")
    assert other.get(f"/api/v1/analyses/{photo}/runs").status_code == 404
    assert rerun(other, photo).status_code == 404
    mine = other.upload(("mine.png", encode(sample(), "PNG")), query="?wait=true").json["analyses"][0]["id"]
    assert other.delete(f"/api/v1/analyses/{mine}/runs/{photo}").status_code == 404  # not a run of her photo
    assert len(analyses(app)) == 2


def test_a_rerun_with_an_unknown_model_or_past_the_limit_is_refused(api, app, photo):
    assert rerun(api, photo, model="nope").status_code == 422
    app.config["MAX_RUNS_PER_PHOTO"] = 2
    assert rerun(api, photo).status_code == 201
    refused = rerun(api, photo)
    assert refused.status_code == 409 and "already has 2 runs" in refused.json["detail"]
    assert len(analyses(app)) == 2


def test_label_search_follows_the_run_the_gallery_shows(app, client, auth):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    add_boxes(app, first.public_id, [("cat", 15, 0.9, (1, 1, 50, 50))])
    token = csrf_from(client.get(f"/analyses/{first.public_id}").get_data(as_text=True))
    response = client.post(f"/analyses/{first.public_id}/runs", data={"csrf_token": token, "conf": "0.3"})
    second = response.headers["Location"].rsplit("/", 1)[1]
    assert "cat" in client.get("/analyses?label=cat").get_data(as_text=True)
    with app.app_context():  # the new run (finished, nothing found by random weights) found a dog
        run = db.session.scalar(sa.select(Run).where(Run.public_id == second))
        assert run.current and run.is_done
    add_boxes(app, second, [("dog", 16, 0.9, (1, 1, 50, 50))])
    with app.app_context():
        assert counts.check_counts() == []
    gallery = client.get("/analyses?label=dog").get_data(as_text=True)
    assert f"analysis-{second}" in gallery
    assert "No photo matches" in client.get("/analyses?label=cat").get_data(as_text=True)
    assert client.get("/analyses").get_data(as_text=True).count('class="tile status-') == 1


def test_the_detail_page_lists_runs_and_compares_two_side_by_side(app, client, auth):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    add_boxes(app, first.public_id, [("cat", 15, 0.9, (1, 1, 50, 50)), ("dog", 16, 0.9, (60, 60, 90, 90))])
    page = client.get(f"/analyses/{first.public_id}").get_data(as_text=True)
    assert "Runs of this photo" in page and 'name="conf" id="rerun-conf"' in page and 'value="0.25"' in page
    response = client.post(f"/analyses/{first.public_id}/runs", data={"csrf_token": csrf_from(page), "conf": "0.1"})
    second = response.headers["Location"].rsplit("/", 1)[1]
    add_boxes(app, second, [("dog", 16, 0.9, (60, 60, 90, 90)), ("dog", 16, 0.5, (1, 1, 9, 9))])
    page = client.get(f"/analyses/{second}").get_data(as_text=True)
    assert page.count("<tr") >= 3 and f"/analyses/{second}/compare/{first.public_id}" in page
    compare = " ".join(client.get(f"/analyses/{second}/compare/{first.public_id}").get_data(as_text=True).split())
    assert re.search(r'<tr data-label="cat"><td><svg class="swatch"[^>]*><rect [^>]*fill="#', compare)
    # A is the earlier run (cat, dog), B the later one (two dogs), whichever page it was opened from
    assert re.search(r'data-label="cat">.*?<td>1</td><td>0</td> <td class="diff fewer">-1</td>', compare)
    assert re.search(r'data-label="dog">.*?<td>1</td><td>2</td> <td class="diff more">\+1</td>', compare)


def test_runs_of_two_photos_do_not_compare(app, client, auth):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    upload(client, ("q.png", encode(sample(321, 240), "PNG")))
    one, two = analyses(app)
    assert client.get(f"/analyses/{one.public_id}/compare/{two.public_id}").status_code == 404


def test_deleting_a_run_from_its_page_goes_to_the_run_the_photo_shows(app, client, auth):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    token = csrf_from(client.get(f"/analyses/{first.public_id}").get_data(as_text=True))
    second = client.post(f"/analyses/{first.public_id}/runs", data={"csrf_token": token}).headers["Location"]
    second = second.rsplit("/", 1)[1]
    response = client.post(f"/analyses/{second}/delete-run", data={"csrf_token": token})
    assert response.headers["Location"] == f"/analyses/{first.public_id}"
    only = client.post(f"/analyses/{first.public_id}/delete-run", data={"csrf_token": token})
    assert only.headers["Location"] == f"/analyses/{first.public_id}"
    assert "only run" in client.get(f"/analyses/{first.public_id}").get_data(as_text=True)
    assert len(analyses(app)) == 1


def test_a_stale_page_of_a_deleted_first_run_acts_on_no_other_run(app, client, auth):
    """The photo's id finds the run it shows for reading, but deleting, retrying or sharing
    "that run" from a page left open must not hit another one."""
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    token = csrf_from(client.get(f"/analyses/{first.public_id}").get_data(as_text=True))
    for conf in ("0.2", "0.3"):
        client.post(f"/analyses/{first.public_id}/runs", data={"csrf_token": token, "conf": conf})
    assert client.post(f"/analyses/{first.public_id}/delete-run", data={"csrf_token": token}).status_code == 302
    left = sorted(a.public_id for a in analyses(app))
    assert len(left) == 2 and first.public_id not in left
    for action in ("delete-run", "retry", "share"):
        response = client.post(f"/analyses/{first.public_id}/{action}", data={"csrf_token": token, "expires": "1d"})
        assert response.status_code == 404, action
    assert sorted(a.public_id for a in analyses(app)) == left
    assert client.get(f"/analyses/{first.public_id}").status_code == 200  # reading finds the photo


def test_bulk_rerun_queues_a_new_run_of_each_selected_photo(app, client, auth):
    auth.signup()
    for i in range(3):
        upload(client, (f"p{i}.png", encode(sample(320 + i, 240), "PNG")))
    chosen = [a.public_id for a in analyses(app)[:2]]
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    client.post("/analyses/bulk", data={"csrf_token": token, "action": "rerun", "model": "default", "ids": chosen})
    runs = Counter(a.photo_id for a in analyses(app))
    assert sorted(runs.values()) == [1, 2, 2]
    assert "Running 2 photos again" in client.get("/analyses").get_data(as_text=True)


@pytest.mark.real_model
def test_a_rerun_with_another_model_at_a_lower_confidence_finds_more(make_app, coco_model, assets):
    if not Path(V8).exists():
        pytest.skip(f"{V8} not found")
    app = make_app(YOLO_MODEL=coco_model, YOLO_MODELS=f"v8={V8}")
    api = ApiActions(app.test_client()).user()
    first = api.upload(("bus.jpg", (assets / "bus.jpg").read_bytes()), query="?wait=true").json["analyses"][0]
    second = rerun(api, first["id"], model="v8", conf="0.1").json["analyses"][0]
    assert second["model"]["key"] == "v8" and second["model"]["name"] == "yolov8n_dynamic_quantized.onnx"
    assert sum(second["labels"].values()) > sum(first["labels"].values())
    assert api.get("/api/v1/analyses").json["items"][0]["labels"] == second["labels"]
    with app.app_context():
        assert counts.check_counts() == []


def test_previous_and_next_from_another_run_step_to_other_photos(app, client, auth):
    auth.signup()
    for i in range(3):
        upload(client, (f"p{i}.png", encode(sample(320 + i, 240), "PNG")))
    older, middle, newer = analyses(app)
    token = csrf_from(client.get(f"/analyses/{middle.public_id}").get_data(as_text=True))
    rerun_url = client.post(f"/analyses/{middle.public_id}/runs", data={"csrf_token": token}).headers["Location"]
    page = client.get(rerun_url).get_data(as_text=True)
    assert f'href="/analyses/{newer.public_id}" title="p2.png' in page  # previous: the newer photo
    assert f'href="/analyses/{older.public_id}" title="p0.png' in page  # next: the older one


def test_two_runs_deleted_at_once_leave_the_photo_one_shown_run(api, app, photo):
    """Each delete checks 'not the only run' under the photo's lock (on SQLite, its write lock)."""
    import threading

    from webapp.analyses import removal

    for attempt in range(3):
        second = rerun(api, photo, conf="0.1").json["analyses"][0]["id"]
        ids = [r.public_id for r in analyses(app)]
        barrier, outcomes = threading.Barrier(2), []

        def delete(public_id, barrier=barrier, outcomes=outcomes):
            with app.app_context():
                run = db.session.scalar(sa.select(Run).where(Run.public_id == public_id))
                barrier.wait()
                try:
                    removal.delete_run(run)
                    outcomes.append("deleted")
                except removal.OnlyRun:
                    outcomes.append("only run")
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=delete, args=(public_id,)) for public_id in ids]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert sorted(outcomes) == ["deleted", "only run"], (attempt, outcomes)
        rows = analyses(app)
        assert len(rows) == 1 and rows[0].current
        photo = rows[0].public_id
        with app.app_context():
            assert counts.check_counts() == []
    assert second  # runs were made each time


def test_the_count_check_finds_a_photo_without_a_shown_run(api, app, photo):
    with app.app_context():
        db.session.execute(sa.update(Run).values(current=False))
        db.session.commit()
        assert any("0 shown" in line for line in counts.check_counts())


def test_a_run_asked_for_with_json_or_in_the_query_is_refused(api, app, photo):
    as_json = api.client.post(f"/api/v1/analyses/{photo}/runs", json={"model": "default", "conf": 0.1},
                              headers=api.headers)
    assert as_json.status_code == 415
    in_query = api.client.post(f"/api/v1/analyses/{photo}/runs?conf=0.1", headers=api.headers)
    assert in_query.status_code == 422 and "conf" in in_query.json["detail"]
    assert len(analyses(app)) == 1


def test_a_failure_is_written_even_for_a_run_deleted_meanwhile(app):
    from webapp.jobs import pipeline

    with app.app_context():
        assert pipeline._give_up(123456, "nothing/annotated.jpg", "gone") is False


def _deleted_by_another_request_first(app, monkeypatch, name, public_id):
    """`uploads.<name>` deletes the photo from another request (thread) before doing its work:
    the photo goes between a new run's commit and the answer."""

    original = getattr(uploads, name)

    def delete_then(*args, **kwargs):
        delete_photo_elsewhere(app, public_id)
        return original(*args, **kwargs)

    monkeypatch.setattr(uploads, name, delete_then, raising=True)


def test_a_rerun_whose_photo_is_deleted_as_it_is_queued_is_not_found(api, app, photo, monkeypatch):
    _deleted_by_another_request_first(app, monkeypatch, "FairShare", photo)
    response = rerun(api, photo, conf="0.1")
    assert response.status_code == 404 and response.json["title"]
    assert analyses(app) == [] and stored_files(app) == []


def test_a_run_again_form_whose_photo_is_deleted_as_it_is_queued_is_no_error(app, client, auth, monkeypatch):
    auth.signup()
    upload(client, ("p.png", encode(sample(320, 240), "PNG")))
    [first] = analyses(app)
    token = csrf_from(client.get(f"/analyses/{first.public_id}").get_data(as_text=True))
    _deleted_by_another_request_first(app, monkeypatch, "FairShare", first.public_id)
    response = client.post(f"/analyses/{first.public_id}/runs", data={"csrf_token": token})
    assert response.status_code in (302, 404)
    assert analyses(app) == [] and stored_files(app) == []


def test_an_upload_deleted_while_the_caller_waits_is_not_found(api, app, monkeypatch):
    from webapp.analyses import uploads

    original = uploads.Queued.wait

    def deleted_meanwhile(result, timeout):
        finished = original(result, timeout)
        delete_photo_elsewhere(app, analyses(app)[0].public_id)
        return finished

    monkeypatch.setattr(uploads.Queued, "wait", deleted_meanwhile)
    response = api.upload(("photo.png", encode(sample(320, 240), "PNG")), query="?wait=true")
    assert response.status_code == 404 and "deleted" in response.json["detail"]
    assert analyses(app) == [] and stored_files(app) == []
