"""Exports that the tools people use read correctly: COCO scored by pycocotools against COCO128's
ground truth gives exactly what Ultralytics' own predictions give, and a YOLO export is a dataset
Ultralytics loads and validates on, its labels read back box for box."""
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import ApiActions, analyses
from tests.images import encode, sample
from webapp.analyses import exports


def test_the_coco_tables_match_ultralytics():
    from ultralytics.data.converter import coco80_to_coco91_class
    from ultralytics.utils import ROOT

    assert list(exports.COCO_CATEGORY_IDS) == coco80_to_coco91_class()
    names = yaml.safe_load((ROOT / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
    assert list(exports.COCO80) == [names[i] for i in range(80)]


def export(client, api, fmt, **params):
    query = "&".join(f"{k}={v}" for k, v in {"format": fmt, **params}.items())
    response = client.get(f"/api/v1/analyses/export?{query}", headers=api.headers)
    assert response.status_code == 200, response.data[:500]
    return response


@pytest.fixture
def two_same_names(app, client):
    """Two uploads with one file name, finished (the sync executor of the tests)."""
    api = ApiActions(client).user()
    for size in (96, 120):
        assert api.upload(("same.png", encode(sample(size, 64), "PNG"))).status_code in (201, 202)
    return api


def test_coco_image_ids_are_the_analyses_ids_and_stay_the_same_across_exports(app, client, two_same_names):
    first = export(client, two_same_names, "coco").get_json()
    second = export(client, two_same_names, "coco", sort="oldest").get_json()
    ids = {a.public_id: a.id for a in analyses(app)}
    assert {i["analysis_id"]: i["id"] for i in first["images"]} == ids
    assert {i["analysis_id"]: i["id"] for i in second["images"]} == ids
    assert "analysis's numeric id" in first["info"]["image_ids"]


def test_coco_file_names_are_unique_and_match_the_yolo_zip(app, client, two_same_names):
    coco = export(client, two_same_names, "coco").get_json()
    names = [i["file_name"] for i in coco["images"]]
    assert len(set(names)) == 2 and all(n.startswith("same-") and n.endswith(".png") for n in names)
    archive = zipfile.ZipFile(io.BytesIO(export(client, two_same_names, "yolo").data))
    assert {n.removeprefix("images/") for n in archive.namelist() if n.startswith("images/")} == set(names)


@pytest.mark.parametrize("uploaded, kept", [
    ("夏の海.png", "夏の海"), ("Café crème.png", "Café_crème"), ("Ωmega-σ.png", "Ωmega-σ"),
    ("a\u202egnp.exe.png", "agnp_exe"), ("../../etc.png", "etc"), ("\u0301\u0301.png", "photo"),
    ("写" * 40 + ".png", "写" * 26), ("हिन्दी.png", "हिन्दी"), ("ภาษาไทย.png", "ภาษาไทย"),
])
def test_export_file_names_keep_letters_of_any_script_and_nothing_else(app, client, uploaded, kept):
    api = ApiActions(client).user()
    assert api.upload((uploaded, encode(sample(96, 64), "PNG"))).status_code in (201, 202)
    [image] = export(client, api, "coco").get_json()["images"]
    public_id = analyses(app)[0].public_id
    assert image["file_name"] == f"{kept}-{public_id}.png"
    archive = zipfile.ZipFile(io.BytesIO(export(client, api, "yolo").data))
    assert f"images/{kept}-{public_id}.png" in archive.namelist()


def test_a_model_that_is_not_coco_keeps_its_own_class_ids_and_says_so(app, client, two_same_names):
    coco = export(client, two_same_names, "coco", min_conf=0).get_json()
    assert coco["info"]["category_ids"] == "model"
    assert [c["id"] for c in coco["categories"]] == list(range(80))  # every class, detected or not


def test_the_yolo_zip_is_a_dataset_with_names_for_every_class(app, client, two_same_names):
    archive = zipfile.ZipFile(io.BytesIO(export(client, two_same_names, "yolo").data))
    data = yaml.safe_load(archive.read("data.yaml"))
    assert data["train"] == data["val"] == "images" and data["nc"] == 80 and len(data["names"]) == 80
    lines = archive.read("classes.txt").decode().splitlines()
    assert lines == [data["names"][i] for i in range(80)]
    stems = lambda folder: {Path(n).stem for n in archive.namelist() if n.startswith(folder)}  # noqa: E731
    assert stems("images/") == stems("labels/") and len(stems("images/")) == 2


def test_min_conf_is_described_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    parameters = spec["paths"]["/api/v1/analyses/export"]["get"]["parameters"]
    min_conf = next(p for p in parameters if p["name"] == "min_conf")
    assert "min_conf=0" in min_conf["description"] and "threshold" in min_conf["description"]


# ---- with the real model on COCO128 ----

COCO128 = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "coco128"


def coco128_images(count=None) -> list[Path]:
    folder = COCO128 / "images" / "train2017"
    if not folder.is_dir():
        pytest.skip(f"COCO128 not found at {folder}")
    return sorted(folder.glob("*.jpg"))[:count]


def upload_all(api, paths: list[Path]) -> None:
    for start in range(0, len(paths), 50):
        files = [(p.name, p.read_bytes()) for p in paths[start:start + 50]]
        response = api.upload(*files, query="?wait=true")
        assert response.status_code == 201, response.get_json()


def ground_truth(images: list[dict]) -> dict:
    """COCO128's YOLO labels as COCO ground truth, with the exported images' ids and sizes."""
    annotations = []
    for image in images:
        label = COCO128 / "labels" / "train2017" / (Path(image["original_filename"]).stem + ".txt")
        rows = np.loadtxt(label, ndmin=2) if label.exists() and label.stat().st_size else np.zeros((0, 5))
        for cls, cx, cy, w, h in rows:
            w, h = w * image["width"], h * image["height"]
            x, y = cx * image["width"] - w / 2, cy * image["height"] - h / 2
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "iscrowd": 0, "area": w * h,
                                "bbox": [x, y, w, h], "category_id": exports.COCO_CATEGORY_IDS[int(cls)]})
    categories = [{"id": i, "name": n} for i, n in zip(exports.COCO_CATEGORY_IDS, exports.COCO80, strict=True)]
    return {"images": images, "annotations": annotations, "categories": categories}


