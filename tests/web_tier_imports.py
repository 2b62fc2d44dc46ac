"""Run by test_celery.py in a fresh process: exercise the web tier in Celery mode (uploads, the
gallery, the API, images, exports, /healthz), then print which heavy modules got imported."""
import io
import json
import sys
from pathlib import Path

from tests.factories import add_boxes, analysis, user
from tests.helpers import AuthActions, share_link
from tests.images import encode, sample
from webapp import create_app
from webapp.extensions import db
from webapp.models import RunStatus

HEAVY = ("torch", "torchvision", "ultralytics", "openvino", "onnxruntime", "onnx", "numpy", "cv2")


def drawn(app, client, email: str) -> list[int]:
    """A finished run (as a worker would leave it: an original a browser cannot show as it is,
    a thumbnail, boxes) and everything the web tier draws of it."""
    with app.app_context():
        done = analysis(user(email), status=RunStatus.DONE, width=96, height=64)
        relative = Path(done.photo.original_path).parent
        folder = Path(app.config["UPLOAD_DIR"]) / relative
        folder.mkdir(parents=True)
        (folder / "original.png").write_bytes(encode(sample(), "PNG"))
        (folder / "thumbnail.jpg").write_bytes(encode(sample(), "JPEG"))
        done.photo.original_path = str(relative / "original.png")
        done.photo.thumbnail_path = str(relative / "thumbnail.jpg")
        done.annotated_path = str(relative / f"annotated-{done.public_id}.jpg")  # where it is kept once drawn
        db.session.commit()
        public_id = done.public_id
    add_boxes(app, public_id, [("dog", 16, 0.9, (10, 10, 60, 50)), ("cat", 15, 0.4, (5, 5, 30, 30))])
    statuses = [client.get(f"/analyses/{public_id}/image/{variant}").status_code
                for variant in ("annotated", "annotated-thumbnail")]
    statuses.append(client.get(f"/analyses/{public_id}/image/annotated?conf=0.5&classes=dog").status_code)
    link = share_link(client, public_id)
    statuses += [client.get(f"{link}/image/{variant}").status_code for variant in ("original", "annotated")]
    return statuses


def main() -> None:
    app = create_app()
    assert app.config["ANALYSIS_EXECUTOR"] == "celery"
    client = app.test_client()
    credentials = {"email": "web@example.com", "password": "a long passphrase"}
    client.post("/api/v1/auth/signup", json=credentials)
    token = client.post("/api/v1/auth/login", json=credentials).json["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    photo = {"images": [(io.BytesIO(encode(sample(), "JPEG")), "photo.jpg")]}
    uploaded = client.post("/api/v1/analyses", data=photo, headers=bearer, content_type="multipart/form-data")
    analysis = uploaded.json["analyses"][0]["id"]
    statuses = [uploaded.status_code]
    for url in ("/api/v1/analyses", f"/api/v1/analyses/{analysis}",
                f"/api/v1/analyses/{analysis}/image?variant=original"):  # (no thumbnail until a worker decodes it)
        statuses.append(client.get(url, headers=bearer).status_code)
    for fmt in ("json", "coco", "yolo", "csv"):
        statuses.append(client.get(f"/api/v1/analyses/export?format={fmt}&status=pending", headers=bearer).status_code)
    AuthActions(client).login(**credentials)
    statuses.append(client.get("/analyses").status_code)
    statuses.append(client.get(f"/analyses/{analysis}").status_code)
    statuses.append(client.get("/healthz").status_code)
    statuses += drawn(app, client, credentials["email"])
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
    print(json.dumps({"statuses": statuses, "heavy_modules": heavy}))


if __name__ == "__main__":
    main()
