"""The production stack without a Docker engine: the compose files validate, and the stack's
processes, started exactly as compose starts them (docker/entrypoint.sh migrate, web, worker,
and Debian's nginx with the compose file's template), take a real photo from sign-up to `done`
over HTTP through nginx on PostgreSQL (or SQLite) and Redis. Through nginx, 100 stalled
connections and a flood of oversized forms leave /healthz and sign-in answering in under a second."""
from http.client import HTTPConnection
import io
import json
import os
import re
import shutil
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
import yaml

from tests.conftest import reset_postgres
from tests.helpers import free_port, redis_url
from tests.images import encode, sample
from tests.proxy import nginx_command
from webapp.config import BASE_DIR

ENTRYPOINT = BASE_DIR / "docker" / "entrypoint.sh"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", BASE_DIR / "test-artifacts"))
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
    assert set(stack["services"]) == {"migrate", "web", "worker", "db", "redis", "proxy"}
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


def test_an_env_made_from_the_example_keeps_the_stacks_own_settings(tmp_path):
    """The README's .env: .env.example plus the three secrets and MODEL_DIR. Its development values
    (TRUSTED_PROXIES=0, an empty INSTANCE_PATH) must not undo what the stack needs: the proxy's
    X-Forwarded-For believed (rate limits per client, not one for everyone behind nginx), the
    instance folder in the data volume, cookies only over HTTPS."""
    example = (BASE_DIR / ".env.example").read_text()
    filled = re.sub(r"^(SECRET_KEY|JWT_SECRET_KEY|POSTGRES_PASSWORD|MODEL_DIR)=$",
                    lambda m: f"{m.group(1)}={'/srv/models' if m.group(1) == 'MODEL_DIR' else 'x' * 40}", example,
                    flags=re.MULTILINE)
    stack = yaml.safe_load(compose(tmp_path, "docker-compose.yml", env_text=filled).stdout)["services"]
    for name in ("web", "worker", "migrate"):
        environment = stack[name]["environment"]
        assert environment["TRUSTED_PROXIES"] == "1", name
        assert environment["INSTANCE_PATH"] == "/data/instance" and environment["UPLOAD_DIR"] == "/data/uploads"
        assert environment["SESSION_COOKIE_SECURE"] == "1"
        assert environment["SECRET_KEY"] == "x" * 40


def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    result = compose(tmp_path, "docker-compose.yml", env_text="POSTGRES_PASSWORD=p\nMODEL_DIR=/m\n")
    assert result.returncode != 0 and "Set SECRET_KEY in .env" in result.stderr


def test_the_proxy_publishes_the_port_and_web_is_reached_through_it_only(tmp_path):
    stack = yaml.safe_load(compose(tmp_path, "docker-compose.yml").stdout)
    proxy, web = stack["services"]["proxy"], stack["services"]["web"]
    assert "ports" not in web and proxy["ports"]
    assert proxy["environment"]["SPOTTER_UPSTREAM"] == "web:8000"
    assert web["environment"]["TRUSTED_PROXIES"] == "1"
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in proxy["volumes"]]
    assert any(m.endswith(":/etc/nginx/templates/default.conf.template:ro") or
               "/etc/nginx/templates/default.conf.template" in m for m in mounts)


