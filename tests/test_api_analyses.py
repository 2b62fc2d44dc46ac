"""The analyses API: upload, list, read, delete, images, exports, ownership."""
import csv
import io
import json
import zipfile

import pytest

from tests.factories import add_analysis
from tests.helpers import ApiActions, analyses, break_function, stored_files
from tests.images import encode, sample


@pytest.fixture
def photo(api):
    """A finished analysis of a small PNG made through the API (random-weight model)."""
    api.user()
    response = api.upload(("photo.png", encode(sample(), "PNG")), query="?wait=true")
    assert response.status_code == 201, response.json
    return response.json["analyses"][0]


@pytest.fixture
def bus(api, assets):
    """A finished analysis of bus.jpg made through the API (use with `real_model`)."""
    api.user()
    response = api.upload(("bus.jpg", (assets / "bus.jpg").read_bytes()), query="?wait=true")
    assert response.status_code == 201, response.json
    return response.json["analyses"][0]


@pytest.mark.real_model
def test_upload_with_wait_answers_201_with_the_finished_analysis(api, bus):
    assert bus["status"] == "done"
    names = [d["name"] for d in bus["detections"]]
    assert "bus" in names and names.count("person") >= 4
    assert set(bus["detections"][0]) == {"name", "class", "confidence", "box"}
    assert set(bus["detections"][0]["box"]) == {"x1", "y1", "x2", "y2"}
    assert bus["width"] == 810 and bus["height"] == 1080
    assert bus["model"]["conf"] == 0.25 and bus["timings"]["inference_ms"] > 0


def test_upload_answers_202_and_location_without_wait(make_app):
    app = make_app(ANALYSIS_EXECUTOR="thread")
    api = ApiActions(app.test_client()).user()
    response = api.upload(("photo.png", encode(sample(), "PNG")))
    assert response.status_code == 202
    assert response.headers["Location"] == response.json["analyses"][0]["urls"]["self"]
    from webapp.jobs.scheduling import get_runner

    assert get_runner(app).wait(timeout=120)
    assert api.get(response.headers["Location"]).json["status"] == "done"


@pytest.mark.real_model
def test_upload_parameters_are_used(api, assets):
    api.user()
    response = api.upload(("bus.jpg", (assets / "bus.jpg").read_bytes()), query="?wait=true",
                          conf="0.5", iou="0.5", imgsz="640", classes="person")
    analysis = response.json["analyses"][0]
    assert analysis["model"] == {**analysis["model"], "conf": 0.5, "iou": 0.5, "imgsz": 640, "classes": ["person"]}
    assert {d["name"] for d in analysis["detections"]} == {"person"}
    assert all(d["confidence"] >= 0.5 for d in analysis["detections"])


@pytest.mark.parametrize("fields, message", [
    ({"conf": "2"}, "conf"), ({"imgsz": "abc"}, "imgsz"), ({"classes": "unicorn"}, "No class named unicorn."),
])
def test_invalid_upload_parameters_are_422_and_store_nothing(api, app, fields, message):
    api.user()
    response = api.upload(("p.png", encode(sample(), "PNG")), **fields)
    assert response.status_code == 422 and message in response.json["detail"]
    assert analyses(app) == [] and stored_files(app) == []


def test_rejected_files_are_reported_per_file_and_nothing_is_stored_for_them(api, app):
    api.user()
    response = api.upload(("notes.jpg", b"not an image"), ("photo.png", encode(sample(), "PNG")),
                          query="?wait=true")
    assert response.status_code == 201
    assert response.json["rejected"] == [{"filename": "notes.jpg", "reason": response.json["rejected"][0]["reason"]}]
    assert "not an image" in response.json["rejected"][0]["reason"]
    assert [a.photo.original_filename for a in analyses(app)] == ["photo.png"]


def test_an_upload_with_only_bad_files_is_422(api, app):
    api.user()
    response = api.upload(("a.svg", b"<svg/>"), ("b.txt", b"hello"))
    assert response.status_code == 422
    assert [r["filename"] for r in response.json["rejected"]] == ["a.svg", "b.txt"]
    assert analyses(app) == [] and stored_files(app) == []


def test_an_upload_without_files_is_422(api):
    api.user()
    response = api.client.post("/api/v1/analyses", headers=api.headers, data={})
    assert response.status_code == 422


def test_too_large_upload_is_a_413_problem(make_app):
    app = make_app(MAX_CONTENT_LENGTH=10_000)
    api = ApiActions(app.test_client()).user()
    response = api.upload(("big.bmp", encode(sample(), "BMP") * 10))
    assert response.status_code == 413 and response.mimetype == "application/problem+json"


def test_list_is_newest_first_and_next_links_walk_it_by_cursor(api, app):
    api.user()
    ids = [add_analysis(app, labels=[("dog" if i % 2 else "cat", 0.9)]).public_id for i in range(5)]
    seen, url = [], "/api/v1/analyses?per_page=2"
    while url:
        page = api.get(url).json
        assert page["total"] == 5 and page["pages"] == 3 and len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        url = page["next"]
        assert url is None or "cursor=" in url
    assert seen == ids[::-1]


