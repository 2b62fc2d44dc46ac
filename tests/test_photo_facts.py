"""What a photo says about itself: its date taken orders the gallery and the API (upload time
where it says none), its camera shows on its page, and its location (with every other piece of
identifying metadata) stays in its owner's account: shared pages, their images and exports carry
none of it. And the input size a run records is the one the model really ran at."""
import io
import json
import struct
import zipfile
import zlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageCms

from tests import factories
from tests.helpers import ApiActions, analyses, share_link, upload
from tests.images import encode, sample, with_orientation
from webapp.extensions import db
from webapp.vision.images import decode

OWNER_SECRETS = (b"ada@example.com", b"Ada Lovelace", b"SN123456", b"Canon")


def exif_photo(taken="2016:07:14 18:03:21", offset="+02:00", gps=True, fmt="JPEG", orientation=1,
               size=(96, 64)) -> bytes:
    """A photo with a date taken, a camera, an owner's name and email, a serial number and a
    position (48.858 N, 2.294 W), as a phone or camera writes them."""
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"  # Artist
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D"
    details = {0xA431: "SN123456", 0x9286: b"ASCII\x00\x00\x00ada@example.com"}  # serial, UserComment
    if taken:
        details[0x9003] = taken
    if offset:
        details[0x9011] = offset
    exif[0x8769] = details
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.5), 3: "W", 4: (2.0, 17.0, 40.0)}
    if orientation != 1:
        exif[0x0112] = orientation
    image = sample(*size)
    if orientation == 6:
        image = image.transpose(Image.Transpose.ROTATE_90)
    return encode(image, fmt, exif=exif.tobytes())


# ---- location and identifying metadata ----

@pytest.mark.parametrize("orientation", [1, 6])
def test_a_shared_photo_carries_no_location_or_identifying_metadata_and_the_owner_keeps_all(
        app, client, auth, orientation):
    auth.signup()
    data = exif_photo(orientation=orientation)
    assert upload(client, ("holiday.jpg", data)).status_code < 400
    [run] = analyses(app)
    link = share_link(client, run.public_id)
    owner_copy = client.get(f"/analyses/{run.public_id}/image/original?download=1").data
    assert owner_copy == data  # the owner's download: every byte, location included

    anonymous = app.test_client()
    public = anonymous.get(f"{link}/image/original")
    assert public.status_code == 200
    assert dict(Image.open(io.BytesIO(public.data)).getexif()) == {}, "no EXIF at all"
    for secret in OWNER_SECRETS:
        assert secret not in public.data
    shared, owned = decode(public.data, 10**8).pixels, decode(data, 10**8).pixels
    if orientation == 1:  # the original's own coded pixels, metadata blocks left out
        assert np.array_equal(shared, owned)
    else:  # the upright rendition the owner's pages show too
        assert shared.shape == owned.shape and np.abs(shared.astype(int) - owned).mean() < 2
    page = anonymous.get(link).text
    for words in ("holiday", "Canon", "location", "48.85", "Ada"):
        assert words not in page
    annotated = anonymous.get(f"{link}/image/annotated")
    assert annotated.status_code in (200, 404) and b"SN123456" not in annotated.data


def test_the_owner_sees_the_camera_and_that_the_photo_has_a_location(app, client, auth):
    api = ApiActions(client).user()
    auth.login()
    body = api.upload(("holiday.jpg", exif_photo())).json["analyses"][0]
    assert body["photo"]["camera"] == {"make": "Canon", "model": "Canon EOS 5D"}
    assert body["photo"]["has_location"] is True
    page = client.get(f"/analyses/{body['id']}").text
    assert "Canon EOS 5D" in page and "has a location (48.85819, -2.29444)" in page


