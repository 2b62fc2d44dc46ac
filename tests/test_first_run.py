"""The first run: which model the app finds, what it says when it has none, and retrying the
photos that failed meanwhile; start-up work that happens only when asked for."""
import re
import logging
import shutil
import socket
from pathlib import Path

import pytest

from tests.factories import add_analysis
from tests.helpers import HX, ApiActions, analyses, post_form, upload
from tests.images import encode, sample
from webapp.detection import availability as detection_status, registry
from webapp.jobs.recovery import INTERRUPTED
from webapp.models import RunStatus
from webapp.vision.detector import ModelUnavailable

BANNER = "Detection is unavailable:"
NO_MODEL = ("Not analysed: detection is unavailable (no detection model is installed on this server, and it is "
            "not allowed to download one). It can be retried once it is back.")


@pytest.fixture
def bare(make_app, tmp_path):
    """An app as a fresh clone runs it offline: no YOLO_MODEL, nothing in MODELS_DIR."""
    return make_app(YOLO_MODEL="", YOLO_OFFLINE=True)


@pytest.fixture
def failed(bare, auth_factory):
    """A signed-in client of `bare` and the analysis its upload left failed (no model)."""
    client, auth = auth_factory(bare)
    auth.signup()
    upload(client, photo())
    [analysis] = analyses(bare)
    assert analysis.status == RunStatus.FAILED
    return client, analysis


def install_model(app, weights) -> None:
    """Copy a model into the app's MODELS_DIR, as an administrator would."""
    Path(app.config["MODELS_DIR"]).mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, Path(app.config["MODELS_DIR"]) / weights.name)


def photo():
    return ("photo.png", encode(sample(), "PNG"))


def test_a_model_in_the_models_folder_is_used_without_any_setting(bare, auth_factory, random_weights):
    install_model(bare, random_weights)
    client, auth = auth_factory(bare)
    auth.signup()
    upload(client, photo())
    [analysis] = analyses(bare)
    assert analysis.status == RunStatus.DONE
    assert analysis.model_name == random_weights.name  # its name: no server path is shown


def test_the_models_folder_defaults_to_instance_models(make_app, tmp_path):
    app = make_app(MODELS_DIR=None)
    assert app.config["MODELS_DIR"] == str(tmp_path / "instance" / "models")


def test_without_a_model_an_upload_fails_with_one_plain_message(bare, auth_factory):
    client, auth = auth_factory(bare)
    auth.signup()
    upload(client, photo(), photo())
    assert [a.error for a in analyses(bare)] == [NO_MODEL, NO_MODEL]
    page = client.get("/analyses").get_data(as_text=True)
    assert page.count(BANNER) == 1
    assert "no detection model is installed on this server" in page and "check-model" in page
    assert "Put a YOLO model (a .pt or .onnx file, or an *_openvino_model folder) in the models folder on the " \
        "server: it is found without a restart." in page
    assert "YOLO_OFFLINE" not in page and "does not exist" not in page  # no developer messages
    assert bare.config["MODELS_DIR"] not in page  # nor a server path outside the app
    assert page.count(NO_MODEL) == 2 and "2 photos failed." in page and "Retry all failed" in page


def test_a_card_that_fails_for_want_of_a_model_brings_the_banner_without_a_reload(bare, auth_factory):
    client, auth = auth_factory(bare)
    auth.signup()
    upload(client, photo())
    [analysis] = analyses(bare)
    card = client.get(f"/analyses/{analysis.public_id}/card", headers=HX).get_data(as_text=True)
    assert NO_MODEL in card
    banner = card.split('id="detection-unavailable"', 1)[1]
    assert 'hx-swap-oob="true"' in banner.split(">", 1)[0] and "no detection model is installed" in banner


def test_the_gallery_keeps_a_hidden_banner_for_a_card_to_fill(client, auth):
    auth.signup()
    page = client.get("/analyses").get_data(as_text=True)
    assert '<div class="banner warning" role="alert" id="detection-unavailable" hidden' in page


def test_the_models_folder_is_named_relative_to_the_app_never_by_a_path_outside_it():
    from webapp.config import BASE_DIR

    assert detection_status._shown(str(BASE_DIR / "instance" / "models")) == "instance/models/"
    assert detection_status._shown("/srv/spotter/models") == "the models folder"


def test_the_gallery_has_no_banner_when_the_model_is_fine(client, auth):
    auth.signup()
    assert BANNER not in client.get("/analyses").get_data(as_text=True)


def test_healthz_reports_an_unavailable_model_without_failing(bare):
    response = bare.test_client().get("/healthz")
    assert response.status_code == 200
    reason = "no detection model is installed on this server, and it is not allowed to download one"
    assert response.json == {"status": "ok", "database": "ok", "model": f"unavailable: {reason}", "rate_limits": "ok"}


def test_healthz_reports_a_usable_model(client):
    assert client.get("/healthz").json["model"] == "ok"


def test_check_model_prints_the_exact_fix(bare):
    result = bare.test_cli_runner().invoke(args=["check-model"])
    assert result.exit_code == 1
    assert "Detection is unavailable: no detection model is installed" in result.output
    assert f"Fix: Copy a YOLO model (a .pt or .onnx file, or an *_openvino_model folder) into " \
           f"{bare.config['MODELS_DIR']}/" in result.output


