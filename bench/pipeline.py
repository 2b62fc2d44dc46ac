"""Benchmark: the app's full upload path against a plain Ultralytics loop, same model, one run.

(a) baseline: for each photo, `model.predict(path)` + `result.plot()` + `cv2.imwrite`.
(b) app: each photo POSTed to /analyses through the Flask test client (CSRF, multipart,
    validation, EXIF, thumbnail, database rows), detection on the background worker,
    until every analysis is `done`.

Prints images per second for both and the ratio b/a. Usage:
    python bench/pipeline.py [--images N] [--model PATH] [--repeat R]
"""
import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"
DEFAULT_IMAGES = SHARED / "datasets" / "coco128" / "images" / "train2017"


def baseline(model_path: str, photos: list[Path], out: Path, conf: float) -> float:
    import cv2
    from ultralytics import YOLO

    model = YOLO(model_path, task="detect")
    model.predict(str(photos[0]), conf=conf, verbose=False)  # warm-up, as the app's detector is
    started = time.perf_counter()
    for i, photo in enumerate(photos):
        result = model.predict(str(photo), conf=conf, verbose=False)[0]
        cv2.imwrite(str(out / f"{i}.jpg"), result.plot())
    return time.perf_counter() - started


def app_path(model_path: str, photos: list[Path], tmp: Path) -> float:
    import sqlalchemy as sa

    from tests.helpers import csrf_from, make_config
    from webapp import create_app
    from webapp.detection.registry import get_detector
    from webapp.extensions import db
    from webapp.jobs.scheduling import get_runner
    from webapp.models import Run, RunStatus

    app = create_app(make_config(f"sqlite:///{tmp / 'bench.sqlite3'}", tmp,
                                 YOLO_MODEL=model_path, ANALYSIS_EXECUTOR="thread"))
    with app.app_context():
        db.create_all()
    get_detector(app).load()  # the web process has its model loaded before traffic
    client = app.test_client()
    token = csrf_from(client.get("/signup").get_data(as_text=True))
    client.post("/signup", data={"email": "bench@example.com", "password": "benchmark-pw",
                                 "confirm": "benchmark-pw", "csrf_token": token})
    token = csrf_from(client.get("/analyses").get_data(as_text=True))
    payloads = [(p.name, p.read_bytes()) for p in photos]
    started = time.perf_counter()
    for name, data in payloads:
        response = client.post("/analyses", data={"csrf_token": token, "images": (io.BytesIO(data), name)},
                               headers={"HX-Request": "true"}, content_type="multipart/form-data")
        assert response.status_code == 201, response.get_data(as_text=True)[:300]
    get_runner(app).wait()
    elapsed = time.perf_counter() - started
    with app.app_context():
        done = db.session.scalar(sa.select(sa.func.count()).where(Run.status == RunStatus.DONE))
    assert done == len(photos), f"only {done} of {len(photos)} analyses are done"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--photos", default=str(DEFAULT_IMAGES))
    parser.add_argument("--repeat", type=int, default=2, help="alternate a/b this many times")
    args = parser.parse_args()
    photos = sorted(Path(args.photos).glob("*.jpg"))[: args.images]
    if not photos or not Path(args.model).exists():
        sys.exit(f"Need photos in {args.photos} and the model at {args.model}")
    print(f"{len(photos)} photos, model {args.model}")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    best_a = best_b = float("inf")
    for round_ in range(args.repeat):
        with tempfile.TemporaryDirectory() as a_dir, tempfile.TemporaryDirectory() as b_dir:
            a = baseline(args.model, photos, Path(a_dir), conf=0.25)
            b = app_path(args.model, photos, Path(b_dir))
        best_a, best_b = min(best_a, a), min(best_b, b)
        print(f"round {round_ + 1}: (a) {len(photos) / a:.2f} img/s   (b) {len(photos) / b:.2f} img/s")
    rate_a, rate_b = len(photos) / best_a, len(photos) / best_b
    print(f"(a) plain Ultralytics loop: {rate_a:.2f} images/s")
    print(f"(b) app upload -> done:     {rate_b:.2f} images/s")
    print(f"ratio b/a: {rate_b / rate_a:.2f}")


if __name__ == "__main__":
    main()
