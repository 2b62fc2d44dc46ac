"""The production stack without a Docker engine: the compose files validate, and the stack's
processes, started exactly as compose starts them (docker/entrypoint.sh migrate, web, worker),
take a real photo from sign-up to `done` over HTTP on PostgreSQL (or SQLite) and Redis."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
import yaml

from webapp.config import BASE_DIR

ENTRYPOINT = BASE_DIR / "docker" / "entrypoint.sh"
SAMPLE_ENV = "SECRET_KEY=s\nJWT_SECRET_KEY=j\nPOSTGRES_PASSWORD=p\nMODEL_DIR=/srv/spotter/models\n"
COMPOSE = shutil.which("docker-compose")


def compose(tmp_path, *files, env_text=SAMPLE_ENV) -> subprocess.CompletedProcess:
    if not COMPOSE:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; CI does)")
    env_file = tmp_path / "sample.env"
    env_file.write_text(env_text)
    args = [COMPOSE, "--env-file", str(env_file), "--project-directory", str(BASE_DIR)]
    for name in files:
        args += ["-f", str(BASE_DIR / name)]
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET_KEY")}
    clean["SPOTTER_ENV_FILE"] = str(env_file)  # the file that stands for .env
    return subprocess.run(args + ["config"], capture_output=True, text=True, env=clean, timeout=60)


@pytest.mark.parametrize("files", [("docker-compose.yml",), ("docker-compose.yml", "docker-compose.gpu.yml")])
def test_the_compose_files_validate(tmp_path, files):
    result = compose(tmp_path, *files)
    assert result.returncode == 0, result.stderr
    stack = yaml.safe_load(result.stdout)
    assert set(stack["services"]) == {"migrate", "web", "worker", "db", "redis"}
    assert all("healthcheck" in service for service in stack["services"].values())
    assert stack["services"]["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    model_volume = stack["services"]["worker"]["volumes"][1]  # compose 1.29 prints the short form
    assert model_volume.endswith(":/models:ro") if isinstance(model_volume, str) else model_volume["read_only"]


def test_the_gpu_override_reserves_a_gpu_for_the_cuda_worker(tmp_path):
    stack = yaml.safe_load(compose(tmp_path, "docker-compose.yml", "docker-compose.gpu.yml").stdout)
    worker = stack["services"]["worker"]
    assert worker["build"]["args"]["TORCH"] == "cuda"
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_settings_in_env_reach_the_app_but_not_over_the_stacks_own(tmp_path):
    env_text = SAMPLE_ENV + "MAX_CONTENT_LENGTH=5000000\nANALYSIS_EXECUTOR=thread\n"
    stack = yaml.safe_load(compose(tmp_path, "docker-compose.yml", env_text=env_text).stdout)
    for name in ("web", "worker", "migrate"):
        environment = stack["services"][name]["environment"]
        assert environment["MAX_CONTENT_LENGTH"] == "5000000" and environment["ANALYSIS_EXECUTOR"] == "celery"


def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    result = compose(tmp_path, "docker-compose.yml", env_text="POSTGRES_PASSWORD=p\nMODEL_DIR=/m\n")
    assert result.returncode != 0 and "Set SECRET_KEY in .env" in result.stderr


def http(method: str, url: str, body: bytes = b"", headers: dict | None = None):
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def wait_until(check, seconds: float, what: str, processes):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args} exited while waiting for {what}"
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.real_model
def test_the_stack_processes_take_a_photo_from_sign_up_to_done(database_url, coco_model, assets, tmp_path):
    broker = "redis://127.0.0.1:6379/12"
    try:
        redis.Redis.from_url(broker).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it)")
    models = tmp_path / "models"  # what compose mounts read-only from MODEL_DIR
    shutil.copytree(coco_model, models / Path(coco_model).name)
    port = 18000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "YOLO_MODEL"))}
    env.update(  # the compose file's environment, with this machine's services
        SECRET_KEY="s" * 64, JWT_SECRET_KEY="j" * 64, DATABASE_URL=database_url, ANALYSIS_EXECUTOR="celery",
        CELERY_BROKER_URL=broker, UPLOAD_DIR=str(tmp_path / "data" / "uploads"),
        INSTANCE_PATH=str(tmp_path / "data" / "instance"), MODELS_DIR=str(models), YOLO_OFFLINE="1",
        MIGRATE="0", PORT=str(port), WEB_CONCURRENCY="1", SESSION_COOKIE_SECURE="0",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    migrate = subprocess.run(["sh", str(ENTRYPOINT), "migrate"], cwd=BASE_DIR, env=env, capture_output=True,
                             text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    logs = {role: open(tmp_path / f"{role}.log", "wb") for role in ("web", "worker")}
    processes = [subprocess.Popen(["sh", str(ENTRYPOINT), role], cwd=BASE_DIR, env=env, stdout=logs[role],
                                  stderr=subprocess.STDOUT, start_new_session=True) for role in ("web", "worker")]
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_until(lambda: http("GET", f"{base}/healthz")[1], 120, "the web process", processes)
        health = wait_until(lambda: (h := http("GET", f"{base}/healthz")[1])["workers"] and h, 120,
                            "a worker", processes)
        assert health["broker"] == "ok" and health["database"] == "ok"
        creds = json.dumps({"email": "stack@example.com", "password": "a long passphrase"}).encode()
        json_headers = {"Content-Type": "application/json"}
        assert http("POST", f"{base}/api/v1/auth/signup", creds, json_headers)[0] == 201
        token = http("POST", f"{base}/api/v1/auth/login", creds, json_headers)[1]["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        body, content_type = multipart("images", "bus.jpg", (assets / "bus.jpg").read_bytes())
        status, queued = http("POST", f"{base}/api/v1/analyses", body, {**bearer, "Content-Type": content_type})
        assert status == 202, queued
        url = base + queued["analyses"][0]["urls"]["self"]
        done = wait_until(lambda: (a := http("GET", url, headers=bearer)[1])["status"] in ("done", "failed") and a,
                          120, "the analysis", processes)
        assert done["status"] == "done", done["error"]
        assert done["labels"]["bus"] == 1 and done["labels"]["person"] >= 4
        assert done["model"]["name"] == Path(coco_model).name
    finally:
        for process in processes:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)
        for log in logs.values():
            log.close()
