"""End-to-end throughput over real HTTP, against the naive Ultralytics loop, in one run.

Two workloads: "coco" (COCO128, 640 px, `--per-request` photos per request, the set uploaded
`--repeat` times: 512 uploads by default, an import of about 500 photos) and "phone" (12 MP phone
photos made by bench/phone_photos.py, one per request). For each, in one run:

(a) naive loop (its own process): for each photo `model.predict(path)` + `result.plot()` +
    `cv2.imwrite`, the loop people write by hand; before, between and after the app's runs.
(b) the app: the real server (gunicorn, `make serve`'s 2 workers x 8 threads unless told
    otherwise) in its normal configuration, the embedded thread executor ("thread") and/or Celery
    with a real worker over Redis ("celery"); `--clients` concurrent API clients (an account each) upload the photos
    until every run is `done`, while a Chromium tab shows the gallery (its event stream open) and
    `/healthz` is asked every 100 ms. Reported: images/s, `/healthz` p95, model loads and worker
    boots during it, and where each run's time went (the pipeline's "Run N done in" log lines).
(c) single-photo latency on an idle server: upload -> `done` over the API (`?wait=true`), and in
    Chromium: file chosen -> boxes visible on its card (one photo at a time, then 30 at once).
(d) drawn when asked: the full-size annotated image's first request (drawn, kept) against the
    second (the kept file).
(e) `flask import-photos` on the same photos (thread executor).

Prints ratios against (a) and the peak RSS of every process. Usage:
    python bench/throughput.py [--workload coco|phone|both] [--mode thread|celery|both]
                               [--clients 4] [--per-request 4] [--repeat 4] [--no-browser] ...
"""
import argparse
import io
import re
import shutil
import statistics
import json
import os
import platform
import queue
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"
DEFAULT_IMAGES = SHARED / "datasets" / "coco128" / "images" / "train2017"
PHONE_PHOTOS = ROOT / "bench" / "phone-photos"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/10"
PASSWORD = "a long benchmark passphrase"


# ---- (a) the naive loop, in a process of its own ----

def naive(model: str, photos: list[Path], out: Path) -> dict:
    import cv2
    from ultralytics import YOLO

    yolo = YOLO(model, task="detect")
    yolo.predict(str(photos[0]), verbose=False)  # warm-up, as the app's model is warm
    started = time.perf_counter()
    for i, photo in enumerate(photos):
        result = yolo.predict(str(photo), conf=0.25, verbose=False)[0]
        cv2.imwrite(str(out / f"{i}.jpg"), result.plot())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_naive(model: str, photos: list[Path]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        code = ("import json, sys; sys.path.insert(0, %r); from bench.throughput import naive; "
                "from pathlib import Path; print(json.dumps(naive(%r, [Path(p) for p in %r], Path(%r))))") % (
                    str(ROOT), model, [str(p) for p in photos], out)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "YOLO_OFFLINE": "1"})
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])


# ---- HTTP ----

def call(method: str, url: str, body: bytes = b"", headers: dict | None = None, timeout: float = 600):
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, data in files:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{name}"\r\n'
                   f"Content-Type: image/jpeg\r\n\r\n".encode())
        body.write(data)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


def token_for(base: str, email: str) -> dict:
    creds = json.dumps({"email": email, "password": PASSWORD}).encode()
    json_headers = {"Content-Type": "application/json"}
    try:
        call("POST", f"{base}/api/v1/auth/signup", creds, json_headers)
    except urllib.error.HTTPError:  # signed up in the browser already
        pass
    _, body = call("POST", f"{base}/api/v1/auth/login", creds, json_headers)
    return {"Authorization": f"Bearer {body['access_token']}"}


# ---- memory ----

class RssSampler(threading.Thread):
    """Peak RSS of each process of the given trees, sampled every 50 ms. Processes seen fewer
    than 5 times are left out: a fork about to exec something else (Ultralytics and torch run a
    few commands at start-up) briefly shows its parent's shared pages as its own."""

    def __init__(self):
        super().__init__(daemon=True)
        self.roots: dict[str, psutil.Process] = {}
        self._peaks: dict[str, float] = {}
        self._seen: dict[str, int] = {}
        self.stopped = threading.Event()

    @property
    def peaks(self) -> dict[str, float]:
        return {name: mb for name, mb in self._peaks.items() if self._seen[name] >= 5}

    def watch(self, role: str, pid: int) -> None:
        self.roots[role] = psutil.Process(pid)

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for role, root in list(self.roots.items()):
                try:
                    procs = [root] + root.children(recursive=True)
                except psutil.Error:
                    continue
                for i, proc in enumerate(procs):
                    try:
                        rss = proc.memory_info().rss / 2**20
                        what = " ".join(Path(part).name for part in proc.cmdline()[1:3])
                    except psutil.Error:
                        continue
                    name = role if i == 0 else f"{role}'s child {proc.pid} ({what})"
                    self._peaks[name] = max(self._peaks.get(name, 0), rss)
                    self._seen[name] = self._seen.get(name, 0) + 1