def test_exports_leave_the_location_out_unless_asked(app, client):
    api = ApiActions(client).user()
    public_id = api.upload(("holiday.jpg", exif_photo())).json["analyses"][0]["id"]
    plain = api.get("/api/v1/analyses/export?format=coco").json
    assert "location" not in plain["images"][0]
    asked = api.get("/api/v1/analyses/export?format=coco&location=true").json
    assert asked["images"][0]["location"] == pytest.approx({"latitude": 48.858194, "longitude": -2.294444}, abs=1e-5)
    dataset = api.get("/api/v1/analyses/export?format=yolo")
    with zipfile.ZipFile(io.BytesIO(dataset.data)) as archive:
        [image] = [n for n in archive.namelist() if n.startswith("images/")]
        shipped = archive.read(image)
    for secret in OWNER_SECRETS:
        assert secret not in shipped, "a dataset's images carry no metadata"
    assert public_id in image


# ---- date taken ----

def upload_dated(api, *names_and_dates):
    files = [(name, exif_photo(taken=taken, offset=None, gps=False) if taken else encode(sample(), "JPEG"))
             for name, taken in names_and_dates]
    response = api.upload(*files)
    assert response.status_code == 202, response.json
    return response


def test_the_api_orders_by_date_taken_by_default_and_by_upload_when_asked(app, client):
    api = ApiActions(client).user()
    upload_dated(api, ("2014.jpg", "2014:03:01 09:00:00"), ("now.jpg", None), ("2019.jpg", "2019:12:31 23:30:00"),
                 ("2016.jpg", "2016:07:14 18:03:21"))
    taken = [item["filename"] for item in api.get("/api/v1/analyses").json["items"]]
    assert taken == ["now.jpg", "2019.jpg", "2016.jpg", "2014.jpg"]
    oldest = [item["filename"] for item in api.get("/api/v1/analyses?sort=oldest").json["items"]]
    assert oldest == taken[::-1]
    uploaded = [item["filename"] for item in api.get("/api/v1/analyses?by=uploaded&sort=oldest").json["items"]]
    assert uploaded == ["2014.jpg", "now.jpg", "2019.jpg", "2016.jpg"]
    in_2016 = api.get("/api/v1/analyses?from=2016-01-01&to=2016-12-31").json["items"]
    assert [item["filename"] for item in in_2016] == ["2016.jpg"]
    item = next(i for i in api.get("/api/v1/analyses").json["items"] if i["filename"] == "2019.jpg")
    assert item["taken_at"] == "2019-12-31T23:30:00" and item["photo"]["taken_from"] == "exif"
    now = next(i for i in api.get("/api/v1/analyses").json["items"] if i["filename"] == "now.jpg")
    assert now["photo"]["taken_from"] == "upload" and now["taken_at"].endswith("+00:00")


def test_a_camera_offset_is_kept_in_the_date_taken(app, client):
    api = ApiActions(client).user()
    body = api.upload(("paris.jpg", exif_photo(offset="+02:00"))).json["analyses"][0]
    assert body["taken_at"] == "2016-07-14T18:03:21+02:00"
    assert datetime.fromisoformat(body["uploaded_at"]).year >= 2026


