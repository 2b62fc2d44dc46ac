"""The images, built and run for real (`make test-images`, not `make test`): podman and buildah,
as root, with ../shared/containers' scripts (a stand-in for the python:3.11-slim-bookworm base made
from Debian's packages, this machine's flags, host networking).

It builds the web image (TORCH=none) and the worker image (TORCH=cuda: PyPI's torch, which runs on
the CPU too; TORCH=cpu needs PyTorch's own index, out of reach here), then runs `migrate`, `web`
and `worker` as containers exactly as docker-compose.yml configures them: each service's
environment as `docker-compose config` resolves it from a .env made from .env.example plus the
three secrets, its command, its volumes (the uploads volume shared, the model read-only) and its
stop grace period. Only what the compose network would give differs: the database, broker and
rate-limit URLs name this machine's PostgreSQL (a database of the test's own) and Redis (databases
of its own), and the web container listens on a free port (every container shares the host's
network here). Debian's nginx, configured from the project's template, is the proxy."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from functools import partial
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa
import yaml

from tests.conftest import SHARED
from tests.helpers import free_port
from tests.images import encode, sample
from tests.proxy import nginx_command
from webapp.config import BASE_DIR

pytestmark = pytest.mark.images

SCRIPTS = SHARED / "containers"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", BASE_DIR / "test-artifacts"))
BASE_IMAGE = "localhost/python:3.11-slim-bookworm"
TAG = "test"
IMAGES = {"none": f"localhost/spotter-web:{TAG}", "cuda": f"localhost/spotter-worker:{TAG}"}
BROKER, LIMITS = "redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/3"  # not the suite's (4 to 15)
VOLUME = "spotter-test-uploads"
CONTAINERS = ("spotter-test-migrate", "spotter-test-web", "spotter-test-worker", "spotter-test-probe")
MB = 1_000_000
WEB_ABOVE_BASE_MB = 200  # the web image above its base, at most (docs/deployment.md, "The images")
FIGURES: dict = {}


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(SCRIPTS / "run.sh"), *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def record(**figures) -> None:
    FIGURES.update(figures)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "images.json").write_text(json.dumps(FIGURES, indent=2))


def build(torch: str, tag: str, context: Path = BASE_DIR) -> float:
    """buildah bud with cached layers (--layers) and the Docker format (which keeps HEALTHCHECK);
    its output in test-artifacts/. The build stage is tagged too (`tag`-build), so that pruning
    the images nothing uses keeps it, and with it the cached environment. Seconds it took."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"build-{torch}.log"
    started = time.monotonic()
    with open(log, "w") as out:
        for target in (["--target", "build", "-t", f"{tag}-build"], ["-t", tag]):
            result = subprocess.run([str(SCRIPTS / "build.sh"), "--layers", "--format", "docker", *target,
                                     "--build-arg", f"TORCH={torch}", "."], cwd=context, stdout=out,
                                    stderr=subprocess.STDOUT, timeout=3000)
            assert result.returncode == 0, log.read_text(errors="replace")[-4000:]
    return time.monotonic() - started


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def in_image(tag: str, script: str) -> str:
    """The last line `python -c script` prints in a throwaway container of the image (Ultralytics
    prints its own lines when first imported)."""
    printed = podman("run", "--rm", "--name", "spotter-test-probe", "--entrypoint", "python", tag, "-c", script).stdout
    return printed.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def images():
    if not shutil.which("podman") or not shutil.which("buildah"):
        pytest.skip("podman and buildah are not installed (.ci/run installs them)")
    made = subprocess.run([str(SCRIPTS / "base-image.sh")], capture_output=True, text=True, timeout=1200)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    seconds = {torch: round(build(torch, tag), 1) for torch, tag in IMAGES.items()}
    podman("image", "prune", "--force")  # earlier builds' layers that no tagged image uses
    base = image_size(BASE_IMAGE)
    sizes = {torch: image_size(tag) for torch, tag in IMAGES.items()}
    record(build_seconds=seconds, base_mb=round(base / MB), web_mb=round(sizes["none"] / MB),
           worker_mb=round(sizes["cuda"] / MB), web_above_base_mb=round((sizes["none"] - base) / MB),
           worker_above_base_mb=round((sizes["cuda"] - base) / MB))
    return IMAGES