def test_page_still_works_as_an_alias(api, app):
    api.user()
    ids = [add_analysis(app).public_id for _ in range(5)]
    assert [i["id"] for i in api.get("/api/v1/analyses?page=2&per_page=2").json["items"]] == ids[::-1][2:4]
    assert api.get("/api/v1/analyses?page=102").status_code == 422  # deeper: follow `next`


def test_list_filters_by_label_and_keeps_the_total_where_it_is_counted(api, app):
    api.user()
    for i in range(5):
        add_analysis(app, labels=[("dog" if i % 2 else "cat", 0.9)])
    dogs = api.get("/api/v1/analyses?label=dog").json
    assert dogs["total"] == 2 and all(i["labels"] == {"dog": 1} for i in dogs["items"])
    failed = api.get("/api/v1/analyses?status=failed").json
    assert failed["items"] == [] and failed["total"] is None and failed["pages"] is None


def test_list_filters_by_several_labels_dates_and_order(api, app):
    from datetime import datetime, timezone

    api.user()
    day = lambda d: datetime(2026, 3, d, 12, tzinfo=timezone.utc)  # noqa: E731
    both = add_analysis(app, labels=[("dog", 0.9), ("person", 0.8)], created_at=day(2)).public_id
    add_analysis(app, labels=[("dog", 0.9)], created_at=day(3))
    later = add_analysis(app, labels=[("dog", 0.9), ("person", 0.7)], created_at=day(20)).public_id
    assert [i["id"] for i in api.get("/api/v1/analyses?label=dog&label=person").json["items"]] == [later, both]
    oldest = api.get("/api/v1/analyses?label=dog&label=person&sort=oldest").json["items"]
    assert [i["id"] for i in oldest] == [both, later]
    march = api.get("/api/v1/analyses?label=person&from=2026-03-01&to=2026-03-10").json
    assert [i["id"] for i in march["items"]] == [both] and march["total"] is None


def test_a_cursor_that_was_not_made_here_is_422(api):
    api.user()
    assert api.get("/api/v1/analyses?cursor=not-a-cursor").status_code == 422


@pytest.mark.parametrize("query", ["per_page=1000", "page=0", "status=lost", "per_page=x"])
def test_bad_list_parameters_are_422(api, query):
    api.user()
    assert api.get(f"/api/v1/analyses?{query}").status_code == 422


@pytest.mark.real_model
def test_min_conf_filters_detections(api, bus):
    low = api.get(f"/api/v1/analyses/{bus['id']}?min_conf=0.05").json["detections"]
    high = api.get(f"/api/v1/analyses/{bus['id']}?min_conf=0.8").json["detections"]
    assert len(low) > len(bus["detections"]) > len(high) > 0
    assert all(d["confidence"] >= 0.8 for d in high)


def test_delete_permanent_removes_rows_and_files(api, app, photo):
    assert api.delete(f"/api/v1/analyses/{photo['id']}?permanent=true").status_code == 204
    assert analyses(app) == [] and stored_files(app) == []
    assert api.get(f"/api/v1/analyses/{photo['id']}").status_code == 404
    assert api.get("/api/v1/trash").json == {"items": [], "total": 0}


def test_delete_with_a_permanent_that_is_not_a_boolean_is_refused(api, app, photo):
    response = api.delete(f"/api/v1/analyses/{photo['id']}?permanent=maybe")
    assert response.status_code == 422 and "permanent" in response.get_data(as_text=True)
    assert len(analyses(app)) == 1 and analyses(app)[0].photo.trashed_at is None


@pytest.mark.parametrize("variant, mimetype", [
    ("original", "image/png"), ("annotated", "image/jpeg"), ("thumbnail", "image/jpeg"),
])
def test_images_by_variant(api, photo, variant, mimetype):
    response = api.get(f"/api/v1/analyses/{photo['id']}/image?variant={variant}")
    assert response.status_code == 200 and response.mimetype == mimetype


def test_images_are_cached_privately_never_publicly(api, photo):
    response = api.get(f"/api/v1/analyses/{photo['id']}/image")
    directives = {d.strip() for d in response.headers["Cache-Control"].split(",")}
    assert "private" in directives and "public" not in directives


def test_unknown_image_variant_is_422(api, photo):
    assert api.get(f"/api/v1/analyses/{photo['id']}/image?variant=raw").status_code == 422


@pytest.mark.real_model
def test_export_json(api, bus):
    body = api.get(f"/api/v1/analyses/{bus['id']}/export?format=json").json
    assert body["images"][0]["detections"] == bus["detections"]


