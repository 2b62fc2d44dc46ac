"""The app's YOLO detector: which model it uses, one `Detector` per process, and whether
detection is available, said in words for users (the gallery banner, /healthz) and for
administrators (`flask check-model`).

The model is YOLO_MODEL when set. Otherwise it is the first model found in MODELS_DIR
(default `instance/models/`), looked up again on every use, so a model copied there is picked up
without a restart; with none there, `yolo11n.pt` is downloaded there on first use, unless
YOLO_OFFLINE is set.

With `ANALYSIS_EXECUTOR=celery` the model lives in the Celery workers, not in the web processes,
which never import torch or Ultralytics: each worker process reports its model (name, class
names, or what is wrong) to a Redis hash when it starts and after every analysis, and withdraws
it when it stops; the web tier reads those reports (detection is available when any worker says
so) for the banner, /healthz and `classes=` validation.
"""
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import redis
from flask import Flask, current_app

from webapp.vision.detector import (
    DOWNLOAD_SOURCE, Detector, DetectorSettings, ModelUnavailable, shared_detector,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "yolo11n.pt"
DEFAULT_NAME = "default"  # the name of YOLO_MODEL among YOLO_MODELS' named models
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# What counts as a model in MODELS_DIR: weights files, and the folders Ultralytics exports.
MODEL_FILES = (".pt", ".onnx", ".engine", ".torchscript")
MODEL_FOLDERS = ("_openvino_model", "_ncnn_model", "_saved_model")


REPORT_KEY = "spotter:detection"  # the workers' report, in the broker's Redis
NO_WORKER = "no detection worker is running"
START_WORKER = ("Start one: `celery -A webapp.worker worker -Q detect` (in the stack: "
                "`docker compose up -d worker`); a worker reports its model when it starts.")


@dataclass(frozen=True)
class Unavailable:
    reason: str  # for users: what is wrong, in plain words
    fix: str  # for administrators: exactly what to do
    uploads_kept: bool = True  # photos are still accepted (to be retried), or refused meanwhile


class NotAvailable(RuntimeError):
    """Detection cannot run now; `unavailable` says why and how to fix it."""

    def __init__(self, unavailable: Unavailable):
        super().__init__(f"Detection is unavailable: {unavailable.reason}.")
        self.unavailable = unavailable


def runs_here(app: Optional[Flask] = None) -> bool:
    """Whether this process runs detection itself (else Celery workers do, elsewhere)."""
    config = (app or current_app).config
    return config["ANALYSIS_EXECUTOR"] != "celery" or config["DETECTION_WORKER"]


def init_app(app: Flask) -> None:
    """Say at start-up which model will be used, and what is wrong with it if anything is. A
    malformed YOLO_MODELS stops the start (every page would fail on it), saying what is wrong."""
    named_models(app.config)
    if not runs_here(app):
        logger.info("Detection runs on Celery workers (broker %s)", _redacted(app.config["CELERY_BROKER_URL"]))
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


def find_local_model(models_dir: Path) -> Optional[Path]:
    """The first model in `models_dir` by name, or None."""
    if not models_dir.is_dir():
        return None
    found = sorted(p for p in models_dir.iterdir() if _is_model(p))
    if len(found) > 1:
        logger.debug("Several models in %s; using %s", models_dir, found[0].name)
    return found[0] if found else None


def _is_model(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return path.name.endswith(MODEL_FOLDERS)
    return path.suffix in MODEL_FILES


class UnknownModel(ValueError):
    """An upload named a model this server does not have."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(f"Unknown model {name!r}: this server has {', '.join(known)}.")
        self.name, self.known = name, known


def named_models(config) -> dict[str, str]:
    """{name: model} of every model uploads may choose: "default" (YOLO_MODEL, as resolved
    below) first, then YOLO_MODELS' in their order. Raises ValueError for a malformed list."""
    models = {DEFAULT_NAME: config["YOLO_MODEL"]}
    for item in filter(None, (part.strip() for part in config.get("YOLO_MODELS", "").split(","))):
        name, _, path = (text.strip() for text in item.partition("="))
        if not MODEL_NAME.fullmatch(name) or not path or name in models:
            raise ValueError(f"YOLO_MODELS: {item!r} is not name=path (a new lower-case name of letters, "
                             "digits, - or _; `default` is YOLO_MODEL)")
        models[name] = path
    return models


def model_names(app: Optional[Flask] = None) -> list[str]:
    return list(named_models((app or current_app).config))


def check_model(name: Optional[str], app: Optional[Flask] = None) -> Optional[str]:
    """The model's name as stored (None for the default); UnknownModel when there is none such."""
    if name in (None, "", DEFAULT_NAME):
        return None
    known = model_names(app)
    if name not in known:
        raise UnknownModel(name, known)
    return name


def settings_for(config, name: Optional[str] = None) -> DetectorSettings:
    """The detector settings the configuration asks for (of the model called `name`; None: the
    default), model path resolved as described above."""
    models_dir = Path(config["MODELS_DIR"])
    model, download = config["YOLO_MODEL"], False
    if name not in (None, DEFAULT_NAME):
        model = named_models(config)[name]
    if not model:
        local = find_local_model(models_dir)
        model = str(local) if local else str(models_dir / DEFAULT_MODEL)
        download = local is None and not config["YOLO_OFFLINE"]
    elif _is_bare_weights_name(model):  # e.g. yolo11s.pt: kept in MODELS_DIR once downloaded
        model, download = str(models_dir / model), not config["YOLO_OFFLINE"]
    return DetectorSettings(
        model=model, device=config["YOLO_DEVICE"], conf=config["YOLO_CONF"], iou=config["YOLO_IOU"],
        imgsz=config["YOLO_IMGSZ"], floor=min(config["YOLO_STORE_FLOOR"], config["YOLO_CONF"]),
        download=download, openvino_hint=config["DETECT_OPENVINO_HINT"],
    )


def _is_bare_weights_name(model: str) -> bool:
    path = Path(model)
    return not path.parent.parts and path.suffix == ".pt" and not path.exists()


def get_detector(app: Optional[Flask] = None, model: Optional[str] = None) -> Detector:
    """The process's detector for the app's current settings, of the model called `model` (None:
    the default), loaded lazily, on first use (once per process and model)."""
    return shared_detector(settings_for((app or current_app).config, model))


def availability(app: Optional[Flask] = None) -> Optional[Unavailable]:
    """None when detection looks available (without loading the model here), else why not and
    the fix. With Celery workers: what they last reported."""
    app = app or current_app
    if runs_here(app):
        problem = get_detector(app).problem()
        return explain(problem, app.config) if problem else None
    report = _read_report(app)
    if not report.get("reason"):
        return None
    return Unavailable(report["reason"], report["fix"], uploads_kept=not report.get("queue_down"))


def class_names(app: Optional[Flask] = None, model: Optional[str] = None) -> dict[int, str]:
    """The model's classes by id: loaded here, or as a worker reported them (a model other than
    the default: {} until a worker has loaded it). Raises NotAvailable."""
    app = app or current_app
    if runs_here(app):
        try:
            return get_detector(app, model).names()
        except ModelUnavailable as exc:
            raise NotAvailable(explain(exc, app.config)) from exc
    report = _read_report(app)
    if model not in (None, DEFAULT_NAME):
        found = (report.get("models") or {}).get(model) or {}
        return {int(k): v for k, v in (found.get("names") or {}).items()}
    if report.get("reason") or not report.get("names"):
        raise NotAvailable(Unavailable(report.get("reason") or NO_WORKER, report.get("fix") or START_WORKER))
    return {int(k): v for k, v in report["names"].items()}


_redis_clients: dict[str, redis.Redis] = {}


def _redis(app: Flask) -> redis.Redis:
    url = app.config["CELERY_BROKER_URL"]
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _redis_clients[url]


def _redacted(url: str) -> str:
    return url.split("@", 1)[-1]


def _read_report(app: Flask) -> dict:
    """What the workers reported: a working one's report if any works, else the newest; one
    saying what is wrong when there is none or Redis is down."""
    try:
        raw = _redis(app).hgetall(REPORT_KEY)
    except redis.RedisError as exc:
        logger.warning("Cannot read the detection report: %s", exc)
        return {"reason": "the job queue cannot be reached", "queue_down": True,
                "fix": f"Check that Redis answers at CELERY_BROKER_URL ({_redacted(app.config['CELERY_BROKER_URL'])})."}
    reports = sorted((json.loads(v) for v in raw.values()), key=lambda r: r.get("at", 0), reverse=True)
    if not reports:
        return {"reason": NO_WORKER, "fix": START_WORKER}
    return next((r for r in reports if not r.get("reason")), reports[0])


def _report_field() -> str:
    from webapp.jobs import worker_id

    return worker_id(os.getpid())


def report(app: Optional[Flask] = None) -> None:
    """In a Celery worker process: write its model, classes or problem for the web tier."""
    app = app or current_app
    if not app.config["DETECTION_WORKER"]:
        return
    detector = get_detector(app)
    problem = availability(app)
    others = {name: get_detector(app, name) for name in model_names(app)[1:]}
    body = json.dumps({
        "model": detector.settings.model_name, "device": detector.device,
        "names": detector.names() if detector.loaded else None,
        "models": {name: {"model": d.settings.model_name, "names": d.names() if d.loaded else None}
                   for name, d in others.items()},
        "reason": problem.reason if problem else None, "fix": problem.fix if problem else None,
        "at": time.time(),
    })
    try:
        _redis(app).hset(REPORT_KEY, _report_field(), body)
    except redis.RedisError as exc:
        logger.warning("Cannot write the detection report: %s", exc)


def withdraw_report(app: Flask) -> None:
    """A worker process that stops takes its report back (one killed leaves it until restarts)."""
    try:
        _redis(app).hdel(REPORT_KEY, _report_field())
    except redis.RedisError as exc:
        logger.warning("Cannot withdraw the detection report: %s", exc)


def expected_model_name(app: Optional[Flask] = None, model: Optional[str] = None) -> str:
    """The file name of the model an upload will run with: here, or as the workers reported it."""
    app = app or current_app
    if runs_here(app) or model not in (None, DEFAULT_NAME):
        return get_detector(app, model).settings.model_name
    return _read_report(app).get("model") or get_detector(app).settings.model_name


def explain(error: ModelUnavailable, config) -> Unavailable:
    models_dir, name = config["MODELS_DIR"], Path(error.model).name
    kinds = "a .pt or .onnx file, or an *_openvino_model folder"
    configured = config["YOLO_MODEL"] and not _is_bare_weights_name(config["YOLO_MODEL"])
    if error.cause == "missing" and configured:
        return Unavailable(
            "the detection model configured on this server is missing",
            f"YOLO_MODEL is {config['YOLO_MODEL']}, which does not exist. Point YOLO_MODEL at a "
            f"model ({kinds}), or unset it and copy a model into {models_dir}/; then restart.")
    if error.cause in ("missing", "offline"):  # a model to download, with downloads off
        return Unavailable(
            "no detection model is installed on this server, and it is not allowed to download one",
            f"Copy a YOLO model ({kinds}) into {models_dir}/ (it is found without a restart), "
            f"or set YOLO_MODEL to a model's path; or unset YOLO_OFFLINE so that {name} is "
            f"downloaded from {DOWNLOAD_SOURCE}.")
    if error.cause == "download":
        return Unavailable(
            "the detection model could not be downloaded",
            f"Check that this machine can reach {DOWNLOAD_SOURCE}; or download {name} there on a "
            f"machine with internet and copy it into {models_dir}/ (it is found without a restart), "
            f"or set YOLO_MODEL to a local model.")
    return Unavailable(
        "the detection model could not be loaded",
        f"Replace {error.model} with a complete, working model (a folder still being copied in "
        f"is retried on the next photo), then check it with `make check-model` "
        f"(`flask --app wsgi check-model`).")


def status_line(app: Optional[Flask] = None) -> str:
    """For /healthz: "ok" or "unavailable: <reason>"."""
    problem = availability(app)
    return f"unavailable: {problem.reason}" if problem else "ok"