def test_check_model_names_a_missing_configured_path(make_app, tmp_path):
    app = make_app(YOLO_MODEL=str(tmp_path / "gone.pt"))
    result = app.test_cli_runner().invoke(args=["check-model"])
    assert result.exit_code == 1
    assert f"YOLO_MODEL is {tmp_path / 'gone.pt'}, which does not exist" in result.output


def test_check_model_lists_the_classes_of_a_working_model(runner):
    result = runner.invoke(args=["check-model"])
    assert result.exit_code == 0 and "yolo11n.yaml: 80 classes on cpu" in result.output
    assert "0, 1, 2, 3" in result.output  # the random-weight model's classes are numbered


def test_online_the_default_model_is_downloaded_into_the_models_folder(make_app, monkeypatch, caplog):
    """Where nothing is configured and the machine may download, yolo11n.pt is fetched into
    MODELS_DIR, saying so in the log. (Here the download is sent to a closed port, so the test
    shows the attempt and a clear failure whatever the network.)"""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    app = make_app(YOLO_MODEL="", YOLO_OFFLINE=False)
    settings = registry.settings_for(app.config)
    assert settings.model == f"{app.config['MODELS_DIR']}/yolo11n.pt" and settings.download
    api = ApiActions(app.test_client()).user()
    with caplog.at_level(logging.INFO, logger="webapp"):
        response = api.upload(photo(), query="?wait=true")
    assert response.json["analyses"][0]["error"] == ("Not analysed: detection is unavailable (the detection model "
                                                      "could not be downloaded). It can be retried once it is back.")
    assert (f"Downloading the YOLO model yolo11n.pt from https://github.com/ultralytics/assets/releases "
            f"into {app.config['MODELS_DIR']}/") in caplog.text
    with app.app_context():
        assert detection_status.availability().reason == "the detection model could not be downloaded"
    models = Path(app.config["MODELS_DIR"])
    assert not models.exists() or not any(models.iterdir())  # no partial download left behind


def test_a_bare_weights_name_is_kept_in_the_models_folder(make_app):
    app = make_app(YOLO_MODEL="yolo11s.pt", YOLO_OFFLINE=False)
    settings = registry.settings_for(app.config)
    assert settings.model == f"{app.config['MODELS_DIR']}/yolo11s.pt" and settings.download


def test_retry_all_failed_runs_them_once_a_model_is_added(bare, auth_factory, random_weights):
    client, auth = auth_factory(bare)
    auth.signup()
    upload(client, photo(), photo())
    install_model(bare, random_weights)  # no restart: the folder is looked at on every use
    response = post_form(client, "/analyses/retry-failed")
    assert response.status_code == 302 and response.location == "/analyses"
    assert [a.status for a in analyses(bare)] == [RunStatus.DONE, RunStatus.DONE]
    page = client.get("/analyses").get_data(as_text=True)
    assert BANNER not in page and "Retry all failed" not in page and "Retrying 2 photo(s)." in page


def test_retry_all_with_nothing_failed_says_so(client, auth):
    auth.signup()
    post_form(client, "/analyses/retry-failed")
    assert "There is no failed photo to retry." in client.get("/analyses").get_data(as_text=True)


def test_a_retry_while_detection_is_still_unavailable_says_so(failed):
    client, analysis = failed
    response = post_form(client, f"/analyses/{analysis.public_id}/retry", headers=HX)
    page = response.get_data(as_text=True)  # the card, and the message swapped into the message area
    message = re.search(r'<div id="htmx-errors" hx-swap-oob="innerHTML"><p class="flash flash-error">([^<]*)</p>', page)
    assert message and message.group(1).startswith("Detection is still unavailable: no detection model")


def test_an_upload_without_javascript_does_not_claim_detection_is_running(failed):
    client, _ = failed
    assert "detection is unavailable right now" in client.get("/analyses").get_data(as_text=True)


BROKEN_MODELS = {
    "junk ONNX file": ("model.onnx", b"not a model"),
    "OpenVINO folder still being copied": ("yolo11n_openvino_model", None),
}


@pytest.mark.parametrize("case", BROKEN_MODELS)
def test_a_broken_model_is_reported_as_unavailable_not_as_a_failed_photo(bare, auth_factory, case):
    name, data = BROKEN_MODELS[case]
    models = Path(bare.config["MODELS_DIR"])
    models.mkdir(parents=True, exist_ok=True)
    if data is None:
        (models / name).mkdir()
    else:
        (models / name).write_bytes(data)
    client, auth = auth_factory(bare)
    auth.signup()
    upload(client, photo())
    assert [a.error for a in analyses(bare)] == [
        "Not analysed: detection is unavailable (the detection model could not be loaded). It can be retried once "
        "it is back."]
    page = client.get("/analyses").get_data(as_text=True)
    assert "the detection model could not be loaded" in page and str(models) not in page
    assert client.get("/healthz").json["model"] == "unavailable: the detection model could not be loaded"
    result = bare.test_cli_runner().invoke(args=["check-model"])
    assert result.exit_code == 1 and "Fix: Replace" in result.output and "Traceback" not in result.output


