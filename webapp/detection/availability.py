"""Whether detection is available (and if not, a diagnosis in words for users and for
administrators), and the model's classes, wherever it runs: in this process (the model is
asked) or on Celery workers (what they last reported in Redis, see `webapp/jobs/reports.py`)."""
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import redis
from flask import Flask, current_app

from webapp.detection.registry import (
    DEFAULT_NAME, class_ids, get_detector, is_bare_weights_name, model_names, named_models, runs_here,
)
from webapp.config import BASE_DIR
from webapp.errors import Refused
from webapp.vision.detector import DOWNLOAD_SOURCE, ModelUnavailable

logger = logging.getLogger(__name__)

REPORT_KEY = "spotter:detection"  # the workers' reports, in the broker's Redis
NO_WORKER = "no detection worker is running"
START_WORKER = ("Start one: `celery -A webapp.worker worker -Q detect` (in the stack: "
                "`docker compose up -d worker`); a worker reports its model when it starts.")


@dataclass(frozen=True)
class Diagnosis:
    """Why detection is unavailable, for users, and what an administrator does about it."""

    reason: str  # for users: what is wrong, in plain words
    fix: str  # for administrators: exactly what to do
    uploads_kept: bool = True  # photos are still accepted (to be retried), or refused meanwhile
    hint: str = ""  # the fix in a sentence anyone may read (no settings, no server paths outside the app)


class DetectionUnavailable(Refused):
    """Detection cannot run now; `diagnosis` says why and how to fix it."""

    kind = Refused.UNAVAILABLE

    def __init__(self, diagnosis: Diagnosis, detail: str = ""):
        super().__init__(f"Detection is unavailable: {diagnosis.reason}." + (f" {detail}" if detail else ""))
        self.diagnosis = diagnosis


def init_app(app: Flask) -> None:
    """Say at start-up which model will be used, and what is wrong with it if anything is. A
    malformed YOLO_MODELS stops the start (every page would fail on it), saying what is wrong."""
    named_models(app.config)
    if not runs_here(app):
        logger.info("Detection runs on Celery workers (broker %s)", redacted(app.config["CELERY_BROKER_URL"]))
        return
    detector = get_detector(app)
    problem = availability(app)
    if problem:
        logger.error("Detection is unavailable: %s. %s", problem.reason, problem.fix)
    elif detector.settings.download and not Path(detector.settings.model).exists():
        logger.info("Detection model: %s, to be downloaded into %s/ on first use",
                    detector.settings.model_name, Path(detector.settings.model).parent)
    else:
        logger.info("Detection model: %s", detector.settings.model)


def availability(app: Optional[Flask] = None) -> Optional[Diagnosis]:
    """None when detection looks available (without loading the model here), else why not and
    the fix. With Celery workers: what they last reported."""
    app = app or current_app
    if runs_here(app):
        problem = get_detector(app).problem()
        return explain(problem, app.config) if problem else None
    report = read_report(app)
    if not report.get("reason"):
        return None
    return Diagnosis(report["reason"], report["fix"], uploads_kept=not report.get("queue_down"))


def status_line(app: Optional[Flask] = None) -> str:
    """For /healthz: "ok" or "unavailable: <reason>"."""
    problem = availability(app)
    return f"unavailable: {problem.reason}" if problem else "ok"


def class_names(app: Optional[Flask] = None, model: Optional[str] = None) -> dict[int, str]:
    """The model's classes by id: loaded here, or as a worker reported them (a model other than
    the default: {} until a worker has loaded it). Raises DetectionUnavailable."""
    app = app or current_app
    if runs_here(app):
        try:
            return get_detector(app, model).names()
        except ModelUnavailable as exc:
            raise DetectionUnavailable(explain(exc, app.config)) from exc
    report = read_report(app)
    if model not in (None, DEFAULT_NAME):
        found = (report.get("models") or {}).get(model) or {}
        return {int(k): v for k, v in (found.get("names") or {}).items()}
    if report.get("reason") or not report.get("names"):
        raise DetectionUnavailable(Diagnosis(report.get("reason") or NO_WORKER, report.get("fix") or START_WORKER))
    return {int(k): v for k, v in report["names"].items()}


def check_classes(names: Optional[tuple[str, ...]], model: Optional[str] = None) -> None:
    """Raise UnknownClasses for names the model does not know, before anything is stored. Needs
    the model's classes, so it may raise DetectionUnavailable. (A model no Celery worker has loaded yet
    is not checked here: its worker fails the run with the same check.)"""
    if names:
        known = class_names(model=model)
        if known:
            class_ids(list(names), known)


def expected_model_name(app: Optional[Flask] = None, model: Optional[str] = None) -> str:
    """The file name of the model an upload will run with: here, or as the workers reported it."""
    app = app or current_app
    if runs_here(app) or model not in (None, DEFAULT_NAME):
        return get_detector(app, model).settings.model_name
    return read_report(app).get("model") or get_detector(app).settings.model_name