@pytest.mark.real_model
def test_export_coco_loads_in_pycocotools(api, bus, tmp_path):
    from pycocotools.coco import COCO

    response = api.get(f"/api/v1/analyses/{bus['id']}/export?format=coco")
    path = tmp_path / "coco.json"
    path.write_bytes(response.data)
    coco = COCO(str(path))
    names = {c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert {"bus", "person"} <= names
    assert len(coco.getAnnIds()) == len(bus["detections"])
    x, y, w, h = coco.loadAnns(coco.getAnnIds())[0]["bbox"]
    assert w > 0 and h > 0


@pytest.mark.real_model
def test_export_yolo_is_normalised_xywh(api, bus):
    text = api.get(f"/api/v1/analyses/{bus['id']}/export?format=yolo").get_data(as_text=True)
    lines = [line.split() for line in text.strip().splitlines()]
    assert len(lines) == len(bus["detections"])
    for cls, *xywh in lines:
        assert int(cls) in (0, 5) and all(0 <= float(v) <= 1 for v in xywh)


@pytest.mark.real_model
def test_export_csv_has_a_header_row(api, bus):
    text = api.get(f"/api/v1/analyses/{bus['id']}/export?format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(bus["detections"]) and rows[0]["analysis_id"] == bus["id"]
    assert set(rows[0]) >= {"label", "confidence", "x1", "y1", "x2", "y2"}


def test_bulk_export_is_filtered_by_label(api, app):
    api.user()
    add_analysis(app, labels=[("dog", 0.9)])
    add_analysis(app, labels=[("cat", 0.9)])
    body = api.get("/api/v1/analyses/export?format=json&label=dog").json
    assert [d["name"] for image in body["images"] for d in image["detections"]] == ["dog"]
    archive = zipfile.ZipFile(io.BytesIO(api.get("/api/v1/analyses/export?format=yolo").data))
    assert "classes.txt" in archive.namelist() and len([n for n in archive.namelist() if n.startswith("labels/")]) == 2
    coco = json.loads(api.get("/api/v1/analyses/export?format=coco").data)
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2


def test_unknown_export_format_is_422(api, photo):
    assert api.get(f"/api/v1/analyses/{photo['id']}/export?format=xml").status_code == 422


ROUTES = [
    ("GET", "/api/v1/analyses/{id}"),
    ("DELETE", "/api/v1/analyses/{id}"),
    ("GET", "/api/v1/analyses/{id}/image"),
    ("GET", "/api/v1/analyses/{id}/image?variant=original"),
    ("GET", "/api/v1/analyses/{id}/export"),
    ("GET", "/api/v1/analyses/{id}/export?format=coco"),
]


@pytest.mark.parametrize("method, route", ROUTES)
def test_someone_elses_analysis_is_404_like_a_missing_one(api, app, method, route):
    api.user()
    mine = add_analysis(app, labels=[("dog", 0.9)])
    eve = ApiActions(app.test_client()).user("eve@example.com")
    theirs = eve.client.open(route.format(id=mine.public_id), method=method, headers=eve.headers)
    missing = eve.client.open(route.format(id="f" * 32), method=method, headers=eve.headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json == missing.json
    assert len(analyses(app)) == 1


def test_others_analyses_are_not_listed_or_exported(api, app):
    api.user()
    add_analysis(app, labels=[("dog", 0.9)])
    eve = ApiActions(app.test_client()).user("eve@example.com")
    assert eve.get("/api/v1/analyses").json["total"] == 0
    assert eve.get("/api/v1/analyses/export?format=json").json == {"images": []}


@pytest.mark.parametrize("method, url", [
    ("GET", "/api/v1/nothing-here"), ("PUT", "/api/v1/me"), ("GET", "/api/v1/analyses/x/y/z"),
])
def test_api_errors_are_problem_json_never_html(api, method, url):
    api.user()
    response = api.client.open(url, method=method, headers=api.headers)
    assert response.status_code in (404, 405)
    assert response.mimetype == "application/problem+json"
    assert set(response.json) >= {"type", "title", "status", "detail"}


def test_cors_is_off_by_default(api):
    api.user()
    response = api.client.options("/api/v1/me", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_configured_origins_on_the_api_only(make_app):
    app = make_app(CORS_ORIGINS="https://app.example")
    client = app.test_client()
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    assert client.options("/api/v1/me", headers=headers).headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Access-Control-Allow-Origin" not in client.get("/login", headers={"Origin": "https://app.example"}).headers


def test_an_unexpected_error_is_a_500_problem_and_rolls_back(api, app, monkeypatch):
    api.user()
    break_function(monkeypatch, "webapp.analyses.listing.labels_of")
    response = api.get("/api/v1/analyses")
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    assert "boom" not in response.get_data(as_text=True)
    assert api.get("/api/v1/me").status_code == 200


def test_repeated_class_names_are_kept_once(api, app):
    api.user()
    response = api.upload(("p.png", encode(sample(), "PNG")), classes="0, 1,0", query="?wait=true")
    assert response.json["analyses"][0]["model"]["classes"] == ["0", "1"]


@pytest.mark.parametrize("width, height", [(40_000_000, 1), (1, 70_000), (65_536, 100), (65_501, 1)])
def test_a_photo_wider_or_taller_than_65500_px_is_refused_at_upload_and_nothing_is_stored(api, app, width, height):
    from tests.helpers import analyses, stored_files
    from tests.images import png_declaring

    api.user()
    response = api.upload(("long.png", png_declaring(width, height)))
    assert response.status_code == 422, response.json
    [rejected] = response.json["rejected"]
    assert "65,500" in rejected["reason"] and f"{width}×{height}" in rejected["reason"]
    assert analyses(app) == [] and stored_files(app) == []