def test_an_api_upload_naming_classes_with_a_broken_model_is_503(bare, auth_factory):
    models = Path(bare.config["MODELS_DIR"])
    models.mkdir(parents=True, exist_ok=True)
    (models / "model.onnx").write_bytes(b"not a model")
    api = ApiActions(bare.test_client()).user()
    response = api.upload(photo(), classes="person")
    assert response.status_code == 503
    assert response.json["detail"].startswith("Detection is unavailable: the detection model could not be loaded.")
    assert str(models) not in response.json["detail"] and analyses(bare) == []


def test_a_failed_download_is_not_tried_again_for_every_photo(make_app, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    app = make_app(YOLO_MODEL="", YOLO_OFFLINE=False)
    with app.app_context():
        detector = registry.get_detector()
        with pytest.raises(ModelUnavailable) as first:
            detector.load()
        with pytest.raises(ModelUnavailable) as second:
            detector.load()
    assert second.value is first.value  # remembered for a minute, not another attempt


def test_retry_all_failed_leaves_other_users_alone(bare, auth_factory, random_weights):
    client, auth = auth_factory(bare)
    auth.signup()
    theirs = add_analysis(bare, status=RunStatus.FAILED, user_email="eve@example.com")
    install_model(bare, random_weights)
    post_form(client, "/analyses/retry-failed", headers=HX)
    [row] = analyses(bare)
    assert row.id == theirs.id and row.status == RunStatus.FAILED


def test_htmx_retry_of_a_card_answers_the_card_again(bare, failed, random_weights):
    client, failed = failed
    card = client.get(f"/analyses/{failed.public_id}/card").get_data(as_text=True)
    assert f'hx-post="/analyses/{failed.public_id}/retry"' in card
    install_model(bare, random_weights)
    response = post_form(client, f"/analyses/{failed.public_id}/retry", headers=HX)
    assert response.status_code == 200 and f'id="analysis-{failed.public_id}"' in response.get_data(as_text=True)
    [analysis] = analyses(bare)
    assert analysis.status == RunStatus.DONE and analysis.error is None and analysis.annotated_path


def test_retry_from_the_detail_page_reloads_it(failed):
    client, failed = failed
    page = client.get(f"/analyses/{failed.public_id}").get_data(as_text=True)
    assert 'id="detail-retry"' in page and NO_MODEL in page
    response = post_form(client, f"/analyses/{failed.public_id}/retry",
                         headers={**HX, "HX-Trigger": "detail-retry"}, page=f"/analyses/{failed.public_id}")
    assert response.headers["HX-Redirect"] == f"/analyses/{failed.public_id}"


def test_api_retry_requeues_a_failed_analysis_with_the_same_parameters(bare, random_weights):
    api = ApiActions(bare.test_client()).user()
    first = api.upload(photo(), conf="0.4", imgsz="320", query="?wait=true").json["analyses"][0]
    assert first["status"] == "failed" and first["error"] == NO_MODEL
    install_model(bare, random_weights)
    response = api.post(f"/api/v1/analyses/{first['id']}/retry?wait=true")
    assert response.status_code == 201
    [again] = response.json["analyses"]
    assert again["id"] == first["id"] and again["status"] == "done" and again["error"] is None
    assert (again["model"]["conf"], again["model"]["imgsz"]) == (0.4, 320)


def test_api_retry_of_an_analysis_that_did_not_fail_is_409(api, app):
    api.user()
    done = add_analysis(app)
    response = api.post(f"/api/v1/analyses/{done.public_id}/retry")
    assert response.status_code == 409 and "Only a failed analysis" in response.json["detail"]


def test_building_the_app_touches_no_rows(make_app):
    app = make_app()
    orphan = add_analysis(app, status=RunStatus.RUNNING, worker=f"{socket.gethostname()}:999999:1")
    make_app()  # as `flask db upgrade` or a test would
    assert analyses(app)[0].status == RunStatus.RUNNING
    result = app.test_cli_runner().invoke(args=["recover-interrupted"])
    assert result.exit_code == 0 and "1 interrupted" in result.output
    [row] = analyses(app)
    assert row.id == orphan.id and row.status == RunStatus.FAILED and row.error == INTERRUPTED


def test_two_retries_at_once_queue_the_analysis_once(bare, failed, random_weights):
    """Two requests that both saw the analysis failed: the second finds it already claimed."""
    from webapp.analyses import uploads
    from webapp.extensions import db
    from webapp.models import Run

    _, analysis = failed
    install_model(bare, random_weights)
    with bare.app_context():
        seen_by_first = db.session.get(Run, analysis.id)
        with bare.app_context():  # a second request, with its own session
            seen_by_second = db.session.get(Run, analysis.id)
            assert uploads.retry([seen_by_second]).accepted == [seen_by_second]
        assert seen_by_first.is_failed  # still what this request read
        assert uploads.retry([seen_by_first]).accepted == []
    assert analyses(bare)[0].status == RunStatus.DONE
