"""Which model runs: the configured models by name, the detector of each (loaded once per
process), and the class check every path shares."""
import logging
import re
from pathlib import Path
from typing import Optional

from flask import Flask, current_app

from webapp.errors import Refused
from webapp.vision.detector import Detector, DetectorSettings, shared_detector

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "yolo11n.pt"
DEFAULT_NAME = "default"  # the name of YOLO_MODEL among YOLO_MODELS' named models
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# What counts as a model in MODELS_DIR: weights files, and the folders Ultralytics exports.
MODEL_FILES = (".pt", ".onnx", ".engine", ".torchscript")
MODEL_FOLDERS = ("_openvino_model", "_ncnn_model", "_saved_model")


class UnknownModel(Refused):
    """An upload named a model this server does not have."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(f"Unknown model {name!r}: this server has {', '.join(known)}.", Refused.INVALID)
        self.name, self.known = name, known


class UnknownClasses(Refused):
    """Some requested class names are not classes of the model."""

    def __init__(self, unknown: list[str], known: list[str]):
        super().__init__(f"Unknown class names: {', '.join(unknown)}. Known classes: {', '.join(known)}.",
                         Refused.INVALID)
        self.unknown, self.known = unknown, known


def runs_here(app: Optional[Flask] = None) -> bool:
    """Whether this process runs detection itself (else Celery workers do, elsewhere)."""
    config = (app or current_app).config
    return config["ANALYSIS_EXECUTOR"] != "celery" or config["DETECTION_WORKER"]


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


def model_key(name: Optional[str], app: Optional[Flask] = None) -> Optional[str]:
    """The model's name as stored (None for the default); UnknownModel when there is none such."""
    if name in (None, "", DEFAULT_NAME):
        return None
    known = model_names(app)
    if name not in known:
        raise UnknownModel(name, known)
    return name


def settings_for(config, name: Optional[str] = None) -> DetectorSettings:
    """The detector settings the configuration asks for (of the model called `name`; None: the
    default), model path resolved as described in the package's docstring."""
    models_dir = Path(config["MODELS_DIR"])
    model, download = config["YOLO_MODEL"], False
    if name not in (None, DEFAULT_NAME):
        model = named_models(config)[name]
    if not model:
        local = find_local_model(models_dir)
        model = str(local) if local else str(models_dir / DEFAULT_MODEL)
        download = local is None and not config["YOLO_OFFLINE"]
    elif is_bare_weights_name(model):  # e.g. yolo11s.pt: kept in MODELS_DIR once downloaded
        model, download = str(models_dir / model), not config["YOLO_OFFLINE"]
    return DetectorSettings(
        model=model, device=config["YOLO_DEVICE"], conf=config["YOLO_CONF"], iou=config["YOLO_IOU"],
        imgsz=config["YOLO_IMGSZ"], floor=min(config["YOLO_STORE_FLOOR"], config["YOLO_CONF"]),
        download=download, openvino_hint=config["DETECT_OPENVINO_HINT"],
    )


def is_bare_weights_name(model: str) -> bool:
    path = Path(model)
    return not path.parent.parts and path.suffix == ".pt" and not path.exists()


def get_detector(app: Optional[Flask] = None, model: Optional[str] = None) -> Detector:
    """The process's detector for the app's current settings, of the model called `model` (None:
    the default), loaded lazily, on first use (once per process and model)."""
    return shared_detector(settings_for((app or current_app).config, model))


def class_ids(names: Optional[list[str]], known: dict[int, str]) -> Optional[list[int]]:
    """The ids of these class names among the model's classes (`known`, by id); None (every
    class) when no names are given. Raises UnknownClasses rather than dropping a name, so a list
    never turns into "every class"."""
    if not names:
        return None
    ids = {name: class_id for class_id, name in known.items()}
    unknown = [name for name in names if name not in ids]
    if unknown:
        raise UnknownClasses(unknown, list(known.values()))
    return [ids[name] for name in names]
