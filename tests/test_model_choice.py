"""Several models (YOLO_MODELS): listed with their classes, chosen per upload, each analysis
run and labelled with the model it asked for. The pair in ../shared/models is real: YOLO11n int8
OpenVINO (the default) and YOLOv8n int8 ONNX."""
import pytest

from tests.conftest import V8
from tests.helpers import ApiActions, analyses, csrf_from
from tests.images import encode, sample
from webapp.detection.registry import named_models



@pytest.fixture
def pair(make_app, coco_model):
    if not V8.exists():
        pytest.skip(f"{V8} not found (it lies in ../shared/models)")
    return make_app(YOLO_MODEL=coco_model, YOLO_MODELS=f"v8={V8}")


def test_yolo_models_are_read_as_names_and_paths():
    config = {"YOLO_MODEL": "a.pt", "YOLO_MODELS": " fast=/m/x_openvino_model , v8=/m/y.onnx,"}
    assert named_models(config) == {"default": "a.pt", "fast": "/m/x_openvino_model", "v8": "/m/y.onnx"}


@pytest.mark.parametrize("bad", ["fast", "=/m/x.pt", "Fast=/m/x.pt", "default=/m/x.pt", "a=/x.pt,a=/y.pt", "a b=/x"])
def test_a_malformed_model_list_says_what_is_wrong(bad):
    with pytest.raises(ValueError, match="YOLO_MODELS"):
        named_models({"YOLO_MODEL": "", "YOLO_MODELS": bad})


def test_the_models_are_listed_with_their_classes(pair):
    api = ApiActions(pair.test_client()).user()
    models = api.get("/api/v1/models").json["models"]
    assert [(m["name"], m["model"], m["default"], m["available"]) for m in models] == [
        ("default", "yolo11n_int8_openvino_model", True, True), ("v8", "yolov8n_dynamic_quantized.onnx", False, True)]
    assert all(len(m["classes"]) == 80 and m["classes"]["0"] == "person" for m in models)


def test_the_model_list_needs_a_sign_in(pair):
    assert pair.test_client().get("/api/v1/models").status_code == 401


def test_an_upload_runs_with_the_model_it_names(pair, assets):
    api = ApiActions(pair.test_client()).user()
    bus = (assets / "bus.jpg").read_bytes()
    default = api.upload(("bus.jpg", bus), query="?wait=true").json["analyses"][0]
    chosen = api.upload(("bus.jpg", bus), query="?wait=true", model="v8").json["analyses"][0]
    first, second = (api.get(f"/api/v1/analyses/{a['id']}").json for a in (default, chosen))
    assert (first["model"]["key"], first["model"]["name"]) == ("default", "yolo11n_int8_openvino_model")
    assert (second["model"]["key"], second["model"]["name"]) == ("v8", "yolov8n_dynamic_quantized.onnx")
    for result in (first, second):
        assert result["status"] == "done" and result["labels"].get("bus") == 1 and result["labels"]["person"] >= 3
    assert first["detections"] != second["detections"]  # two models, two answers


def test_an_unknown_model_is_a_422_and_nothing_is_stored(pair):
    api = ApiActions(pair.test_client()).user()
    response = api.upload(("p.png", encode(sample(), "PNG")), model="v9")
    assert response.status_code == 422 and "Unknown model 'v9'" in response.json["detail"]
    assert "v8" in response.json["detail"]
    assert analyses(pair) == []


def test_the_upload_form_offers_the_models_only_when_there_are_several(pair, make_app, auth_factory):
    client, auth = auth_factory(pair)
    auth.signup()
    page = client.get("/analyses").get_data(as_text=True)
    assert '<select id="upload-model" name="model">' in page and '<option value="v8">v8</option>' in page
    single = make_app()
    client, auth = auth_factory(single)
    auth.signup()
    assert 'name="model"' not in client.get("/analyses").get_data(as_text=True)


def test_the_upload_form_runs_the_chosen_model_and_refuses_an_unknown_one(pair, auth_factory):
    import io

    client, auth = auth_factory(pair)
    auth.signup()
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    client.post("/analyses", data={"csrf_token": token, "model": "v8",
                                   "images": [(io.BytesIO(encode(sample(), "PNG")), "p.png")]})
    [analysis] = analyses(pair)
    assert analysis.model == "v8"
    response = client.post("/analyses", data={"csrf_token": token, "model": "nope",
                                              "images": [(io.BytesIO(encode(sample(), "PNG")), "q.png")]})
    assert response.status_code == 302 and len(analyses(pair)) == 1
    assert "Unknown model" in client.get("/analyses").get_data(as_text=True)


def test_a_malformed_model_list_stops_the_start_with_the_reason(make_app):
    with pytest.raises(ValueError, match="YOLO_MODELS: 'v8:/path' is not name=path"):
        make_app(YOLO_MODELS="v8:/path")


# ---- models dropped into MODELS_DIR: offered without a restart ----

def test_every_model_in_the_models_folder_is_offered_by_its_file_name(tmp_path):
    folder = tmp_path / "models"
    (folder / "yolo11n_int8_openvino_model").mkdir(parents=True)
    (folder / "yolov8n Dynamic.onnx").write_bytes(b"x")
    (folder / "notes.txt").write_text("not a model")
    (folder / ".hidden.pt").write_bytes(b"x")
    config = {"YOLO_MODEL": "", "YOLO_MODELS": "", "MODELS_DIR": str(folder)}
    # the first one is the default (as ever); the others by name
    assert named_models(config) == {"default": "", "yolov8n-dynamic": str(folder / "yolov8n Dynamic.onnx")}


def test_a_model_named_in_yolo_models_or_the_default_is_not_offered_twice(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("a.pt", "b.pt", "c.onnx"):
        (folder / name).write_bytes(b"x")
    config = {"YOLO_MODEL": str(folder / "b.pt"), "YOLO_MODELS": f"fast={folder / 'c.onnx'}", "MODELS_DIR": str(folder)}
    assert named_models(config) == {"default": str(folder / "b.pt"), "fast": str(folder / "c.onnx"),
                                    "a": str(folder / "a.pt")}


def test_a_model_dropped_into_the_folder_is_offered_and_used_at_once(make_app, random_weights):
    app = make_app(YOLO_MODEL="", YOLO_OFFLINE=True)
    folder = app.config["MODELS_DIR"]
    api = ApiActions(app.test_client()).user()
    import shutil
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(random_weights, Path(folder) / "a-first.pt")
    assert [m["name"] for m in api.get("/api/v1/models").json["models"]] == ["default"]
    shutil.copy(random_weights, Path(folder) / "second.pt")  # what an administrator does, the app running
    assert [m["name"] for m in api.get("/api/v1/models").json["models"]] == ["default", "second"]
    done = api.upload(("p.png", encode(sample(), "PNG")), query="?wait=true", model="second").json["analyses"][0]
    assert done["status"] == "done" and (done["model"]["key"], done["model"]["name"]) == ("second", "second.pt")