def models_info(app: Optional[Flask] = None) -> list[dict]:
    """Each configured model: its name, file name, whether it can be used and its classes."""
    found = []
    for name in model_names(app):
        key = None if name == DEFAULT_NAME else name
        info = {"name": name, "model": expected_model_name(app, model=key),
                "default": key is None, "available": True, "reason": None, "classes": None}
        try:
            classes = class_names(app, model=key)
            info["classes"] = {str(k): v for k, v in classes.items()} or None
        except DetectionUnavailable as exc:
            info.update(available=False, reason=exc.diagnosis.reason)
        found.append(info)
    return found


# ---- what the Celery workers reported ----

_redis_clients: dict[str, redis.Redis] = {}


def reports_redis(app: Flask) -> redis.Redis:
    """A client of the broker's Redis, where the workers' reports live (one per URL and process)."""
    url = app.config["CELERY_BROKER_URL"]
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _redis_clients[url]


def redacted(url: str) -> str:
    return url.split("@", 1)[-1]


def worker_devices(hosts: tuple[str, ...], app: Optional[Flask] = None) -> dict[str, int]:
    """{device: how many worker processes detect on it} of the workers on these hosts (those that
    answered a ping: a killed worker's report stays behind until a worker of its host starts), as
    they reported it: "cpu", "cuda:0", ... For /healthz: the check that a GPU worker sees its card."""
    app = app or current_app
    try:
        raw = reports_redis(app).hgetall(REPORT_KEY)
    except redis.RedisError:
        return {}
    devices: dict[str, int] = {}
    for field, body in raw.items():
        host = (field.decode() if isinstance(field, bytes) else field).rsplit(":", 2)[0]
        device = json.loads(body).get("device")
        if host in hosts and device:
            devices[device] = devices.get(device, 0) + 1
    return devices


def read_report(app: Flask) -> dict:
    """What the workers reported: a working one's report if any works, else the newest; one
    saying what is wrong when there is none or Redis is down."""
    try:
        raw = reports_redis(app).hgetall(REPORT_KEY)
    except redis.RedisError as exc:
        logger.warning("Cannot read the detection report: %s", exc)
        return {"reason": "the job queue cannot be reached", "queue_down": True,
                "fix": f"Check that Redis answers at CELERY_BROKER_URL ({redacted(app.config['CELERY_BROKER_URL'])})."}
    reports = sorted((json.loads(v) for v in raw.values()), key=lambda r: r.get("at", 0), reverse=True)
    if not reports:
        return {"reason": NO_WORKER, "fix": START_WORKER}
    return next((r for r in reports if not r.get("reason")), reports[0])


def explain(error: ModelUnavailable, config) -> Diagnosis:
    """What a model that cannot be loaded means for users, and the administrator's fix."""
    models_dir, name = config["MODELS_DIR"], Path(error.model).name
    kinds = "a .pt or .onnx file, or an *_openvino_model folder"
    configured = config["YOLO_MODEL"] and not is_bare_weights_name(config["YOLO_MODEL"])
    if error.cause == "missing" and configured:
        return Diagnosis(
            "the detection model configured on this server is missing",
            f"YOLO_MODEL is {config['YOLO_MODEL']}, which does not exist. Point YOLO_MODEL at a "
            f"model ({kinds}), or unset it and copy a model into {models_dir}/; then restart.")
    put_one = f"put a YOLO model ({kinds}) in {_shown(models_dir)} on the server: it is found without a restart"
    if error.cause in ("missing", "offline"):  # a model to download, with downloads off
        return Diagnosis(
            "no detection model is installed on this server, and it is not allowed to download one",
            f"Copy a YOLO model ({kinds}) into {models_dir}/ (it is found without a restart), "
            f"or set YOLO_MODEL to a model's path; or unset YOLO_OFFLINE so that {name} is "
            f"downloaded from {DOWNLOAD_SOURCE}.", hint=put_one)
    if error.cause == "download":
        return Diagnosis(
            "the detection model could not be downloaded",
            f"Check that this machine can reach {DOWNLOAD_SOURCE}; or download {name} there on a "
            f"machine with internet and copy it into {models_dir}/ (it is found without a restart), "
            f"or set YOLO_MODEL to a local model.", hint=put_one)
    return Diagnosis(
        "the detection model could not be loaded",
        f"Replace {error.model} with a complete, working model (a folder still being copied in "
        f"is retried on the next photo), then check it with `make check-model` "
        f"(`flask --app wsgi check-model`).")


def _shown(folder: str) -> str:
    """The models folder as the pages name it: relative to the app's folder where it lies in it
    (instance/models/), else just "the models folder" (no server path for every user to read)."""
    try:
        return f"{Path(folder).resolve().relative_to(BASE_DIR)}/"
    except ValueError:
        return "the models folder"