def test_the_proxy_limits_bodies_as_the_app_does(tmp_path):
    env_text = SAMPLE_ENV + "MAX_CONTENT_LENGTH=5000000\nMAX_BODY_SIZE=4096\n"
    proxy = yaml.safe_load(compose(tmp_path, "docker-compose.yml", env_text=env_text).stdout)["services"]["proxy"]
    assert proxy["environment"]["MAX_CONTENT_LENGTH"] == "5000000"
    assert proxy["environment"]["MAX_BODY_SIZE"] == "4096"


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
        except (OSError, ValueError):  # not answering yet, or nginx's own 502 page before the app is up
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    """The compose stack's processes on this machine: docker/entrypoint.sh's roles on PostgreSQL
    (or SQLite) and Redis, with Debian's nginx in front, configured from the compose template."""

    def __init__(self, database_url: str, tmp_path: Path, broker: str):
        self.tmp = tmp_path
        self.web_port, self.port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.logs: list = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "YOLO_MODEL"))}
        self.env.update(  # the compose file's environment, with this machine's services
            SECRET_KEY="s" * 64, JWT_SECRET_KEY="j" * 64, DATABASE_URL=database_url, ANALYSIS_EXECUTOR="celery",
            CELERY_BROKER_URL=broker, RATELIMIT_STORAGE_URI=broker, UPLOAD_DIR=str(tmp_path / "data" / "uploads"),
            INSTANCE_PATH=str(tmp_path / "data" / "instance"), YOLO_OFFLINE="1", MIGRATE="0",
            PORT=str(self.web_port), WEB_CONCURRENCY="1", SESSION_COOKIE_SECURE="0", TRUSTED_PROXIES="1",
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        )

    def migrate(self) -> None:
        result = subprocess.run(["sh", str(ENTRYPOINT), "migrate"], cwd=BASE_DIR, env=self.env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def _spawn(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        self.logs.append(log)
        process = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def start(self, *roles: str, **env) -> None:
        for role in roles:
            self._spawn(role, ["sh", str(ENTRYPOINT), role], {**self.env, **env})

    def start_proxy(self) -> None:
        self._spawn("nginx", nginx_command(self.tmp / "nginx", self.web_port, self.port), self.env)

    def wait_healthy(self, workers: bool = False) -> dict:
        health = wait_until(lambda: http("GET", f"{self.base}/healthz")[1], 120, "the web process", self.processes)
        if workers:
            health = wait_until(lambda: (h := http("GET", f"{self.base}/healthz")[1])["workers"] and h, 120,
                                "a worker", self.processes)
        return health

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        for log in self.logs:
            log.close()


@pytest.fixture
def stack(database_url, tmp_path):
    broker = redis_url(12)
    try:
        redis.Redis.from_url(broker).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it)")
    if database_url.startswith("postgresql"):
        reset_postgres(database_url)  # empty: the stack's own `migrate` makes the schema
    running = Stack(database_url, tmp_path, broker)
    running.migrate()
    yield running
    running.stop()


@pytest.mark.real_model
def test_the_stack_processes_take_a_photo_from_sign_up_to_done(stack, coco_model, assets, tmp_path):
    models = tmp_path / "models"  # what compose mounts read-only from MODEL_DIR
    shutil.copytree(coco_model, models / Path(coco_model).name)
    stack.start("web")
    stack.start("worker", MODELS_DIR=str(models))
    stack.start_proxy()
    base = stack.base  # nginx: the only published port
    health = stack.wait_healthy(workers=True)
    assert health["broker"] == "ok" and health["database"] == "ok"
    creds = json.dumps({"email": "stack@example.com", "password": "a long passphrase"}).encode()
    json_headers = {"Content-Type": "application/json"}
    assert http("POST", f"{base}/api/v1/auth/signup", creds, json_headers)[0] == 201
    token = http("POST", f"{base}/api/v1/auth/login", creds, json_headers)[1]["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    body, content_type = multipart("images", "bus.jpg", (assets / "bus.jpg").read_bytes())
    status, queued = http("POST", f"{base}/api/v1/analyses", body, {**bearer, "Content-Type": content_type})
    assert status == 202, queued
    assert queued["analyses"][0]["urls"]["self"].startswith("/api/v1/analyses/")
    url = base + queued["analyses"][0]["urls"]["self"]
    done = wait_until(lambda: (a := http("GET", url, headers=bearer)[1])["status"] in ("done", "failed") and a,
                      120, "the analysis", stack.processes)
    assert done["status"] == "done", done["error"]
    assert done["labels"]["bus"] == 1 and done["labels"]["person"] >= 4
    assert done["model"]["name"] == Path(coco_model).name
    with urllib.request.urlopen(f"{base}/static/app.css", timeout=10) as response:  # nginx serves static/
        assert "public" in response.headers["Cache-Control"]
        assert response.read() == (BASE_DIR / "static" / "app.css").read_bytes()
    assert "/static/app.css" not in stack.log("web")  # gunicorn never saw it
    assert "/api/v1/analyses" in stack.log("web")


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_a_body_over_the_limit_is_refused_by_nginx_with_a_readable_413(stack):
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()
    status, problem = http("POST", f"{stack.base}/logout", b"x" * 100_000,
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and "larger than this server accepts" in problem["detail"]
    assert "POST /logout" not in stack.log("web")


def stall(port: int, kind: str, source: str = "127.0.0.1") -> socket.socket:
    """A client (from `source`, any loopback address) that starts a request and then sends
    nothing more: its headers half sent, or its headers whole and 11 of 60,000 body bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if kind == "headers":
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n")
    else:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 60000\r\n\r\ncsrf_token=")
    return sock


def wait_held(port: int, count: int, seconds: float = 10) -> None:
    """Until the server listening on `port` has taken `count` connections: established, and
    none left waiting in its accept queue (what `ss` says, rather than a pause)."""
    def ss(*args) -> list[str]:
        return subprocess.run(["ss", "-Htn", *args, f"( sport = :{port} )"], capture_output=True, text=True,
                              check=True).stdout.splitlines()

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        queued = sum(int(line.split()[1]) for line in ss("-l"))  # a listening socket's Recv-Q
        if len(ss("state", "established")) >= count and queued == 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"the server on {port} did not take {count} connections in {seconds}s")


def timed(method: str, url: str, body: bytes = b"", headers: dict | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    status, _ = http(method, url, body, headers)
    return time.perf_counter() - started, status


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def record(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(name, figures)


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_100_stalled_connections_leave_healthz_and_sign_in_answering_within_a_second(stack, database_url):
    stack.start("web")  # 1 gunicorn worker × 4 threads: 8 stalled clients froze it before nginx
    stack.start_proxy()
    stack.wait_healthy()
    creds = json.dumps({"email": "slow@example.com", "password": "a long passphrase"}).encode()
    json_headers = {"Content-Type": "application/json"}
    assert http("POST", f"{stack.base}/api/v1/auth/signup", creds, json_headers)[0] == 201
    # from four addresses (nginx lets each hold 64 connections), none of them the one measuring
    stalled = [stall(stack.port, "headers" if i % 2 else "body", f"127.0.0.{2 + i % 4}") for i in range(100)]
    try:
        wait_held(stack.port, 100)  # they are all held open now
        health = [timed("GET", f"{stack.base}/healthz") for _ in range(20)]
        sign_in = [timed("POST", f"{stack.base}/api/v1/auth/login", creds, json_headers) for _ in range(3)]
    finally:
        for sock in stalled:
            sock.close()
    assert {status for _, status in health} == {200} and {status for _, status in sign_in} == {200}
    worst_health, worst_sign_in = max(t for t, _ in health), max(t for t, _ in sign_in)
    record(f"stalled-connections-{database_url.split(':')[0]}",
           {"stalled": 100, "healthz_max_s": round(worst_health, 3), "sign_in_max_s": round(worst_sign_in, 3)})
    assert worst_health < 1.0 and worst_sign_in < 1.0


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_a_flood_of_oversized_forms_leaves_healthz_answering(stack, database_url):
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()
    body = b"&".join(b"f%d=%d" % (i, i) for i in range(20_000))  # 200 KB, 20,000 fields
    sent, refused, stop = [0], [0], threading.Event()
    lock = threading.Lock()

    def flood(count: int) -> None:
        for i in range(count):
            connection = HTTPConnection("127.0.0.1", stack.port, timeout=30)
            try:
                if i % 2:  # its length declared: refused from the headers
                    connection.request("POST", "/logout", body, {"Content-Type": "application/x-www-form-urlencoded"})
                else:  # chunked, no length: cut off once the limit is read
                    connection.request("POST", "/logout", (body[k:k + 16384] for k in range(0, len(body), 16384)),
                                       {"Content-Type": "application/x-www-form-urlencoded"}, encode_chunked=True)
                status = connection.getresponse().status
            except (ConnectionError, OSError):
                status = 413  # nginx answered and closed before the body was all sent
            finally:
                connection.close()
            with lock:
                sent[0] += 1
                refused[0] += status == 413

    health: list[tuple[float, int]] = []

    def probe() -> None:
        while not stop.is_set():
            health.append(timed("GET", f"{stack.base}/healthz"))
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.perf_counter()
    floods = [threading.Thread(target=flood, args=(100,)) for _ in range(20)]  # 2,000 requests, 20 at a time
    for thread in floods:
        thread.start()
    for thread in floods:
        thread.join()
    seconds = time.perf_counter() - started
    stop.set()
    prober.join()
    times = [t for t, _ in health]
    figures = {"requests": sent[0], "refused_413": refused[0], "seconds": round(seconds, 2),
               "healthz_probes": len(times), "healthz_p95_s": round(p95(times), 3),
               "healthz_max_s": round(max(times), 3)}
    record(f"flood-{database_url.split(':')[0]}", figures)
    assert sent[0] == 2000 and refused[0] == 2000
    assert {status for _, status in health} == {200}
    assert p95(times) < 1.0, figures
    assert "POST /logout" not in stack.log("web")  # none of it reached gunicorn


def answered(sockets: list[socket.socket], expected: int, seconds: float = 10) -> list[bytes]:
    """What the server answered on these sockets: waited for until `expected` have answered,
    then a moment more, for any answer beyond those."""
    answers: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + seconds
    while len(answers) < expected and time.monotonic() < deadline:
        readable, _, _ = select.select([s for s in sockets if s not in answers], [], [], 0.2)
        for sock in readable:
            answers[sock] = sock.recv(64)
    readable, _, _ = select.select([s for s in sockets if s not in answers], [], [], 0.2)
    return list(answers.values()) + [sock.recv(64) for sock in readable]


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_one_client_cannot_hold_more_than_its_share_of_connections(stack):
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()
    held = [stall(stack.port, "body", "127.0.0.9") for _ in range(100)]
    try:
        answers = answered(held, expected=100 - 64)
        refused = sum(answer.startswith(b"HTTP/1.1 429") for answer in answers)
        health = [timed("GET", f"{stack.base}/healthz") for _ in range(5)]
    finally:
        for sock in held:
            sock.close()
    assert refused == 100 - 64  # past 64 from one address: 429 at once
    assert {status for _, status in health} == {200} and max(t for t, _ in health) < 1.0


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_an_upload_without_any_credential_is_refused_by_nginx_before_its_body(stack):
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()
    body, content_type = multipart("images", "big.jpg", b"x" * 1_000_000)
    status, problem = http("POST", f"{stack.base}/api/v1/analyses", body, {"Content-Type": content_type})
    assert status == 401 and "Authentication required" in problem["detail"]
    assert "POST /api/v1/analyses" not in stack.log("web")


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_a_very_long_address_is_refused_by_nginx_with_a_414(stack):
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stack.base}/api/v1/analyses?label={'a' * 9000}", timeout=10)
    assert refused.value.code == 414
    assert "label=aaaa" not in stack.log("web")


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
@pytest.mark.parametrize("proxies, hsts", [("2", True), ("1", False)])
def test_https_from_a_proxy_in_front_of_nginx_reaches_the_app_only_when_trusted(stack, proxies, hsts):
    """nginx appends to X-Forwarded-Proto: with TRUSTED_PROXIES=2 (a TLS proxy, then nginx) the app
    sees https and sends HSTS; with 1 a client's own X-Forwarded-Proto is not believed."""
    stack.start("web", TRUSTED_PROXIES=proxies)
    stack.start_proxy()
    stack.wait_healthy()
    request = urllib.request.Request(f"{stack.base}/login", headers={"X-Forwarded-Proto": "https",
                                                                     "X-Forwarded-For": "203.0.113.9"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert ("Strict-Transport-Security" in response.headers) is hsts


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_bare_gunicorn_is_frozen_by_a_few_stalled_clients_which_is_why_nginx_is_in_front(stack):
    """The README's warning, kept true: without nginx, one stalled client per gunicorn thread
    (1 worker × 4 threads here) and /healthz no longer answers."""
    stack.start("web")
    wait_until(lambda: http("GET", f"http://127.0.0.1:{stack.web_port}/healthz")[1], 120, "gunicorn", stack.processes)
    stalled = [stall(stack.web_port, "body") for _ in range(8)]
    try:
        wait_held(stack.web_port, 8)
        with pytest.raises(OSError):  # a timeout: every thread waits for a body that never comes
            urllib.request.urlopen(f"http://127.0.0.1:{stack.web_port}/healthz", timeout=3)
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.any_database  # the proxy's behaviour, not the database's
def test_with_the_app_down_nginx_answers_api_clients_in_their_shapes_not_html(stack):
    stack.start_proxy()  # and no web process: every request nginx passes on is its own 502

    def answer(method: str, path: str, body: bytes = b"", headers: dict | None = None):
        request = urllib.request.Request(f"{stack.base}{path}", data=body or None, method=method,
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers.get_content_type(), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get_content_type(), exc.read()

    wait_until(lambda: answer("GET", "/healthz")[0] == 502, 30, "nginx", stack.processes)
    for path in ("/api/v1/me", "/api/v1/analyses?label=dog"):
        status, kind, body = answer("GET", path, headers={"Authorization": "Bearer x"})
        assert (status, kind) == (502, "application/problem+json"), (path, body[:200])
        assert json.loads(body)["status"] == 502 and "try again" in json.loads(body)["detail"]
    upload, content_type = multipart("images", "p.png", b"x" * 1000)
    status, kind, body = answer("POST", "/api/v1/analyses", upload, {"Content-Type": content_type,
                                                                    "Authorization": "Bearer x"})
    assert (status, kind) == (502, "application/problem+json") and json.loads(body)["status"] == 502
    photo, content_type = multipart("image", "p.png", b"x" * 1000)
    status, kind, body = answer("POST", "/v1/vision/detection", photo, {"Content-Type": content_type,
                                                                       "X-API-Key": "spt_x"})
    assert (status, kind) == (502, "application/json") and json.loads(body)["success"] is False
    too_big, content_type = multipart("images", "p.png", b"x" * 21_000_000)
    status, kind, _ = answer("POST", "/api/v1/analyses", too_big, {"Content-Type": content_type,
                                                                  "Authorization": "Bearer x"})
    assert (status, kind) == (413, "application/problem+json")  # nginx's own limits keep their answers
    assert answer("GET", "/login")[0] == 502  # a page: nginx's page is fine for a browser


@pytest.mark.any_database  # the proxy's and gunicorn's behaviour, not the database's
def test_requests_refused_unread_do_not_break_other_peoples_uploads_through_nginx(stack):
    """An attacker with no account loops uploads with a forged bearer (refused before the body is
    read) while a user uploads 200 photos through the same nginx and its pooled connections:
    none of the user's uploads may fail."""
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()
    creds = json.dumps({"email": "victim@example.com", "password": "a long passphrase"}).encode()
    json_headers = {"Content-Type": "application/json"}
    assert http("POST", f"{stack.base}/api/v1/auth/signup", creds, json_headers)[0] == 201
    token = http("POST", f"{stack.base}/api/v1/auth/login", creds, json_headers)[1]["access_token"]
    junk, junk_type = multipart("images", "a.bin", os.urandom(1_000_000))
    photo, photo_type = multipart("images", "p.png", encode(sample(64, 48), "PNG"))
    stop = threading.Event()
    attacks = []

    def attack():
        while not stop.is_set():
            try:
                attacks.append(http("POST", f"{stack.base}/api/v1/analyses", junk,
                                    {"Content-Type": junk_type, "Authorization": "Bearer forged"})[0])
            except OSError:
                attacks.append("error")

    attackers = [threading.Thread(target=attack) for _ in range(2)]
    for thread in attackers:
        thread.start()
    try:
        statuses = [http("POST", f"{stack.base}/api/v1/analyses", photo,
                         {"Content-Type": photo_type, "Authorization": f"Bearer {token}"})[0] for _ in range(200)]
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=60)
    failed = [s for s in statuses if s != 202]
    record("refused-unread-bodies", {"victim_uploads": len(statuses), "failed": len(failed),
                                     "attacker_requests": len(attacks)})
    assert failed == [], f"{len(failed)} of 200 uploads failed: {sorted(set(failed))}"
    # the attacker is refused; now and then (once in 3,578 on a loaded CI machine) nginx sees
    # gunicorn close a refused request's connection before it has sent the whole body: a 502
    assert len(attacks) > 50 and set(attacks) <= {401, 502}, set(attacks)
    assert attacks.count(401) >= 0.99 * len(attacks), f"{attacks.count(502)} of {len(attacks)} were 502"


@pytest.mark.any_database  # the proxy's behaviour, not the database's
def test_a_flood_of_share_link_requests_is_answered_by_nginx_past_its_burst(stack):
    stack.start("web")
    stack.start_proxy()
    stack.wait_healthy()

    def share_request(source: str) -> tuple[int, bytes]:
        connection = HTTPConnection("127.0.0.1", stack.port, timeout=10, source_address=(source, 0))
        try:
            connection.request("GET", "/s/not-a-real-token/image/annotated?conf=0.5")
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    answers = [share_request("127.0.0.9") for _ in range(80)]
    refused = [body for status, body in answers if status == 429]
    assert 20 <= len(refused) <= 40  # 40 at once and 10 a second go through
    assert b"Too many requests from your address" in refused[0]
    assert share_request("127.0.0.10")[0] != 429  # another address is not held up
    assert stack.log("web").count("/s/not-a-real-token") <= 60


@pytest.mark.any_database  # the processes' behaviour; the rows are only counted
def test_photos_declaring_huge_sizes_are_decoded_by_the_worker_not_the_web_tier(stack, database_url, tmp_path):
    """Issue 22's pixel bombs through nginx: PNGs declaring 36 MP in a few hundred KB each, which
    cost about 1.5 s of CPU to decode, are stored by the web tier from their headers and decoded by
    the worker (no model there: the runs end unavailable, but each photo gets its thumbnail)."""
    import psutil
    import sqlalchemy as sa
    from PIL import Image

    stack.start("web")
    stack.start("worker", MODELS_DIR=str(tmp_path / "no-models"))
    stack.start_proxy()
    stack.wait_healthy()
    bomb = io.BytesIO()
    Image.new("RGB", (6000, 6000), (40, 120, 200)).save(bomb, "PNG", compress_level=9)
    creds = json.dumps({"email": "bombs@example.com", "password": "a long passphrase"}).encode()
    json_headers = {"Content-Type": "application/json"}
    http("POST", f"{stack.base}/api/v1/auth/signup", creds, json_headers)
    bearer = {"Authorization": "Bearer " + http("POST", f"{stack.base}/api/v1/auth/login", creds,
                                                 json_headers)[1]["access_token"]}
    web = [p for p in psutil.Process(stack.processes[0].pid).children(recursive=True)
           if "gunicorn" in " ".join(p.cmdline())]

    def web_cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in web)

    before = web_cpu()
    for i in range(10):
        body, content_type = multipart("images", f"bomb{i}.png", bomb.getvalue())
        status, _ = http("POST", f"{stack.base}/api/v1/analyses", body, {**bearer, "Content-Type": content_type})
        assert status == 202
    spent = web_cpu() - before
    assert spent < 5, f"the web tier spent {spent:.1f} s of CPU on 10 uploads (decoding them costs about 15 s)"
    assert http("GET", f"{stack.base}/healthz")[0] == 200
    engine = sa.create_engine(database_url)
    try:
        def decoded() -> bool:
            with engine.connect() as conn:
                made = sa.text("SELECT count(*) FROM photo WHERE thumbnail_path IS NOT NULL")
                return conn.execute(made).scalar() == 10
        wait_until(decoded, 240, "the worker to decode the photos", stack.processes)
    finally:
        engine.dispose()


@pytest.mark.any_database  # the processes' behaviour; the rows are only counted
def test_queued_work_whose_messages_redis_lost_is_run_once_by_the_running_worker(stack, database_url, tmp_path):
    """Issue 22's item 4 through nginx: photos queued while the worker is frozen, then Redis loses
    every message (FLUSHDB: a restart without persistence); the worker, thawed, finds them within
    LOST_WORK_SECONDS and runs each once (no model there: each ends unavailable, attempt 1)."""
    import signal

    import sqlalchemy as sa

    stack.start("web")
    stack.start("worker", MODELS_DIR=str(tmp_path / "no-models"), LOST_WORK_SECONDS="2")
    stack.start_proxy()
    stack.wait_healthy()
    worker = stack.processes[1]
    wait_until(lambda: "ready" in stack.log("worker"), 120, "the worker", stack.processes)
    creds = json.dumps({"email": "lost@example.com", "password": "a long passphrase"}).encode()
    json_headers = {"Content-Type": "application/json"}
    http("POST", f"{stack.base}/api/v1/auth/signup", creds, json_headers)
    bearer = {"Authorization": "Bearer " + http("POST", f"{stack.base}/api/v1/auth/login", creds,
                                                 json_headers)[1]["access_token"]}
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        for i in range(6):
            body, content_type = multipart("images", f"p{i}.png", encode(sample(100 + i, 80), "PNG"))
            status, _ = http("POST", f"{stack.base}/api/v1/analyses", body, {**bearer, "Content-Type": content_type})
            assert status == 202
        redis.Redis.from_url(stack.env["CELERY_BROKER_URL"]).flushdb()
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    engine = sa.create_engine(database_url)
    try:
        def finished():
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT status, attempts FROM analysis")).all()
            return len(rows) == 6 and all(status not in ("pending", "running") for status, _ in rows) and rows
        rows = wait_until(finished, 120, "the lost work to be run", stack.processes)
    finally:
        engine.dispose()
    assert [attempts for _, attempts in rows] == [1] * 6
