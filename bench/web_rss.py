"""Memory of one gunicorn worker (RSS) after serving an upload, the gallery, the API and an
export, in each executor mode: `thread` (the model loaded in the web process) and `celery`
(detection on a Celery worker; the web process never imports torch). Needs Redis on
127.0.0.1:6379 for the Celery mode. Usage: python bench/web_rss.py [--model PATH]
"""
import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "yolo11n_int8_openvino_model"
PHOTO = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
    "site-packages" / "ultralytics" / "assets" / "bus.jpg"


def call(method, url, body=b"", headers=None):
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def exercise(base: str) -> None:
    creds = json.dumps({"email": "rss@example.com", "password": "a long passphrase"}).encode()
    call("POST", f"{base}/api/v1/auth/signup", creds, {"Content-Type": "application/json"})
    token = call("POST", f"{base}/api/v1/auth/login", creds, {"Content-Type": "application/json"})["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="bus.jpg"\r\n\r\n'.encode())
    body.write(PHOTO.read_bytes())
    body.write(f"\r\n--{boundary}--\r\n".encode())
    call("POST", f"{base}/api/v1/analyses?wait=true", body.getvalue(),
         {**bearer, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    for path in ("/api/v1/analyses", "/api/v1/analyses/export?format=coco&status=pending",
                 "/api/v1/analyses/export?format=coco", "/healthz"):
        call("GET", base + path, headers=bearer)


def measure(mode: str, model: str, tmp: Path) -> float:
    port = free_port()
    env = {**os.environ, "SECRET_KEY": "s" * 32, "JWT_SECRET_KEY": "j" * 32, "ANALYSIS_EXECUTOR": mode,
           "DATABASE_URL": f"sqlite:///{tmp / f'{mode}.sqlite3'}", "UPLOAD_DIR": str(tmp / "uploads"),
           "INSTANCE_PATH": str(tmp / "instance"), "YOLO_MODEL": model, "YOLO_OFFLINE": "1",
           "CELERY_BROKER_URL": "redis://127.0.0.1:6379/11", "LOG_LEVEL": "WARNING"}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    web = subprocess.Popen([str(bin_dir / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "4",
                            "wsgi:app"], cwd=ROOT, env=env)
    worker = None
    if mode == "celery":
        worker = subprocess.Popen([str(bin_dir / "celery"), "-A", "webapp.worker", "worker", "-Q", "detect",
                                    "--loglevel", "WARNING"], cwd=ROOT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):  # up, and (Celery) a worker answers
            try:
                if call("GET", f"{base}/healthz").get("workers", 1):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        exercise(base)
        [child] = psutil.Process(web.pid).children()
        return child.memory_info().rss / 2**20
    finally:
        for process in (web, worker):
            if process:
                process.terminate()
                process.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        thread = measure("thread", args.model, Path(tmp))
        celery = measure("celery", args.model, Path(tmp))
    print(f"gunicorn worker RSS after upload + gallery + API + export, model {Path(args.model).name}:")
    print(f"  ANALYSIS_EXECUTOR=thread (model in the web process): {thread:.0f} MiB")
    print(f"  ANALYSIS_EXECUTOR=celery (torch-free web process):   {celery:.0f} MiB")
    print(f"  celery/thread: {celery / thread:.2f}")


if __name__ == "__main__":
    main()
