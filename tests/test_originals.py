"""Photos kept exactly as uploaded, and one decode for every path: for every EXIF orientation,
CMYK (with and without a profile), transparency, palettes, 16-bit grey, HEIC, WebP, BMP and TIFF,
and a 14 MP portrait phone photo (decoded at a reduced scale for detection), "Download original"
gives the uploaded bytes back, and the detections are the same on every path (an upload alone,
one past the in-process window of a burst, a same-settings re-run, a Celery worker,
`flask import-photos`, the DeepStack endpoint) and equal to Ultralytics' own `predict` on the
pixels `decode` returns for detection, in the photo's own pixels."""
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests import factories
from tests.helpers import ApiActions, Workers, analyses, fresh_redis, redis_url
from tests.images import encode, with_orientation
from webapp.models import RunStatus
from webapp.vision.images import decode
from webapp.vision.pixels import rendition

# The paths are compared on one database (PostgreSQL where configured, as in CI): what they
# check is the decode and the detector, not the backend.
pytestmark = [pytest.mark.real_model, pytest.mark.any_database]

CMYK_PROFILE = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")  # Debian's libgs-common
FILLERS = 19  # photos before the matrix in a burst: each of the matrix is the 20th or later
LIMIT = 40_000_000
DECODE_SIZE = 640  # what detection at imgsz 640 (and a 400 px thumbnail) asks `decode` for


def _photo(assets) -> Image.Image:
    return Image.open(assets / "bus.jpg").convert("RGB")


def _heic_portrait(upright: Image.Image) -> bytes:
    """An iPhone-style HEIC: taken in portrait, stored with an orientation (pillow-heif writes it
    as HEIF's own rotation), with EXIF."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15"
    return encode(upright, "HEIF", exif=exif.tobytes(), quality=90)


def _cmyk_with_profile(photo: Image.Image) -> bytes:
    if not CMYK_PROFILE.is_file():
        pytest.skip(f"no CMYK ICC profile at {CMYK_PROFILE} (.ci/run installs libgs-common)")
    profile = CMYK_PROFILE.read_bytes()
    cmyk = ImageCms.profileToProfile(photo, ImageCms.createProfile("sRGB"),
                                     ImageCms.ImageCmsProfile(io.BytesIO(profile)), outputMode="CMYK")
    return encode(cmyk, "JPEG", quality=92, icc_profile=profile)


def _transparent(photo: Image.Image) -> Image.Image:
    rgba = photo.convert("RGBA")
    alpha = np.full((photo.height, photo.width), 255, np.uint8)
    alpha[:, : photo.width // 3] = np.linspace(0, 255, photo.width // 3, dtype=np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    return rgba


def make_cases(assets) -> dict[str, bytes]:
    """The matrix, made from a real photo: name -> the file's bytes."""
    photo = _photo(assets)
    cases = {f"exif{o}.jpg": with_orientation(photo, o) for o in range(1, 9)}
    cases["cmyk.jpg"] = encode(photo.convert("CMYK"), "JPEG", quality=92)
    cases["cmyk-icc.jpg"] = _cmyk_with_profile(photo)
    cases["rgba.png"] = encode(_transparent(photo), "PNG")
    palette = photo.quantize(64)
    palette.info["transparency"] = 0
    cases["palette.png"] = encode(palette, "PNG", transparency=0)
    grey = (np.asarray(photo.convert("L"), np.uint16) * 257)
    cases["grey16.png"] = encode(Image.fromarray(grey), "PNG")  # uint16: mode I;16
    cases["portrait.heic"] = _heic_portrait(photo.transpose(Image.Transpose.ROTATE_90))
    cases["photo.webp"] = encode(photo, "WEBP", quality=90)
    cases["photo.bmp"] = encode(photo, "BMP")
    cases["photo.tif"] = encode(photo, "TIFF")
    # a phone's portrait photo: 3240x4320, stored turned (EXIF orientation 6); decoded at 1/4 for detection
    cases["phone.jpg"] = with_orientation(photo.resize((3240, 4320), Image.Resampling.BICUBIC), 6)
    return cases


@pytest.fixture(scope="module")
def cases(assets):
    return make_cases(assets)


def boxes_of(detections) -> list[tuple]:
    """Detections as comparable tuples: class, confidence and corners (stored or Ultralytics')."""
    return sorted((int(c), round(float(p), 4), *(round(float(v), 2) for v in xyxy))
                  for c, p, xyxy in detections)


def stored(run) -> list[tuple]:
    return boxes_of((d.class_id, d.confidence, (d.x1, d.y1, d.x2, d.y2)) for d in run.detections)


@pytest.fixture(scope="module")
def raw(cases, coco_model):
    """Ultralytics' own predict (a plain YOLO object, its own defaults but the app's settings) on
    the array `decode` returns, for each case."""
    from ultralytics import YOLO

    model = YOLO(coco_model, task="detect")
    found = {}
    for name, data in cases.items():
        decoded = decode(data, LIMIT, at_least=DECODE_SIZE)
        [result] = model.predict(decoded.pixels, imgsz=640, conf=0.05, iou=0.7, verbose=False)
        corners = [decoded.geometry.corners(*xyxy) for xyxy in result.boxes.xyxy.tolist()]  # in the photo's pixels
        found[name] = list(zip(result.boxes.cls.tolist(), result.boxes.conf.tolist(), corners, strict=True))
        assert found[name], f"{name}: the bus photo must give boxes"
    return found


@pytest.fixture(scope="module")
def expected(raw):
    return {name: boxes_of(found) for name, found in raw.items()}