def score(truth: dict, results: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = truth
    gt.createIndex()
    evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return [float(x) for x in evaluation.stats]


@pytest.mark.real_model
def test_a_coco_export_scores_as_ultralytics_own_predictions_do(make_app, coco_model):
    from ultralytics import YOLO

    app = make_app(YOLO_MODEL=coco_model, DETECT_BATCH=1, ANALYSIS_EXECUTOR="thread")
    client = app.test_client()
    api = ApiActions(client).user()
    paths = coco128_images()
    upload_all(api, paths)
    coco = export(client, api, "coco", min_conf=0).get_json()
    assert coco["info"]["category_ids"] == "coco" and len(coco["categories"]) == 80
    assert {c["name"]: c["id"] for c in coco["categories"]}["toothbrush"] == 90
    truth = ground_truth(coco["images"])
    exported = score(truth, coco["annotations"])

    config = app.config
    model, by_name = YOLO(coco_model, task="detect"), {i["original_filename"]: i["id"] for i in coco["images"]}
    direct = []
    for path in paths:
        result = model.predict(str(path), conf=config["YOLO_STORE_FLOOR"], iou=config["YOLO_IOU"],
                               imgsz=config["YOLO_IMGSZ"], rect=False, verbose=False)[0]
        for (x1, y1, x2, y2), conf, cls in zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(),
                                               result.boxes.cls.tolist(), strict=True):
            direct.append({"image_id": by_name[path.name], "category_id": exports.COCO_CATEGORY_IDS[int(cls)],
                           "bbox": [x1, y1, x2 - x1, y2 - y1], "score": conf})
    baseline = score(truth, direct)
    assert exported[0] > 0.3  # mAP50-95: right ids (the old +1 ids scored 0.07)
    assert [round(x, 4) for x in exported] == [round(x, 4) for x in baseline]


