"""The app's YOLO detector: which model it uses, one `Detector` per process, and whether
detection is available, said in words for users (the gallery banner, /healthz) and for
administrators (`flask check-model`).

The model is YOLO_MODEL when set. Otherwise it is the first model found in MODELS_DIR
(default `instance/models/`), looked up again on every use, so a model copied there is picked up
without a restart; with none there, `yolo11n.pt` is downloaded there on first use, unless
YOLO_OFFLINE is set.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from flask import Flask, current_app

from webapp.vision.detector import (
    DOWNLOAD_SOURCE, Detector, DetectorSettings, ModelUnavailable, shared_detector,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "yolo11n.pt"
# What counts as a model in MODELS_DIR: weights files, and the folders Ultralytics exports.
MODEL_FILES = (".pt", ".onnx", ".engine", ".torchscript")
MODEL_FOLDERS = ("_openvino_model", "_ncnn_model", "_saved_model")


@dataclass(frozen=True)
class Unavailable:
    reason: str  # for users: what is wrong, in plain words
    fix: str  # for administrators: exactly what to do


def init_app(app: Flask) -> None:
    """Say at start-up which model will be used, and what is wrong with it if anything is."""
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


def settings_for(config) -> DetectorSettings:
    """The detector settings the configuration asks for, model path resolved as described above."""
    models_dir = Path(config["MODELS_DIR"])
    model, download = config["YOLO_MODEL"], False
    if not model:
        local = find_local_model(models_dir)
        model = str(local) if local else str(models_dir / DEFAULT_MODEL)
        download = local is None and not config["YOLO_OFFLINE"]
    elif _is_bare_weights_name(model):  # e.g. yolo11s.pt: kept in MODELS_DIR once downloaded
        model, download = str(models_dir / model), not config["YOLO_OFFLINE"]
    return DetectorSettings(
        model=model, device=config["YOLO_DEVICE"], conf=config["YOLO_CONF"], iou=config["YOLO_IOU"],
        imgsz=config["YOLO_IMGSZ"], floor=min(config["YOLO_STORE_FLOOR"], config["YOLO_CONF"]),
        download=download,
    )


def _is_bare_weights_name(model: str) -> bool:
    path = Path(model)
    return not path.parent.parts and path.suffix == ".pt" and not path.exists()


def get_detector(app: Optional[Flask] = None) -> Detector:
    """The process's detector for the app's current settings (loaded lazily, on first use)."""
    return shared_detector(settings_for((app or current_app).config))


def availability(app: Optional[Flask] = None) -> Optional[Unavailable]:
    """None when detection looks available (without loading the model), else why not and the fix."""
    app = app or current_app
    problem = get_detector(app).problem()
    return explain(problem, app.config) if problem else None


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