def by_name(app) -> dict:
    return {run.photo.original_filename: run for run in analyses(app)}


def test_decode_gives_the_same_upright_photo_for_every_form(cases):
    reference = decode(cases["exif1.jpg"], LIMIT).pixels.astype(int)
    for name, data in cases.items():
        pixels = decode(data, LIMIT).pixels
        if name == "phone.jpg":  # the same photo, four times larger
            assert pixels.shape == (4320, 3240, 3)
            pixels = np.asarray(Image.fromarray(pixels).resize(reference.shape[1::-1], Image.Resampling.BOX))
        assert pixels.shape == reference.shape, name
        difference = np.abs(pixels.astype(int) - reference)
        if name not in ("rgba.png", "palette.png", "grey16.png"):  # white shows through; fewer colours; grey
            assert difference.mean() < 12, (name, difference.mean())


def test_a_browser_is_shown_a_rendition_exactly_where_it_cannot_show_the_original(cases):
    shown_as_is = {name for name, data in cases.items() if rendition(decode(data, LIMIT)) is None}
    assert shown_as_is == {"exif1.jpg", "photo.webp"}


def test_uploads_alone_keep_the_bytes_and_detect_as_ultralytics_on_the_decoded_pixels(app, cases, expected):
    api = ApiActions(app.test_client()).user()
    for name, data in cases.items():
        response = api.upload((name, data), query="?wait=true")
        assert response.status_code == 201, (name, response.json)
        body = response.json["analyses"][0]
        assert body["status"] == "done" and body["sha256"] == hashlib.sha256(data).hexdigest(), name
        original = api.get(body["urls"]["original"])
        assert original.data == data, f"{name}: the original must come back byte for byte"
        assert body["model"]["imgsz"] == 640
        shown = Image.open(io.BytesIO(api.get(body["urls"]["display"]).data))
        assert shown.format in ("JPEG", "PNG", "WEBP") and shown.size == (body["width"], body["height"]), name
    for name, run in by_name(app).items():
        assert stored(run) == expected[name], name


def test_photos_past_the_window_of_a_burst_detect_alike(make_app, cases, expected, coco_model):
    app = make_app(YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    api = ApiActions(app.test_client()).user()
    photo = Image.open(io.BytesIO(next(iter(cases.values())))).convert("RGB").resize((160, 120))
    fillers = [(f"filler{i}.jpg", encode(photo.rotate(i), "JPEG")) for i in range(FILLERS)]
    response = api.upload(*fillers, *cases.items(), query="?wait=true")
    assert response.status_code == 201, response.json
    runs = by_name(app)
    for name in cases:
        assert runs[name].status == RunStatus.DONE and stored(runs[name]) == expected[name], name


def test_a_same_settings_rerun_detects_alike(app, cases, expected):
    api = ApiActions(app.test_client()).user()
    firsts = {}
    for name, data in cases.items():
        firsts[name] = api.upload((name, data)).json["analyses"][0]["id"]
    for name, public_id in firsts.items():  # done already: the tests' executor runs each upload at once
        response = api.post(f"/api/v1/analyses/{public_id}/runs?wait=true")
        assert response.status_code == 201, (name, response.json)
    for run in analyses(app):
        assert run.status == RunStatus.DONE
        assert stored(run) == expected[run.photo.original_filename], run.photo.original_filename


def test_the_import_detects_alike(app, cases, expected, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    for name, data in cases.items():
        (library / name).write_bytes(data)
    with app.app_context():
        factories.user("ada@example.com")
    result = app.test_cli_runner().invoke(args=["import-photos", "--user", "ada@example.com", str(library)])
    assert result.exit_code == 0, result.output
    runs = by_name(app)
    assert set(runs) == set(cases)
    for name, run in runs.items():
        assert stored(run) == expected[name], name
        with app.app_context():
            assert (Path(app.config["UPLOAD_DIR"]) / run.photo.original_path).read_bytes() == cases[name]


def test_the_deepstack_endpoint_detects_alike(app, cases, raw):
    api = ApiActions(app.test_client()).user()
    key = api.post("/api/v1/keys", json={"name": "cam", "scope": "detect-only"}).json["key"]
    for name, data in cases.items():
        response = app.test_client().post("/v1/vision/detection", data={
            "image": (io.BytesIO(data), name), "api_key": key, "min_confidence": "0.05"})
        assert response.status_code == 200, (name, response.json)
        got = sorted((p["label"], p["confidence"], p["x_min"], p["y_min"], p["x_max"], p["y_max"])
                     for p in response.json["predictions"])
        names = _names()
        want = sorted((names[int(c)], round(conf, 4), *(int(round(v)) for v in corners))
                      for c, conf, corners in raw[name])
        assert got == want, name


def _names() -> dict[int, str]:
    from webapp.analyses.exports import COCO80

    return dict(enumerate(COCO80))


def test_a_celery_worker_detects_alike(make_app, cases, expected, coco_model, tmp_path):
    url = redis_url(13)  # test_celery's: flushed by each test that uses it
    fresh_redis(url)
    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL=url, YOLO_MODEL=coco_model)
    pool = Workers(app, tmp_path)
    try:
        pool.start()
        api = ApiActions(app.test_client()).user()
        response = api.upload(*cases.items(), query="?wait=true")
        assert response.status_code == 201, (response.json, pool.log())
    finally:
        pool.stop()
    runs = by_name(app)
    for name in cases:
        assert runs[name].status == RunStatus.DONE, (name, runs[name].error, pool.log())
        assert stored(runs[name]) == expected[name], name