@pytest.mark.real_model
def test_a_yolo_export_is_a_dataset_ultralytics_loads_and_validates_on(make_app, coco_model, tmp_path):
    from ultralytics import YOLO
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    app = make_app(YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    client = app.test_client()
    api = ApiActions(client).user()
    upload_all(api, coco128_images(6))
    folder = tmp_path / "dataset"
    zipfile.ZipFile(io.BytesIO(export(client, api, "yolo").data)).extractall(folder)

    data = check_det_dataset(str(folder / "data.yaml"))
    dataset = YOLODataset(img_path=data["val"], data=data, task="detect", augment=False)
    read_back = {Path(label["im_file"]).stem: label for label in dataset.labels}
    rows = {exports.dataset_stem(a): a for a in analyses(app)}
    assert set(read_back) == set(rows)
    for stem, analysis in rows.items():
        label, shown = read_back[stem], analysis.detections_at()
        width, height = analysis.photo.width, analysis.photo.height
        expected = np.array([[(d.x1 + d.x2) / 2 / width, (d.y1 + d.y2) / 2 / height,
                              (d.x2 - d.x1) / width, (d.y2 - d.y1) / height] for d in shown])
        assert label["cls"].ravel().tolist() == [d.class_id for d in shown]
        assert np.allclose(label["bboxes"], expected.reshape(-1, 4), atol=1e-5)

    metrics = YOLO(coco_model, task="detect").val(data=str(folder / "data.yaml"), imgsz=640, batch=2,
                                                  device="cpu", plots=False, project=str(tmp_path / "runs"),
                                                  verbose=False)
    assert metrics.box.map50 > 0.9  # its own predictions at its own threshold as the labels


def test_the_id_scheme_comes_from_the_stored_detections_not_from_a_worker_being_up(make_app):
    """Celery mode with no worker reporting its model: still official COCO ids and 80 classes."""
    from tests.factories import add_analysis

    app = make_app(ANALYSIS_EXECUTOR="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    api = ApiActions(client).user()
    add_analysis(app, labels=[("person", 0.9), ("bicycle", 0.8), ("car", 0.7)])
    coco = export(client, api, "coco").get_json()
    assert coco["info"]["category_ids"] == "coco" and len(coco["categories"]) == 80
    assert sorted(a["category_id"] for a in coco["annotations"]) == [1, 2, 3]
    archive = zipfile.ZipFile(io.BytesIO(export(client, api, "yolo").data))
    assert yaml.safe_load(archive.read("data.yaml"))["names"][79] == "toothbrush"


def test_the_bulk_yolo_export_is_always_a_dataset_of_finished_analyses(app, client):
    from tests.factories import add_analysis
    from webapp.models import RunStatus

    api = ApiActions(client).user()
    add_analysis(app, labels=[("class1", 0.9)])
    add_analysis(app, status=RunStatus.PENDING)
    one = export(client, api, "yolo", label="class1")
    assert one.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(one.data)).namelist()
    assert len([n for n in names if n.startswith("labels/")]) == 1 and "data.yaml" in names
    pending = zipfile.ZipFile(io.BytesIO(export(client, api, "yolo", status="pending").data)).namelist()
    assert not [n for n in pending if n.startswith(("labels/", "images/"))]
    assert export(client, api, "coco", status="pending").get_json()["images"] == []


@pytest.mark.parametrize("fmt", ["json", "coco", "csv", "yolo"])
def test_one_photos_export_with_a_non_latin_name_is_named_in_utf8(app, client, fmt):
    api = ApiActions(client).user()
    public_id = api.upload(("夏の海.png", encode(sample(96, 64), "PNG")), query="?wait=true").json["analyses"][0]["id"]
    response = client.get(f"/api/v1/analyses/{public_id}/export?format={fmt}", headers=api.headers)
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    disposition.encode("latin-1")  # a header the server can send
    assert f"filename*=UTF-8''%E5%A4%8F%E3%81%AE%E6%B5%B7-{public_id[:8]}" in disposition