@pytest.fixture(scope="module")
def database():
    """A PostgreSQL database of the test's own, new, beside TEST_DATABASE_URL's (or `test`)."""
    server = sa.engine.make_url(os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test")
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text('DROP DATABASE IF EXISTS "spotter_images" WITH (FORCE)'))
            conn.execute(sa.text('CREATE DATABASE "spotter_images"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not running on {server.host}: {exc}")
    url = server.set(database="spotter_images").render_as_string(hide_password=False)
    yield url
    with engine.connect() as conn:
        conn.execute(sa.text('DROP DATABASE IF EXISTS "spotter_images" WITH (FORCE)'))


def compose_services(env_file: Path) -> dict:
    """docker-compose.yml's services as `docker-compose config` resolves them with `env_file` as
    the .env (environment: the env_file's values with the stack's own over them)."""
    compose = shutil.which("docker-compose")
    if not compose:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    result = subprocess.run([compose, "--env-file", str(env_file), "--project-directory", str(BASE_DIR), "-f",
                             str(BASE_DIR / "docker-compose.yml"), "config"], capture_output=True, text=True,
                            env={**os.environ, "SPOTTER_ENV_FILE": str(env_file)}, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def duration(text: str) -> int:
    """Seconds of a compose duration: 2m, 90s, 1m30s."""
    parts = re.findall(r"(\d+)([hms])", text)
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def make_env(folder: Path) -> Path:
    """The .env an operator makes from a fresh clone: docs/deployment.md's lines, run in `folder`
    (beside a copy of .env.example). MODEL_DIR is `folder`/models."""
    text = (BASE_DIR / "docs" / "deployment.md").read_text()
    script = re.search(r"<!-- env-setup -->\s*```sh\n(.*?)```", text, re.S).group(1)
    shutil.copy(BASE_DIR / ".env.example", folder / ".env.example")
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, check=True, timeout=60)
    return folder / ".env"


class Stack:
    """The compose stack's app containers on this machine's services, with nginx in front."""

    def __init__(self, tmp: Path, database_url: str):
        self.tmp, self.database_url = tmp, database_url
        self.web_port, self.port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env_file = make_env(tmp)
        with open(env_file, "a") as env:
            env.write(f"SPOTTER_TAG={TAG}\n")
            env.write("SESSION_COOKIE_SECURE=0\n")  # served over plain HTTP by the test's nginx
            env.write("SIGNUP=open\n")  # the example's is `invite`: the test signs up through the proxy
        self.services = compose_services(env_file)
        self.nginx: subprocess.Popen | None = None

    def args(self, service: str, name: str, command: tuple[str, ...] = ()) -> list[str]:
        """`podman run`'s arguments for a container of `service`, as compose would start it
        (`command`: as `docker compose run SERVICE COMMAND...` gives one)."""
        spec = self.services[service]
        env = {key: str(value) for key, value in spec["environment"].items()}
        # the compose network's names, for this machine's services (host networking)
        assert env["DATABASE_URL"].endswith("@db:5432/spotter"), env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["RATELIMIT_STORAGE_URI"] == "redis://redis:6379/1"
        env.update(DATABASE_URL=self.database_url, CELERY_BROKER_URL=BROKER, RATELIMIT_STORAGE_URI=LIMITS)
        if service == "web":
            env["PORT"] = str(self.web_port)  # 8000 on the compose network; any free port on the host's
        args = ["--name", name, "--hostname", name]  # compose gives each container a host name of its own
        for key, value in sorted(env.items()):
            args += ["--env", f"{key}={value}"]
        for volume in spec.get("volumes", []):
            source, target, *mode = volume.split(":") if isinstance(volume, str) else \
                (volume["source"], volume["target"], *(["ro"] if volume.get("read_only") else []))
            args += ["--volume", ":".join([VOLUME if source == "uploads" else source, target, *mode])]
        if "stop_grace_period" in spec:
            args += ["--stop-timeout", str(duration(spec["stop_grace_period"]))]
        image = "localhost/" + spec["image"]
        assert image in IMAGES.values(), image
        return args + [image, *(command or spec["command"])]

    def run(self, service: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A one-off container of `service` (migrate; `docker compose run --rm SERVICE COMMAND`),
        run to the end."""
        return podman("run", "--rm", *self.args(service, "spotter-test-probe", command), check=check, timeout=300)

    def start(self, service: str) -> str:
        name = f"spotter-test-{service}"
        podman("run", "--detach", *self.args(service, name))
        return name

    def start_proxy(self) -> None:
        log = open(self.tmp / "nginx.log", "wb")
        self.nginx = subprocess.Popen(nginx_command(self.tmp / "nginx", self.web_port, self.port), stdout=log,
                                      stderr=subprocess.STDOUT)

    def logs(self, name: str) -> str:
        result = podman("logs", name, check=False)
        return result.stdout + result.stderr

    def wait(self, check, seconds: float, what: str, watch: tuple[str, ...] = ()):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name in watch:
                state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
                assert state == "running", f"{name} is {state} while waiting for {what}:\n{self.logs(name)[-3000:]}"
            try:
                found = check()
            except (OSError, ValueError, requests.RequestException):
                found = None
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")

    def remove(self) -> None:
        for name in CONTAINERS:
            podman("rm", "--force", "--time", "5", name, check=False)
        if self.nginx:
            self.nginx.terminate()
            self.nginx.wait(timeout=30)


def clean_up() -> None:
    for name in CONTAINERS:
        podman("rm", "--force", "--time", "0", name, check=False)
    podman("volume", "rm", "--force", VOLUME, check=False)


@pytest.fixture(scope="module")
def stack(images, database, coco_model, tmp_path_factory):
    for url in (BROKER, LIMITS):
        try:
            redis.Redis.from_url(url).flushdb()
        except redis.exceptions.ConnectionError:
            pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it)")
    tmp = tmp_path_factory.mktemp("images")
    clean_up()
    running = Stack(tmp, database)
    models = Path(running.services["worker"]["environment"]["MODEL_DIR"])  # mounted read-only at /models
    assert models == tmp / "models"
    shutil.copytree(coco_model, models / Path(coco_model).name)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's uid 10001
    migrated = podman("run", "--rm", *running.args("migrate", "spotter-test-migrate"))
    assert "Running upgrade" in migrated.stderr + migrated.stdout
    running.start("web")
    running.start("worker")
    running.start_proxy()
    running.wait(lambda: requests.get(f"{running.base}/healthz", timeout=10).json()["workers"], 300,
                 "the web and worker containers", watch=("spotter-test-web", "spotter-test-worker"))
    yield running
    for name in ("spotter-test-web", "spotter-test-worker"):
        (ARTIFACTS / f"{name}.log").write_text(running.logs(name))
    running.remove()
    clean_up()
    for url in (BROKER, LIMITS):
        redis.Redis.from_url(url).flushdb()


class Account:
    """A person signed up through the proxy's HTML form, with an API token beside it."""

    def __init__(self, base: str, email: str):
        self.base, self.email, self.password = base, email, "a long passphrase"
        self.browser = requests.Session()
        form = self.browser.get(f"{base}/signup", timeout=30).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        signed_up = self.browser.post(f"{base}/signup", timeout=30, data={
            "csrf_token": token, "email": email, "password": self.password, "confirm": self.password})
        assert signed_up.status_code == 200 and signed_up.url.endswith("/analyses"), signed_up.text[-2000:]
        login = requests.post(f"{base}/api/v1/auth/login", json={"email": email, "password": self.password},
                              timeout=30)
        assert login.status_code == 200, login.text
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def upload(self, *photos: tuple[str, bytes]) -> list[str]:
        response = self.api.post(f"{self.base}/api/v1/analyses", timeout=60,
                                 files=[("images", (name, data)) for name, data in photos])
        assert response.status_code == 202, response.text
        return [analysis["id"] for analysis in response.json()["analyses"]]

    def analysis(self, public_id: str) -> dict:
        return self.api.get(f"{self.base}/api/v1/analyses/{public_id}", timeout=30).json()


def runs(database_url: str, public_ids: list[str]) -> dict[str, dict]:
    """Each run's row, and how many detections it has, straight from the database."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT a.public_id, a.status, a.attempts, a.worker, "
            "(SELECT count(*) FROM detection d WHERE d.analysis_id = a.id) AS boxes, "
            "(SELECT count(DISTINCT (d.class_id, d.x1, d.y1, d.x2, d.y2)) FROM detection d "
            " WHERE d.analysis_id = a.id) AS distinct_boxes FROM analysis a"
        )).mappings().all()
    engine.dispose()
    return {row["public_id"]: dict(row) for row in rows if row["public_id"] in public_ids}


def running(database_url: str, public_ids: list[str]) -> bool:
    return any(row["status"] == "running" for row in runs(database_url, public_ids).values())


def all_done(account: Account, public_ids: list[str]) -> bool:
    return all(account.analysis(p)["status"] in ("done", "failed") for p in public_ids)


def test_the_web_image_has_no_torch_no_numpy_no_opencv_no_pip_and_no_gui_libraries(images):
    found = json.loads(in_image(images["none"], (
        "import importlib.util, json;"
        "print(json.dumps({m: bool(importlib.util.find_spec(m)) for m in "
        "('torch', 'ultralytics', 'numpy', 'cv2', 'pip', 'setuptools', 'flask', 'celery', 'PIL')}))")))
    assert found == {"torch": False, "ultralytics": False, "numpy": False, "cv2": False, "pip": False,
                     "setuptools": False, "flask": True, "celery": True, "PIL": True}
    libraries = podman("run", "--rm", "--entrypoint", "sh", images["none"], "-c",
                       "ls /usr/lib/x86_64-linux-gnu | grep -E '^lib(GL|GLX|glib-2)' || true").stdout
    assert libraries.strip() == ""  # OpenCV's headless build: no Mesa, no GLib


def test_the_worker_image_runs_ultralytics_with_headless_opencv_and_no_pip(images):
    found = json.loads(in_image(images["cuda"], (
        "import importlib.metadata as m, importlib.util, json, cv2, ultralytics, torch;"
        "names = {d.metadata['Name'].lower() for d in m.distributions()};"
        "print(json.dumps({'pip': bool(importlib.util.find_spec('pip')), 'gui_opencv': 'opencv-python' in names,"
        " 'headless': 'opencv-python-headless' in names, 'torch': torch.__version__.split('+')[0]}))")))
    assert found == {"pip": False, "gui_opencv": False, "headless": True, "torch": "2.14.1"}


def test_the_web_image_stays_within_its_size_limit(images):
    assert FIGURES["web_above_base_mb"] <= WEB_ABOVE_BASE_MB, FIGURES


def test_a_code_only_change_rebuilds_the_web_image_from_its_cached_environment(images, tmp_path):
    context = tmp_path / "context"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=BASE_DIR,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (BASE_DIR / name).is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(BASE_DIR / name, context / name)
    with open(context / "wsgi.py", "a") as changed:
        changed.write("# a change of code\n")
    tag = f"localhost/spotter-web:{TAG}-changed"
    try:
        seconds = build("none", tag, context)
        log = (ARTIFACTS / "build-none.log").read_text()
    finally:
        podman("rmi", "--force", tag, f"{tag}-build", check=False)
    record(code_change_rebuild_web_seconds=round(seconds, 1))
    steps = re.split(r"\n(?=\[\d/\d\] STEP )", log)
    rebuilt = [step.split("\n", 1)[0] for step in steps if "STEP" in step.split("\n", 1)[0]
               and "FROM" not in step.split("\n", 1)[0] and "--> Using cache" not in step]
    assert rebuilt == ["[2/2] STEP 12/12: COPY . /app/"], rebuilt  # the code's layer, and only it
    assert "Collecting" not in log  # nothing downloaded or installed again


def test_each_container_answers_its_health_check(stack):
    for name in ("spotter-test-web", "spotter-test-worker"):
        result = podman("healthcheck", "run", name, check=False, timeout=60)
        assert result.returncode == 0, f"{name}: {result.stdout} {result.stderr}\n{stack.logs(name)[-3000:]}"
    processes = podman("top", "spotter-test-web", "user", "args").stdout
    assert "gunicorn" in processes and "root" not in processes  # the image's uid 10001, not root


def test_a_person_signs_up_through_the_proxy_and_the_worker_container_analyses_their_photo(stack, assets):
    account = Account(stack.base, "images@example.com")
    [public_id] = account.upload(("bus.jpg", (assets / "bus.jpg").read_bytes()))
    done = stack.wait(lambda: (a := account.analysis(public_id))["status"] in ("done", "failed") and a, 180,
                      "the analysis", watch=("spotter-test-worker",))
    assert done["status"] == "done", done
    assert done["labels"]["bus"] == 1 and done["labels"]["person"] >= 4
    annotated = account.api.get(f"{stack.base}/api/v1/analyses/{public_id}/image?variant=annotated", timeout=60)
    assert annotated.status_code == 200 and annotated.content[:3] == b"\xff\xd8\xff"
    original = account.api.get(f"{stack.base}/api/v1/analyses/{public_id}/image?variant=original", timeout=60)
    assert original.content == (assets / "bus.jpg").read_bytes()
    coco = account.api.get(f"{stack.base}/api/v1/analyses/export?format=coco", timeout=60)
    assert coco.status_code == 200
    exported = coco.json()
    assert [image["file_name"] for image in exported["images"]] == [f"bus-{public_id}.jpg"]
    assert len(exported["annotations"]) == sum(done["labels"].values())
    page = account.browser.get(f"{stack.base}/analyses/{public_id}", timeout=30)
    assert page.status_code == 200 and "bus" in page.text
    with urllib.request.urlopen(f"{stack.base}/static/app.css", timeout=10) as response:  # nginx serves static/
        assert response.read() == (BASE_DIR / "static" / "app.css").read_bytes()


def big_photos(count: int) -> list[tuple[str, bytes]]:
    """Photos that take the worker a while (27 MP PNGs: decoded whole, no reduced decode of a
    JPEG's), so that it can be caught while it runs one."""
    return [(f"big-{i}.png", encode(sample(6000 + i, 4500), "PNG")) for i in range(count)]


def test_a_worker_container_killed_mid_run_and_started_again_finishes_each_photo_once(stack):
    account = Account(stack.base, "killed@example.com")
    public_ids, interrupted = [], []
    for _ in range(3):  # until the kill lands while a photo runs (one may finish just before it)
        public_ids += account.upload(*big_photos(4))
        stack.wait(partial(running, stack.database_url, public_ids), 120, "a run to start",
                   watch=("spotter-test-worker",))
        podman("kill", "--signal", "KILL", "spotter-test-worker")
        interrupted = [p for p, r in runs(stack.database_url, public_ids).items() if r["status"] == "running"]
        podman("start", "spotter-test-worker")  # what `restart: unless-stopped` does
        if interrupted:
            break
    assert interrupted, "never killed the worker while it ran a photo"
    stack.wait(lambda: all_done(account, public_ids), 300, "the photos", watch=("spotter-test-worker",))
    rows = runs(stack.database_url, public_ids)
    assert {r["status"] for r in rows.values()} == {"done"}, rows
    assert all(r["boxes"] == r["distinct_boxes"] for r in rows.values()), rows  # one set of boxes each
    assert all(rows[p]["attempts"] == 2 for p in interrupted), (interrupted, rows)  # run again once


def test_a_stopped_worker_container_finishes_or_hands_back_its_queue_within_the_grace_period(stack):
    account = Account(stack.base, "stopped@example.com")
    public_ids = account.upload(*big_photos(6))
    stack.wait(lambda: running(stack.database_url, public_ids), 120, "a run to start",
               watch=("spotter-test-worker",))
    grace = duration(stack.services["worker"]["stop_grace_period"])
    started = time.monotonic()
    podman("stop", "spotter-test-worker", timeout=grace + 60)  # SIGTERM; SIGKILL after the grace period
    stopped_in = time.monotonic() - started
    state = json.loads(podman("inspect", "--format", "{{json .State}}", "spotter-test-worker").stdout)
    record(worker_stop_seconds=round(stopped_in, 1))
    assert state["ExitCode"] == 0 and stopped_in < grace, (state, stopped_in)  # a warm shutdown, not killed
    rows = runs(stack.database_url, public_ids)
    assert "running" not in {r["status"] for r in rows.values()}, rows  # each finished, or back in the queue
    podman("start", "spotter-test-worker")
    stack.wait(lambda: all_done(account, public_ids), 300, "the photos", watch=("spotter-test-worker",))
    rows = runs(stack.database_url, public_ids)
    assert {r["status"] for r in rows.values()} == {"done"} and {r["attempts"] for r in rows.values()} == {1}, rows


def test_a_stopped_web_container_ends_its_event_streams_and_exits_within_dockers_ten_seconds(stack):
    account = Account(stack.base, "streams@example.com")
    stream = account.browser.get(f"{stack.base}/events", stream=True, timeout=60)  # a gallery tab's
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    started = time.monotonic()
    podman("stop", "--time", "10", "spotter-test-web", timeout=120)  # compose's default grace period
    stopped_in = time.monotonic() - started
    state = json.loads(podman("inspect", "--format", "{{json .State}}", "spotter-test-web").stdout)
    record(web_stop_seconds=round(stopped_in, 1))
    assert state["ExitCode"] == 0 and stopped_in < 10, (state, stopped_in)  # not killed at the end of it
    assert "Shutting down: Master" in stack.logs("spotter-test-web")
    stream.close()


def test_the_cli_is_reached_with_docker_compose_run(stack):
    """`docker compose run --rm web flask ...` and `... worker flask check-model`, as the docs say."""
    counts = stack.run("web", "flask", "check-counts", check=False)
    assert counts.returncode == 0, counts.stdout + counts.stderr
    model = stack.run("worker", "flask", "check-model", check=False)
    assert model.returncode == 0 and "yolo11n_int8_openvino_model" in model.stdout, model.stdout + model.stderr
    assert "person" in model.stdout  # its classes
