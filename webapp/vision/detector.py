"""The YOLO detector: loaded once per process, reused for every photo. Knows nothing of Flask."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # NumPy is the detecting side's: imported where pixels are made
    import numpy as np

logger = logging.getLogger(__name__)


def _blank(size: int) -> np.ndarray:
    """A black size×size BGR picture: what a model is tried and warmed on."""
    import numpy as np

    return np.zeros((size, size, 3), dtype=np.uint8)

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
    # OpenVINO on the CPU: "throughput" compiles the model once for several parallel streams and
    # runs the photos of a batch on them at once (one Ultralytics predictor per stream);
    # "latency" is Ultralytics' own set-up, one photo after another on every core.
    openvino_hint: str = "throughput"

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
        self._lanes: list = []  # models predicting in parallel (OpenVINO streams); the first is _model
        self._lane_pool: Optional[ThreadPoolExecutor] = None
        self._single = self._batched = None  # lane 0's compiled models for one photo, and for a batch

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def lanes(self) -> int:
        """How many photos the loaded model predicts at once (1 before loading)."""
        return max(1, len(self._lanes))

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
            model.predict(_blank(32), device=self._device, verbose=False, **self._precision())
            if not model.names:
                raise ValueError("the model has no class names")
            self._lanes = self._openvino_lanes(model)
            self._quiet_torch(model)
        except Exception as exc:  # Ultralytics raises many types for missing/broken weights
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelUnavailable("broken", self.settings.model, reason) from exc
        logger.info(
            "Loaded YOLO model %s on %s in %.1fs",
            self.settings.model, self._device, time.perf_counter() - started,
        )
        return model

    def _openvino_lanes(self, model) -> list:
        """For an OpenVINO model on the CPU in "throughput" mode: the model compiled once more with
        OpenVINO's THROUGHPUT hint, and one Ultralytics model per stream it chose, each running
        its share of a batch on an inference request of its own. A photo alone still runs on
        Ultralytics' LATENCY compilation (every core on one photo). Otherwise just `model`."""
        backend = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
        if (self.settings.openvino_hint != "throughput" or type(backend).__name__ != "OpenVINOBackend"
                or not self._device.startswith("cpu") or getattr(backend, "read_model", None) is not None):
            return [model]
        import openvino as ov
        from ultralytics import YOLO

        path = Path(self.settings.model)
        xml = path if path.is_file() else next(path.glob("*.xml"))
        core = ov.Core()
        compiled = core.compile_model(core.read_model(xml), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
        count = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        lanes = [model]
        for _ in range(count - 1):
            lane = YOLO(self.settings.model, task="detect")
            lane.predict(_blank(32), device=self._device, verbose=False)
            lanes.append(lane)
        self._single = backend.ov_compiled_model  # Ultralytics' LATENCY compilation: one photo, every core
        for lane in lanes:
            lane.predictor.model.backend.ov_compiled_model = _InferLane(compiled)
        self._batched = lanes[0].predictor.model.backend.ov_compiled_model
        if count > 1:
            self._lane_pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="openvino-lane")
        logger.info("OpenVINO THROUGHPUT mode: %d photos at once", count)
        return lanes

    def _quiet_torch(self, model) -> None:
        """With an exported model on the CPU, PyTorch only pre- and post-processes small tensors:
        one thread does that as fast, without its idle threads spinning on the cores the model's
        runtime (OpenVINO, ONNX Runtime) needs. Measured in bench/RESULTS.md."""
        backend = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
        if self._device.startswith("cpu") and type(backend).__name__ in ("OpenVINOBackend", "ONNXBackend"):
            import torch

            torch.set_num_threads(1)

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
        return self.detect_batch([image_bgr], floor=floor, iou=iou, imgsz=imgsz, classes=classes)[0]

    def detect_batch(
        self,
        images_bgr: Sequence[np.ndarray],
        *,
        floor: Optional[float] = None,
        iou: Optional[float] = None,
        imgsz: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
    ) -> list[DetectionResult]:
        """`detect` for several images in one batched prediction, one result per image, in order.

        Every image is letterboxed to the full `imgsz` square, alone or in a batch, whatever the
        mix of sizes (Ultralytics' `rect=False`; exported fixed-shape models always do this), so a
        photo gets the same boxes whether it ran alone or beside others. Per-image timings are the
        batch's divided by its size."""
        if classes is not None and not len(classes):
            raise DetectorError("No class to detect was given.")
        if not images_bgr:
            return []
        options = {
            "conf": self.settings.floor if floor is None else floor,
            "iou": iou if iou is not None else self.settings.iou,
            "imgsz": imgsz or self.settings.imgsz,
            "classes": list(classes) if classes is not None else None,
        }
        with self._lock:
            self.load()
            try:
                if self._lane_pool is None:
                    results = self._predict(self._lanes[0], list(images_bgr), options)
                elif len(images_bgr) == 1:
                    self._lanes[0].predictor.model.backend.ov_compiled_model = self._single
                    results = self._predict(self._lanes[0], list(images_bgr), options)
                else:  # contiguous shares, one per lane, predicted at once
                    self._lanes[0].predictor.model.backend.ov_compiled_model = self._batched
                    share = -(-len(images_bgr) // len(self._lanes))
                    parts = [list(images_bgr[i:i + share]) for i in range(0, len(images_bgr), share)]
                    futures = [self._lane_pool.submit(self._predict, lane, part, options)
                               for lane, part in zip(self._lanes, parts, strict=False)]
                    results = [result for future in futures for result in future.result()]
            except Exception as exc:
                logger.exception("Prediction failed with %s", self.settings.model)
                raise DetectorError("Detection failed on this photo; the server's log has the details.") from exc
        return [_to_result(result, self._device) for result in results]

    def _predict(self, model, images: list[np.ndarray], options: dict) -> list:
        return model.predict(images, device=self._device, batch=len(images), rect=False, verbose=False,
                             **options, **self._precision())

    def warm_up(self, batch: int = 1) -> None:
        """One prediction at the batch size to come, so the first photos do not pay for kernel
        selection, memory allocation and (OpenVINO) compilation."""
        size = self.settings.imgsz
        self.detect_batch([_blank(size)] * max(batch, 1))

    def _precision(self) -> dict:
        """Half precision on CUDA (Ultralytics' `quantize=16`); the runtime's default elsewhere."""
        return {"quantize": 16} if self._device.startswith("cuda") else {}

    def names(self) -> dict[int, str]:
        return dict(self.load().names)


class _InferLane:
    """Stands in for the compiled model of one Ultralytics OpenVINO backend: the shared
    THROUGHPUT-compiled model, through an inference request of this lane's own (outputs copied)."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __call__(self, inputs):
        return self.request.infer(inputs)

    def input(self, *args):
        return self.compiled.input(*args)


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

