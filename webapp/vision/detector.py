"""The YOLO detector: loaded once per process, reused for every analysis."""
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

EXTENSION_KEY = "detector"


class DetectorError(RuntimeError):
    """The model could not be loaded or run; the message is meant for the person who uploaded."""


@dataclass(frozen=True)
class DetectorSettings:
    model: str = "yolo11n.pt"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:0", ...
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    floor: float = 0.05  # everything at or above this is returned, so pages can filter later

    @classmethod
    def from_config(cls, config) -> "DetectorSettings":
        return cls(
            model=config["YOLO_MODEL"],
            device=config["YOLO_DEVICE"],
            conf=config["YOLO_CONF"],
            iou=config["YOLO_IOU"],
            imgsz=config["YOLO_IMGSZ"],
            floor=min(config["YOLO_STORE_FLOOR"], config["YOLO_CONF"]),
        )


@dataclass
class Box:
    class_id: int
    label: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class DetectionResult:
    boxes: list[Box]
    names: dict[int, str]
    device: str
    timings_ms: dict[str, float] = field(default_factory=dict)


def resolve_device(requested: str) -> str:
    """"auto" is the first CUDA GPU when torch sees one, else the CPU."""
    if requested and requested != "auto":
        return requested
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def describe_model_source(model: str) -> Optional[str]:
    """A one-line problem with the configured weights, or None when they look usable."""
    path = Path(model)
    if path.suffix in (".yaml", ".yml") and not path.parent.parts:
        return None  # an architecture from the ultralytics package: random weights, no download
    if path.exists():
        return None
    if len(path.parts) > 1 or path.is_absolute():
        return f"YOLO_MODEL {model} does not exist."
    if os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes"):
        return f"YOLO_MODEL {model} is not on disk and YOLO_OFFLINE is set, so it cannot be downloaded."
    return None  # a bare name Ultralytics will try to download on first use


class Detector:
    """Wraps an Ultralytics YOLO model. Thread-safe: one prediction at a time per process."""

    def __init__(self, settings: DetectorSettings):
        self.settings = settings
        self._model = None
        self._device: Optional[str] = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> Optional[str]:
        """The device in use once loaded (None before)."""
        return self._device

    def load(self):
        """Load the weights (once). Raises DetectorError with a readable reason."""
        if self._model is not None:
            return self._model
        problem = describe_model_source(self.settings.model)
        if problem:
            raise DetectorError(f"The detection model could not be loaded: {problem}")
        started = time.perf_counter()
        try:
            from ultralytics import YOLO

            model = YOLO(self.settings.model, task="detect")
            self._device = resolve_device(self.settings.device)
        except Exception as exc:  # Ultralytics raises many types for missing/broken weights
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise DetectorError(f"The detection model could not be loaded: {reason}") from exc
        self._model = model
        logger.info(
            "Loaded YOLO model %s on %s in %.1fs",
            self.settings.model, self._device, time.perf_counter() - started,
        )
        return model

    def detect(
        self,
        image_bgr: np.ndarray,
        *,
        floor: Optional[float] = None,
        iou: Optional[float] = None,
        imgsz: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
    ) -> DetectionResult:
        """Detect objects in an upright BGR image; boxes are in that image's pixels. Returns every
        box at or above `floor` (default: the settings' floor), optionally of `classes` only."""
        with self._lock:
            model = self.load()
            try:
                result = model.predict(
                    image_bgr,
                    conf=self.settings.floor if floor is None else floor,
                    iou=iou if iou is not None else self.settings.iou,
                    imgsz=imgsz or self.settings.imgsz,
                    device=self._device,
                    classes=list(classes) if classes else None,
                    verbose=False,
                    **self._precision(),
                )[0]
            except Exception as exc:
                raise DetectorError(f"Detection failed: {' '.join(str(exc).split())}") from exc
        return _to_result(result, self._device)

    def _precision(self) -> dict:
        """Half precision on CUDA (Ultralytics' `quantize=16`); the runtime's default elsewhere."""
        return {"quantize": 16} if self._device.startswith("cuda") else {}

    def names(self) -> dict[int, str]:
        return dict(self.load().names)


def _to_result(result, device: str) -> DetectionResult:
    names = {int(k): v for k, v in result.names.items()}
    boxes = []
    if result.boxes is not None and len(result.boxes):
        xyxy = result.boxes.xyxy.cpu().numpy().astype(float)
        confs = result.boxes.conf.cpu().numpy().astype(float)
        classes = result.boxes.cls.cpu().numpy().astype(int)
        for (x1, y1, x2, y2), conf, cls in zip(xyxy.tolist(), confs.tolist(), classes.tolist(), strict=True):
            boxes.append(Box(cls, names.get(cls, str(cls)), conf, x1, y1, x2, y2))
    boxes.sort(key=lambda b: b.confidence, reverse=True)
    timings = {k: float(v) for k, v in result.speed.items() if v is not None}
    return DetectionResult(boxes=boxes, names=names, device=device, timings_ms=timings)


_detectors: dict[DetectorSettings, Detector] = {}
_detectors_lock = threading.Lock()


def shared_detector(settings: DetectorSettings) -> Detector:
    """One detector per process for each distinct settings, however many apps are built."""
    with _detectors_lock:
        if settings not in _detectors:
            _detectors[settings] = Detector(settings)
        return _detectors[settings]


def init_app(app) -> None:
    """Attach the process's detector (loaded lazily, on first use) and report unusable weights."""
    settings = DetectorSettings.from_config(app.config)
    app.extensions[EXTENSION_KEY] = shared_detector(settings)
    problem = describe_model_source(settings.model)
    if problem:
        logger.error("%s Analyses will fail until it is fixed.", problem)


def get_detector(app) -> Detector:
    return app.extensions[EXTENSION_KEY]