# ---- (b)-(d) the app ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_url() -> str | None:
    try:
        import sqlalchemy as sa

        admin = sa.create_engine("postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS throughput_bench"))
            conn.execute(sa.text("CREATE DATABASE throughput_bench"))
        admin.dispose()
        return "postgresql://postgres@127.0.0.1:5432/throughput_bench"
    except Exception as exc:  # noqa: BLE001
        print(f"(PostgreSQL not reachable, Celery mode on SQLite: {exc})")
        return None


class App:
    def __init__(self, mode: str, model: str, tmp: Path, workers: int, threads: int, extra_env: dict):
        self.mode, self.tmp = mode, tmp
        database = (postgres_url() if mode == "celery" else None) or f"sqlite:///{tmp / 'app.sqlite3'}"
        self.env = {**os.environ, "SECRET_KEY": "s" * 32, "JWT_SECRET_KEY": "j" * 32, "ANALYSIS_EXECUTOR": mode,
                    "DATABASE_URL": database, "UPLOAD_DIR": str(tmp / "uploads"),
                    "INSTANCE_PATH": str(tmp / "instance"), "YOLO_MODEL": model, "YOLO_OFFLINE": "1",
                    "CELERY_BROKER_URL": REDIS_URL, "LOG_LEVEL": "INFO", "RATELIMIT_AUTH": "1000 per minute",
                    "SESSION_COOKIE_SECURE": "0", **extra_env}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        self.processes: list[subprocess.Popen] = []
        self.log_path = tmp / "server.log"

    def start(self, sampler: RssSampler) -> None:
        if self.mode == "celery":
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True)
        log = open(self.log_path, "ab")
        web = subprocess.Popen([str(BIN / "gunicorn"), "-b", f"127.0.0.1:{self.port}", "-w", str(self.workers),
                                "--threads", str(self.threads), "wsgi:app"], cwd=ROOT, env=self.env,
                               stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(web)
        sampler.watch("gunicorn", web.pid)
        if self.mode == "celery":
            worker = subprocess.Popen([str(BIN / "celery"), "-A", "webapp.worker", "worker", "-Q", "detect",
                                       "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                                      cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            self.processes.append(worker)
            sampler.watch("celery worker", worker.pid)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                status, body = call("GET", f"{self.base}/healthz", timeout=2)
                if body.get("model") == "ok" and (self.mode != "celery" or body.get("workers")):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not come up:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def count_active(self) -> int:
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT count(*) FROM analysis WHERE status IN ('pending', 'running')")).scalar()
        finally:
            engine.dispose()

    def done_ids(self, email: str, n: int) -> list[str]:
        """The public ids of `n` of this account's done runs, newest first."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(
                    "SELECT a.public_id FROM analysis a JOIN \"user\" u ON u.id = a.user_id "
                    "WHERE u.email = :email AND a.status = 'done' ORDER BY a.id DESC LIMIT :n"),
                    {"email": email, "n": n}).scalars())
        finally:
            engine.dispose()


STAGE_LINE = re.compile(r"Run \d+ done in (\d+) ms: (.*)$", re.M)


def stage_breakdown(log: str) -> tuple[int, dict[str, float]]:
    """The mean of each stage over the pipeline's "Run N done in" lines (webapp/jobs/pipeline.py)."""
    sums: dict[str, list[float]] = {}
    lines = STAGE_LINE.findall(log)
    for total, stages in lines:
        sums.setdefault("in pipeline", []).append(float(total))
        for part in stages.split(", "):
            name, ms, _ = part.rsplit(" ", 2)
            sums.setdefault(name, []).append(float(ms))
    return len(lines), {name: statistics.fmean(values) for name, values in sums.items()}


class HealthProbe(threading.Thread):
    """`GET /healthz` every 100 ms, timing each answer."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.times, self.failures = base, [], 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            started = time.perf_counter()
            try:
                call("GET", f"{self.base}/healthz", timeout=30)
                self.times.append(time.perf_counter() - started)
            except (urllib.error.URLError, OSError, ValueError):
                self.failures += 1


# ---- Chromium: file chosen -> boxes visible ----

BOXES_SHOWN = """n => Array.from(document.querySelectorAll('.tile.status-done img'))
    .filter(img => img.src.includes('annotated-thumbnail') && img.complete && img.naturalWidth > 0)
    .length >= n"""


class Browser:
    """One headless Chromium tab, signed in as the benchmark's user, on the gallery. A tall
    window, so every card of a 30-photo upload is in view (thumbnails load lazily)."""

    def __init__(self, base: str, email: str):
        from playwright.sync_api import sync_playwright

        self.base = base
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        # bypass_csp: the app's CSP forbids eval, which wait_for_function needs (the app is unchanged)
        context = self._browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 6000})
        self.page = context.new_page()
        self.page.goto(f"{base}/signup")
        self.page.fill("#email", email)
        self.page.fill("#password", PASSWORD)
        self.page.fill("#confirm", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/analyses")

    def boxes_shown(self, files: list[Path], timeout: float = 600) -> float:
        """Seconds from choosing `files` in the gallery's upload control to every one's card
        showing its boxed thumbnail (a fresh gallery each time)."""
        self.page.goto(f"{self.base}/analyses")
        self.page.wait_for_load_state("networkidle")
        shown = self.page.evaluate(BOXES_SHOWN.split("=>", 1)[1].replace(".length >= n", ".length"))
        started = time.perf_counter()
        self.page.set_input_files("#images", [str(f) for f in files])
        self.page.wait_for_function(BOXES_SHOWN, arg=shown + len(files), polling=10, timeout=timeout * 1000)
        return time.perf_counter() - started

    def open_gallery(self) -> None:
        self.page.goto(f"{self.base}/analyses")

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


# ---- (b)-(e) ----

def throughput(app: App, accounts: list[dict], payloads: list[tuple[str, bytes]], per_request: int) -> float:
    """Seconds for `accounts` (one API client each: an account may have only UPLOADS_AT_ONCE
    uploads in a process at once) to upload the payloads and for every run to be done."""
    work: queue.Queue = queue.Queue()
    for i in range(0, len(payloads), per_request):
        work.put(payloads[i:i + per_request])
    errors: list[str] = []

    def client(headers: dict) -> None:
        while True:
            try:
                group = work.get_nowait()
            except queue.Empty:
                return
            body, content_type = multipart(group)
            try:
                status, _ = call("POST", f"{app.base}/api/v1/analyses", body, {**headers, "Content-Type": content_type})
                if status not in (201, 202):
                    errors.append(str(status))
            except urllib.error.HTTPError as exc:
                errors.append(f"{exc.code} {exc.read()[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(headers,)) for headers in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"uploads failed: {errors[:5]}")
    while app.count_active():
        time.sleep(0.02)
    return time.perf_counter() - started


def latencies(app: App, headers: dict, payloads: list[tuple[str, bytes]], n: int) -> list[float]:
    found = []
    for name, data in payloads[:n]:
        body, content_type = multipart([(name, data)])
        started = time.perf_counter()
        status, answer = call("POST", f"{app.base}/api/v1/analyses?wait=true", body,
                              {**headers, "Content-Type": content_type})
        found.append(time.perf_counter() - started)
        assert status == 201 and answer["analyses"][0]["status"] == "done", answer
        time.sleep(0.2)  # idle between photos
    return found


def drawn_when_asked(app: App, headers: dict, n: int) -> tuple[list[float], list[float]]:
    """Each of `n` of the benchmark user's runs' full-size annotated image asked for twice over the API: the first
    answer draws it and keeps it, the second sends the kept file."""
    first, second = [], []
    for public_id in app.done_ids("bench@example.com", n):
        for times in (first, second):
            started = time.perf_counter()
            request = urllib.request.Request(f"{app.base}/api/v1/analyses/{public_id}/image?variant=annotated",
                                             headers=headers)
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            times.append(time.perf_counter() - started)
    return first, second


def run_import(app: App, photos: list[Path]) -> tuple[float, str]:
    """`flask import-photos` on the photos, for a user of its own (the server is stopped)."""
    env = {**app.env, "UPLOAD_DIR": str(app.tmp / "import-uploads"), "LOG_LEVEL": "WARNING"}
    folder = app.tmp / "import-photos"
    folder.mkdir()
    for photo in photos:  # copies: the import follows no links
        shutil.copyfile(photo, folder / photo.name)
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "import-photos", "--user", "importer@example.com",
                           str(folder)], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    return seconds, next((line for line in done.stdout.splitlines() if "photos" in line), done.stdout.strip())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_mode(mode: str, args, workload: dict) -> dict:
    photos, per_request = workload["photos"], workload["per_request"]
    payloads = [(p.name, p.read_bytes()) for p in photos] * workload["repeat"]
    n_latency = workload["latency"]
    singles = photos[n_latency:n_latency + args.browser_singles]  # photos the user has not uploaded yet
    group = photos[n_latency + args.browser_singles:n_latency + args.browser_singles + 30]
    sampler = RssSampler()
    sampler.start()
    figures: dict = {"mode": mode, "n": len(payloads), "per_request": per_request}
    with tempfile.TemporaryDirectory(prefix=f"throughput-{mode}-") as tmp:
        extra = {"DETECT_BATCH": str(args.batch)} if args.batch else {}
        if args.openvino_hint:
            extra["DETECT_OPENVINO_HINT"] = args.openvino_hint
        app = App(mode, args.model, Path(tmp), args.workers, args.threads, extra)
        app.start(sampler)
        browser = None
        try:
            if args.browser:
                browser = Browser(app.base, "bench@example.com")
            headers = token_for(app.base, "bench@example.com")
            token_for(app.base, "importer@example.com")
            clients = [token_for(app.base, f"client{i}@example.com") for i in range(args.clients)]
            latencies(app, headers, payloads, 2 * args.workers)  # warm every web worker's first request
            figures["lat"] = latencies(app, headers, payloads, n_latency)
            if browser:
                figures["chromium_one"] = [browser.boxes_shown([photo]) for photo in singles]
                figures["chromium_30"] = browser.boxes_shown(group) if len(group) == 30 else None
                browser.open_gallery()  # open, its event stream too, while the photos pour in
            offset = app.log_size()
            probe = HealthProbe(app.base)
            probe.start()
            seconds = throughput(app, clients, payloads, per_request)
            probe.stopped.set()
            probe.join()
            during = app.log_since(offset)
            figures.update(rate=len(payloads) / seconds, health=probe.times, health_failures=probe.failures,
                           stages=stage_breakdown(during), model_loads=during.count("Loaded YOLO model"),
                           boots=during.count("Booting worker"))
            figures["drawn"] = drawn_when_asked(app, headers, args.drawn)
        finally:
            if browser:
                browser.close()
            app.stop()
        figures["import"] = run_import(app, photos) if mode == "thread" and args.import_photos else None
    sampler.stopped.set()
    figures["rss"] = dict(sampler.peaks)
    return figures


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(args, workload: dict, figures: dict, naive_rate: float) -> None:
    mode, lat = figures["mode"], figures["lat"]
    photos = workload["photos"]
    per_photo = 1 / naive_rate
    settings = f"DETECT_BATCH={args.batch or 'default'}, DETECT_OPENVINO_HINT={args.openvino_hint or 'default'}"
    print(f"\n[{workload['name']} / {mode}] {settings}; gunicorn {args.workers} workers x {args.threads} threads"
          + (", 1 Celery worker (threads pool)" if mode == "celery" else ", detection in the web processes")
          + f"; {args.clients} clients, {figures['per_request']} photos per request, {figures['n']} uploads")
    print(f"  app over HTTP, upload -> done: {figures['rate']:.1f} images/s   "
          f"ratio to the naive loop: {figures['rate'] / naive_rate:.2f}")
    p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
    print(f"  one photo over the API, upload -> done (idle, ?wait=true, n={len(lat)}): p50 {ms(p50)}, p95 {ms(p95)};"
          f"  p50 / naive per-photo time ({ms(per_photo)}): {p50 / per_photo:.2f}")
    if figures.get("chromium_one"):
        one = figures["chromium_one"]
        print(f"  Chromium, one photo chosen -> its boxes shown (n={len(one)}): p50 {ms(percentile(one, 0.5))}, "
              f"max {ms(max(one))};  p50 - naive per-photo time: {(percentile(one, 0.5) - per_photo) * 1000:+.0f} ms")
    if figures.get("chromium_30"):
        naive_30 = 30 * per_photo
        print(f"  Chromium, 30 photos chosen -> all boxes shown: {figures['chromium_30']:.2f} s;  naive loop for "
              f"them {naive_30:.2f} s; (all - 1 s) / naive: {(figures['chromium_30'] - 1) / naive_30:.2f}")
    health = figures["health"]
    if health:
        print(f"  /healthz during the uploads (every 100 ms, n={len(health)}): p50 {ms(percentile(health, 0.5))}, "
              f"p95 {ms(percentile(health, 0.95))}, max {ms(max(health))}, {figures['health_failures']} failed")
    print(f"  during the uploads: {figures['model_loads']} model loads, {figures['boots']} gunicorn workers booted")
    count, stages = figures["stages"]
    if count:
        print(f"  where a run's time went, mean ms over {count} runs (pipeline log): "
              + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    first, second = figures["drawn"]
    if first:
        print(f"  full-size annotated image, n={len(first)}: first request (drawn, kept) p50 "
              f"{ms(percentile(first, 0.5))}, second (kept file) p50 {ms(percentile(second, 0.5))}")
    if figures["import"] is not None:
        seconds, line = figures["import"]
        print(f"  flask import-photos, {len(photos)} photos: {len(photos) / seconds:.1f} images/s "
              f"(whole command, start-up included: {seconds:.1f} s)  ratio to the naive loop: "
              f"{len(photos) / seconds / naive_rate:.2f}")
        print(f"    its report: {line}")
    web = [mb for name, mb in figures["rss"].items() if name.startswith("gunicorn's child")]
    print("  peak RSS: " + ", ".join(f"{name} {mb:.0f} MiB" for name, mb in sorted(figures["rss"].items()))
          + (f"; web worker max {max(web):.0f} MiB" if web else ""))


def workloads(args) -> list[dict]:
    chosen = []
    if args.workload in ("coco", "both"):
        photos = sorted(Path(args.photos).glob("*.jpg"))[: args.images]
        chosen.append({"name": "coco", "photos": photos, "per_request": args.per_request, "repeat": args.repeat,
                       "latency": args.latency})
    if args.workload in ("phone", "both"):
        folder = Path(args.phone_photos)
        if len(list(folder.glob("*.jpg"))) < args.phone_images:
            subprocess.run([sys.executable, str(ROOT / "bench" / "phone_photos.py"), "--images",
                            str(args.phone_images), "--out", str(folder), "--source", args.photos], check=True)
        photos = sorted(folder.glob("*.jpg"))[: args.phone_images]
        chosen.append({"name": "phone", "photos": photos, "per_request": 1, "repeat": 1,
                       "latency": max(1, args.latency // 2)})
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["coco", "phone", "both"], default="both")
    parser.add_argument("--mode", choices=["thread", "celery", "both"], default="both")
    parser.add_argument("--clients", type=int, default=4, help="API clients, an account each")
    parser.add_argument("--per-request", type=int, default=4, help="COCO photos per upload request")
    parser.add_argument("--images", type=int, default=128, help="COCO photos")
    parser.add_argument("--repeat", type=int, default=4, help="upload the COCO set this many times")
    parser.add_argument("--phone-images", type=int, default=128, help="phone photos (one per request)")
    parser.add_argument("--latency", type=int, default=20, help="single-photo API uploads timed on an idle server")
    parser.add_argument("--browser-singles", type=int, default=5, help="photos chosen one at a time in Chromium")
    parser.add_argument("--no-browser", dest="browser", action="store_false", help="leave Chromium out")
    parser.add_argument("--no-import", dest="import_photos", action="store_false", help="leave the import out")
    parser.add_argument("--drawn", type=int, default=10, help="runs whose annotated image is asked for twice")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--photos", default=str(DEFAULT_IMAGES))
    parser.add_argument("--phone-photos", default=str(PHONE_PHOTOS))
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--batch", type=int, default=0, help="DETECT_BATCH (0: the app's default)")
    parser.add_argument("--openvino-hint", choices=["latency", "throughput"], help="DETECT_OPENVINO_HINT")
    args = parser.parse_args()
    if not Path(args.model).exists():
        sys.exit(f"Need the model at {args.model}")
    if args.browser and not Path(CHROMIUM).exists():
        sys.exit(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or --no-browser)")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}; model {Path(args.model).name}")
    for workload in workloads(args):
        photos = workload["photos"]
        if not photos:
            sys.exit(f"No photos for the {workload['name']} workload")
        naive_photos = photos * workload["repeat"]
        naive_runs = [run_naive(args.model, naive_photos)]
        results = []
        for mode in ["thread", "celery"] if args.mode == "both" else [args.mode]:
            results.append(bench_mode(mode, args, workload))
            naive_runs.append(run_naive(args.model, naive_photos))
        rates = [len(naive_photos) / r["seconds"] for r in naive_runs]
        print(f"\n==== {workload['name']}: {len(photos)} photos from {Path(photos[0]).parent} ====")
        print(f"naive loop (predict + plot + imwrite, one process), {len(naive_photos)} photos, runs "
              f"before/between/after the app: {', '.join(f'{r:.1f}' for r in rates)} images/s; peak RSS "
              f"{max(r['rss_mb'] for r in naive_runs):.0f} MiB")
        print("each ratio is against the faster of the naive runs just before and just after it")
        for i, figures in enumerate(results):
            report(args, workload, figures, max(rates[i], rates[i + 1]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
