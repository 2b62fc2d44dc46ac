"""The YOLO detector: loaded once per process, reused for every analysis. Knows nothing of Flask."""
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

DOWNLOAD_SOURCE = "https://github.com/ultralytics/assets/releases"
DOWNLOAD_COOLDOWN = 60.0  # seconds after a failed download before another is tried


class DetectorError(RuntimeError):
    """Detection could not run; the message is meant for the person who uploaded."""


class ModelUnavailable(DetectorError):
    """The model could not be loaded. `cause` says why, for whoever explains the fix:
    "missing" (a path that does not exist), "offline" (not on disk and not to be downloaded),
    "download" (the download failed) or "broken" (on disk, but Ultralytics cannot load it)."""

    def __init__(self, cause: str, model: str, detail: str):
        super().__init__(f"The detection model could not be loaded: {detail}")
        self.cause, self.model, self.detail = cause, model, detail


@dataclass(frozen=True)
class DetectorSettings:
    model: str = "yolo11n.pt"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:0", ...
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    floor: float = 0.05  # everything at or above this is returned, so pages can filter later
    download: bool = False  # fetch `model` from Ultralytics' releases when it is not on disk

    @property
    def model_name(self) -> str:
        """The model's file or folder name: what users and API clients are shown (no server path)."""
        return Path(self.model).name


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


def model_problem(settings: DetectorSettings) -> Optional[ModelUnavailable]:
    """Why the configured weights cannot be loaded, as far as the file system tells; None when
    they look usable (or will be downloaded)."""
    path = Path(settings.model)
    if path.suffix in (".yaml", ".yml") and not path.parent.parts:
        return None  # an architecture from the ultralytics package: random weights, no download
    if path.exists() or settings.download:
        return None
    if len(path.parts) > 1 or path.is_absolute():
        return ModelUnavailable("missing", settings.model, f"{settings.model} does not exist.")
    return ModelUnavailable("offline", settings.model,
                            f"{settings.model} is not on disk and downloads are turned off.")


class Detector:
    """Wraps an Ultralytics YOLO model. Thread-safe: one prediction at a time per process."""

    def __init__(self, settings: DetectorSettings):
        self.settings = settings
        self._model = None
        self._device: Optional[str] = None
        self._lock = threading.RLock()  # one load, and one prediction, at a time
        self.error: Optional[ModelUnavailable] = None  # why the last load failed, until one works
        self._failed_at = 0.0  # when `error` happened (monotonic seconds)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> Optional[str]:
        """The device in use once loaded (None before)."""
        return self._device

    def problem(self) -> Optional[ModelUnavailable]:
        """Why detection is unavailable, without loading anything: the last failed load, else
        what the file system says; None when the model is loaded or looks loadable."""
        if self._model is not None:
            return None
        return self.error or model_problem(self.settings)

    def load(self):
        """Load the weights (once), downloading them first where the settings allow.
        Raises ModelUnavailable with a readable reason (and remembers it in `error`)."""
        with self._lock:
            return self._model if self._model is not None else self._load_and_remember()

    def _load_and_remember(self):
        recent = time.monotonic() - self._failed_at < DOWNLOAD_COOLDOWN
        if self.error is not None and self.error.cause == "download" and recent:
            raise self.error  # not another slow attempt for every photo of a batch
        try:
            self._model = self._load()
        except ModelUnavailable as exc:
            self.error, self._failed_at = exc, time.monotonic()
            raise
        self.error = None
        return self._model

    def _load(self):
        problem = model_problem(self.settings)
        if problem:
            raise problem
        if self.settings.download and not Path(self.settings.model).exists():
            self._download()
        started = time.perf_counter()
        try:
            from ultralytics import YOLO

            model = YOLO(self.settings.model, task="detect")
            self._device = resolve_device(self.settings.device)
            # Exported models (ONNX, OpenVINO) are only read at the first prediction: make one now,
            # so a broken or half-copied model fails here, as unavailable, not on a user's photo.
            model.predict(np.zeros((32, 32, 3), dtype=np.uint8), device=self._device, verbose=False,
                          **self._precision())
            if not model.names:
                raise ValueError("the model has no class names")
        except Exception as exc:  # Ultralytics raises many types for missing/broken weights
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelUnavailable("broken", self.settings.model, reason) from exc
        logger.info(
            "Loaded YOLO model %s on %s in %.1fs",
            self.settings.model, self._device, time.perf_counter() - started,
        )
        return model

    def _download(self) -> None:
        target = Path(self.settings.model)
        logger.warning("Downloading the YOLO model %s from %s into %s/ (only this once)",
                       target.name, DOWNLOAD_SOURCE, target.parent)
        try:
            from ultralytics.utils.downloads import attempt_download_asset

            attempt_download_asset(str(target))
        except Exception as exc:  # ConnectionError, HTTP errors, a full disk...
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelUnavailable("download", self.settings.model,
                                   f"downloading {target.name} failed: {reason}") from exc
        if not target.exists():
            raise ModelUnavailable("download", self.settings.model,
                                   f"{target.name} is not a file Ultralytics publishes.")
        logger.info("Downloaded %s (%.1f MB)", target, target.stat().st_size / 1e6)

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
        box at or above `floor` (default: the settings' floor), optionally of `classes` only
        (None: every class; an empty list is refused, since Ultralytics would read it as "every")."""
        if classes is not None and not len(classes):
            raise DetectorError("No class to detect was given.")
        with self._lock:
            model = self.load()
            try:
                result = model.predict(
                    image_bgr,
                    conf=self.settings.floor if floor is None else floor,
                    iou=iou if iou is not None else self.settings.iou,
                    imgsz=imgsz or self.settings.imgsz,
                    device=self._device,
                    classes=list(classes) if classes is not None else None,
                    verbose=False,
                    **self._precision(),
                )[0]
            except Exception as exc:
                logger.exception("Prediction failed with %s", self.settings.model)
                raise DetectorError("Detection failed on this photo; the server's log has the details.") from exc
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

