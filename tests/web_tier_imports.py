"""Run by test_celery.py in a fresh process: exercise the web tier in Celery mode (uploads, the
gallery, the API, images, exports, /healthz), then print which heavy modules got imported."""
import io
import json
import sys

from tests.helpers import AuthActions
from tests.images import encode, sample
from webapp import create_app

HEAVY = ("torch", "torchvision", "ultralytics", "openvino", "onnxruntime", "onnx")


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
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
    print(json.dumps({"statuses": statuses, "heavy_modules": heavy}))


if __name__ == "__main__":
    main()
