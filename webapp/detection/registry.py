"""Which model runs: the configured models by name, the detector of each (loaded once per
process), and the class check every path shares."""
import difflib
import functools
import logging
import re
from pathlib import Path
from typing import Optional

import yaml
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
        named = []
        for name in unknown:  # the closest names, not the whole list (COCO's is 80 long)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            named.append(f"{name}: did you mean {' or '.join(close)}?" if close else f"{name}.")
        classes = (f"Its classes: {', '.join(known)}." if len(known) <= 20
                   else f"It has {len(known)} classes, from {known[0]} to {known[-1]} (GET /api/v1/models lists them).")
        super().__init__(f"No class named {' No class named '.join(named)} {classes}", Refused.INVALID)
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
    below) first, then YOLO_MODELS' in their order, then every other model in MODELS_DIR, named
    after its file (looked for on every call: one copied in is offered without a restart).
    Raises ValueError for a malformed list."""
    models = {DEFAULT_NAME: config["YOLO_MODEL"]}
    for item in filter(None, (part.strip() for part in config.get("YOLO_MODELS", "").split(","))):
        name, _, path = (text.strip() for text in item.partition("="))
        if not MODEL_NAME.fullmatch(name) or not path or name in models:
            raise ValueError(f"YOLO_MODELS: {item!r} is not name=path (a new lower-case name of letters, "
                             "digits, - or _; `default` is YOLO_MODEL)")
        models[name] = path
    if config.get("MODELS_DIR"):
        models.update(_folder_models(Path(config["MODELS_DIR"]), config["YOLO_MODEL"], models))
    return models


def _folder_models(folder: Path, default: str, named: dict[str, str]) -> dict[str, str]:
    """The models in `folder` not already offered (the default, or one YOLO_MODELS names), by name."""
    if not folder.is_dir():
        return {}
    if not default:
        default_path = find_local_model(folder)
    else:
        default_path = folder / default if is_bare_weights_name(default) else Path(default)
    taken = {_resolved(Path(p)) for p in named.values() if p} | ({_resolved(default_path)} if default_path else set())
    found: dict[str, str] = {}
    for path in sorted(p for p in folder.iterdir() if _is_model(p)):
        if _resolved(path) in taken:
            continue
        name = _name_of(path, set(named) | set(found))
        if name:
            found[name] = str(path)
    return found


def _name_of(path: Path, used: set[str]) -> Optional[str]:
    """A model's name from its file: yolov8n.onnx -> yolov8n, yolo11s_openvino_model -> yolo11s
    (lower case, other characters as -, at most 32), made unique with -2, -3…; None if none fits."""
    stem = path.name
    for ending in (*MODEL_FOLDERS, *MODEL_FILES):
        if stem.endswith(ending):
            stem = stem[: -len(ending)]
            break
    base = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:28]
    for number in range(1, 100):
        name = base if number == 1 else f"{base}-{number}"
        if MODEL_NAME.fullmatch(name) and name not in used:
            return name
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


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


class FixedSize(Refused):
    """A size asked of a model exported for one input size only."""

    def __init__(self, asked: int, size: int, name: str):
        super().__init__(f"The model {name} runs at {size} px only (it was exported for that input size): "
                         f"leave imgsz out or send {size}, not {asked}.", Refused.INVALID)
        self.asked, self.size = asked, size


def fixed_input_size(app: Optional[Flask] = None, model: Optional[str] = None) -> Optional[int]:
    """The one input size the model was exported for (an OpenVINO folder whose metadata says it
    is not dynamic, an ONNX file with a fixed input shape), or None: it runs at any size (or its
    files do not say, where the `onnx` package is not installed). Read from its files, without
    loading it, so a web process without PyTorch knows too."""
    path = Path(settings_for((app or current_app).config, model).model)
    try:
        return _input_size(str(path), path.stat().st_mtime)
    except OSError:
        return None


@functools.lru_cache(maxsize=16)
def _input_size(path: str, _mtime: float) -> Optional[int]:
    model = Path(path)
    try:
        if model.is_dir() and (model / "metadata.yaml").is_file():
            metadata = yaml.safe_load((model / "metadata.yaml").read_text()) or {}
            size = metadata.get("imgsz")
            if (metadata.get("args") or {}).get("dynamic") or not size:
                return None
            return int(max(size)) if isinstance(size, list) else int(size)
        if model.suffix == ".onnx":
            return _onnx_input_size(model)
    except Exception:  # noqa: BLE001 - a broken model: its loading says what is wrong, in words
        logger.warning("Could not read the input size of %s", path, exc_info=True)
    return None


def _onnx_input_size(model: Path) -> Optional[int]:
    try:
        import onnx
    except ImportError:  # the web tier does not carry it: its workers record the size they ran at
        return None
    graph = onnx.load(str(model), load_external_data=False).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[2:]] if graph.input else []
    return max(dims) if dims and all(d > 0 for d in dims) else None


def check_size(imgsz: Optional[int], model: Optional[str] = None) -> None:
    """Raise FixedSize when `imgsz` is asked of a model that runs at another size only."""
    size = fixed_input_size(model=model) if imgsz else None
    if size and imgsz != size:
        raise FixedSize(imgsz, size, settings_for(current_app.config, model).model_name)


def run_size(imgsz: Optional[int], model: Optional[str] = None) -> int:
    """The size a run really runs at: the model's own where it has only one, else the one asked
    (or YOLO_IMGSZ)."""
    return fixed_input_size(model=model) or imgsz or current_app.config["YOLO_IMGSZ"]


def is_bare_weights_name(model: str) -> bool:
    path = Path(model)
    return not path.parent.parts and path.suffix == ".pt" and not path.exists()


def get_detector(app: Optional[Flask] = None, model: Optional[str] = None) -> Detector:
    """The process's detector for the app's current settings, of the model called `model` (None:
    the default), loaded lazily, on first use (once per process and model)."""
    return shared_detector(settings_for((app or current_app).config, model))


def decode_size(imgsz: Optional[int] = None, model: Optional[str] = None, app: Optional[Flask] = None) -> int:
    """How large a photo is decoded for detection (`vision.images.decode`'s `at_least`): the size
    the model runs at (`imgsz`; a fixed-input model's own; else YOLO_IMGSZ), or the thumbnail's
    when larger. The same settings give the same pixels, so every path (an upload, a re-run, the
    import, the DeepStack endpoint, either executor) detects on the same pixels."""
    config = (app or current_app).config
    runs_at = fixed_input_size(app, model) or imgsz or config["YOLO_IMGSZ"]
    return max(runs_at, config["THUMBNAIL_SIZE"])


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