@pytest.mark.parametrize("by", ["taken", "uploaded"])
def test_both_orders_page_by_cursor_without_gaps_or_repeats_across_equal_dates(app, client, by):
    same_upload = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    with app.app_context():
        owner = factories.user()
        for i in range(7):
            factories.analysis(owner, created_at=same_upload + timedelta(seconds=i // 3),
                               taken_at=datetime(2015, 1, 1, 8) + timedelta(hours=i // 4))
        ids = set(db.session.scalars(sa.text("SELECT public_id FROM analysis")))
    api = ApiActions(client)
    api.login()
    for sort in ("newest", "oldest"):
        seen, url = [], f"/api/v1/analyses?per_page=2&by={by}&sort={sort}"
        while url:
            body = api.get(url).json
            assert "items" in body, (url, body)
            seen += [item["id"] for item in body["items"]]
            url = body["next"]
        assert len(seen) == len(set(seen)) == 7 and set(seen) == ids, (sort, seen)


def test_a_cursor_of_one_order_is_refused_by_the_other(app, client):
    api = ApiActions(client).user()
    upload_dated(api, *[(f"{i}.jpg", f"201{i}:01:01 00:00:00") for i in range(3)])
    cursor = api.get("/api/v1/analyses?per_page=1").json["next"].split("cursor=")[1]
    assert api.get(f"/api/v1/analyses?per_page=1&by=uploaded&cursor={cursor}").status_code == 422


# ---- the input size ----

@pytest.mark.real_model
def test_a_size_the_fixed_input_model_cannot_run_at_is_a_422_naming_its_size(app, client):
    api = ApiActions(client).user()
    refused = api.upload(("p.png", encode(sample(), "PNG")), imgsz="320")
    assert refused.status_code == 422 and "640" in json.dumps(refused.json)
    assert analyses(app) == []


@pytest.mark.real_model
def test_a_run_records_the_size_the_model_really_ran_at(make_app, coco_model):
    app = make_app(YOLO_MODEL=coco_model, YOLO_IMGSZ=320)  # the model was exported for 640 only
    api = ApiActions(app.test_client()).user()
    body = api.upload(("p.jpg", with_orientation(sample(), 1)), query="?wait=true").json["analyses"][0]
    assert body["model"]["imgsz"] == 640


@pytest.mark.browser
@pytest.mark.any_database  # the page's grouping, not the database
def test_the_gallery_shows_photos_in_the_months_they_were_taken(serve, page, tmp_path):
    from tests.browser import upload_and_wait
    from tests.test_gallery_browser import log_in

    base, app = serve()
    with app.app_context():
        factories.user()
    files = []
    for name, taken in (("beach.jpg", "2014:08:03 17:00:00"), ("snow.jpg", "2019:01:20 09:30:00"),
                        ("screenshot.png", None)):
        path = tmp_path / name
        path.write_bytes(exif_photo(taken=taken, gps=False) if taken else encode(sample(), "PNG"))
        files.append(str(path))
    log_in(page, base)
    upload_and_wait(page, files)
    page.goto(f"{base}/analyses")
    months = page.locator("#cards h2.month").all_inner_texts()
    this_month = datetime.now(timezone.utc).strftime("%B %Y")
    assert months == [this_month, "January 2019", "August 2014"]
    names = page.locator(".tile .name").all_inner_texts()
    assert names == ["screenshot.png", "snow.jpg", "beach.jpg"]
    assert "20 Jan 2019, 09:30" in page.locator("#analysis-" + _id_of(app, "snow.jpg")).inner_text()
    page.click("#range-toggle")  # "Dates & order"
    page.select_option("select[name=by]", "uploaded")
    page.click("form.range button[type=submit]")
    page.wait_for_url("**by=uploaded**")
    assert page.locator("#cards h2.month").all_inner_texts() == [this_month]


def _id_of(app, filename: str) -> str:
    return next(run.public_id for run in analyses(app) if run.photo.original_filename == filename)


def test_the_one_input_size_is_read_from_an_openvino_folder_and_an_onnx_file(make_app, coco_model, tmp_path):
    from tests.conftest import V8
    from webapp.detection.registry import fixed_input_size

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    for model, size in ((coco_model, 640), (str(V8), 640 if V8.exists() else None), (str(junk), None),
                        ("yolo11n.yaml", None)):
        app = make_app(YOLO_MODEL=model)
        with app.app_context():
            assert fixed_input_size() == size, model


# ---- crafted files: nothing of the metadata reaches a stranger, nothing breaks ----

SENTINEL = b"SENTINEL"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _icc_named(text: str) -> bytes:
    """sRGB's profile with its description overwritten (same length): free text a profile carries."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    old = "sRGB built-in".encode("utf-16-be")
    assert old in profile
    return profile.replace(old, text[:13].ljust(13).encode("utf-16-be"))


def crafted_files() -> dict[str, bytes]:
    plain = encode(sample(96, 64), "JPEG", quality=90)
    jfif_end = 2 + 2 + struct.unpack(">H", plain[4:6])[0]
    thumb = exif_photo(size=(16, 12))  # a whole JPEG, with GPS, serial and names, as a thumbnail
    files = {
        "junk-between-segments.jpg": plain.replace(b"\xff\xdb", b"\x00\x00\x00\xff\xdb", 1),
        "jfxx-thumbnail.jpg": plain[:jfif_end] + _segment(0xE0, b"JFXX\x00\x10" + thumb) + plain[jfif_end:],
        "icc-description.jpg": encode(sample(96, 64), "JPEG", icc_profile=_icc_named("SENTINEL-ICC!")),
    }
    progressive = encode(sample(96, 64), "JPEG", progressive=True, quality=90)
    second_scan = progressive.index(b"\xff\xda", progressive.index(b"\xff\xda") + 2)
    files["between-scans.jpg"] = (progressive[:second_scan] + _segment(0xFE, SENTINEL + b"-COM-BETWEEN-SCANS")
                                  + progressive[second_scan:])
    png = encode(sample(96, 64), "PNG")
    header_end = 8 + 25
    extra = (_chunk(b"iCCP", SENTINEL + b"-ICCNAME Jane\x00\x00" + zlib.compress(_icc_named("x")))
             + _chunk(b"prVt", SENTINEL + b"-PRIVATE") + _chunk(b"caBX", SENTINEL + b"-C2PA"))
    files["chunks.png"] = png[:header_end] + extra + png[header_end:]
    exif = Image.Exif()
    exif[0x013B] = "SENTINEL-ARTIST"
    webp = encode(sample(96, 64), "WEBP", exif=exif.tobytes())
    private = SENTINEL + b"-WEBP!"  # an even length: no padding byte
    body = webp[12:] + b"SNTL" + struct.pack("<I", len(private)) + private
    files["chunks.webp"] = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + b"XTRA" + SENTINEL
    return files


@pytest.mark.parametrize("name", crafted_files())
def test_a_crafted_file_is_shared_and_exported_without_any_of_its_metadata(app, client, auth, name):
    data = crafted_files()[name]
    auth.signup()
    assert upload(client, (name, data)).status_code < 400
    [run] = analyses(app)
    assert run.status.value == "done", run.error
    assert client.get(f"/analyses/{run.public_id}/image/original").data == data
    link = share_link(client, run.public_id)
    anonymous = app.test_client()
    for variant in ("original", "annotated"):
        served = anonymous.get(f"{link}/image/{variant}")
        assert served.status_code == 200, (variant, served.status_code)
        assert SENTINEL not in served.data and SENTINEL.decode().encode("utf-16-be") not in served.data, variant
        assert "Last-Modified" not in served.headers, "when it was uploaded is not the stranger's business"
        decoded = decode(served.data, 10**8)
        assert (decoded.width, decoded.height) == (96, 64) and not decoded.facts.taken_at
    api = ApiActions(client)
    api.login()
    dataset = api.get("/api/v1/analyses/export?format=yolo")
    assert dataset.status_code == 200
    with zipfile.ZipFile(io.BytesIO(dataset.data)) as archive:
        [image] = [archive.read(n) for n in archive.namelist() if n.startswith("images/")]
    assert SENTINEL not in image and SENTINEL.decode().encode("utf-16-be") not in image


def test_a_date_taken_in_the_future_is_not_believed():
    far = decode(exif_photo(taken="9999:12:31 23:59:59", offset=None), 10**8)
    assert far.facts.taken_at is None
    soon = datetime.now() + timedelta(days=30)
    assert decode(exif_photo(taken=f"{soon:%Y:%m:%d %H:%M:%S}", offset=None), 10**8).facts.taken_at is None


@pytest.mark.parametrize("make, model, shown", [
    ("Canon", "Canon EOS 5D", "Canon EOS 5D"), ("NIKON CORPORATION", "NIKON D850", "NIKON D850"),
    ("Apple", "iPhone 15", "Apple iPhone 15"), ("", "Pixel 8", "Pixel 8"), ("Sony", "", "Sony"),
])
def test_the_camera_is_named_once(make, model, shown):
    from types import SimpleNamespace

    from webapp.analyses.routes import camera

    assert camera(SimpleNamespace(camera_make=make or None, camera_model=model or None)) == shown
