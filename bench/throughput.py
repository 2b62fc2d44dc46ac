"""End-to-end throughput over real HTTP, against the naive Ultralytics loop, in one run.

(a) naive loop (its own process): for each photo `model.predict(path)` + `result.plot()` +
    `cv2.imwrite`, the loop people write by hand.
(b) the app: the real server (gunicorn, `make serve`'s 2 workers x 4 threads unless told
    otherwise) in its normal configuration, the embedded thread executor ("thread") and/or Celery
    with a real worker over Redis ("celery"); `--clients` concurrent API clients upload the photos
    (`--per-request` photos per request) until every analysis is `done`.
(c) single-photo latency on an idle server: upload -> `done` (`?wait=true`), p50 and p95.
(d) `flask import-photos` on the same photos.

Prints images/s, ratios against (a), latencies against (a)'s per-photo time, and the peak RSS of
every process. Usage:
    python bench/throughput.py [--mode thread|celery|both] [--clients 4] [--per-request 4]
                               [--images 128] [--repeat 2] [--model PATH] [--workers 2]
"""
import argparse
import io
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
    call("POST", f"{base}/api/v1/auth/signup", creds, json_headers)
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
                    "CELERY_BROKER_URL": REDIS_URL, "LOG_LEVEL": "WARNING", "RATELIMIT_AUTH": "1000 per minute",
                    "SESSION_COOKIE_SECURE": "0", **extra_env}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        self.processes: list[subprocess.Popen] = []

    def start(self, sampler: RssSampler) -> None:
        if self.mode == "celery":
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True)
        log = open(self.tmp / "server.log", "wb")
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
        raise SystemExit("the server did not come up:\n" + (self.tmp / "server.log").read_text()[-3000:])

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()

    def count_active(self) -> int:
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT count(*) FROM analysis WHERE status IN ('pending', 'running')")).scalar()
        finally:
            engine.dispose()

    def stage_timings(self) -> dict:
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                row = conn.execute(sa.text(
                    "SELECT avg(preprocess_ms), avg(inference_ms), avg(postprocess_ms), avg(total_ms), "
                    "sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END), count(*) FROM analysis")).one()
        finally:
            engine.dispose()
        return dict(zip(["preprocess", "inference", "postprocess", "in pipeline", "done", "all"], row, strict=True))


def throughput(app: App, headers: dict, payloads: list[tuple[str, bytes]], clients: int, per_request: int) -> float:
    work: queue.Queue = queue.Queue()
    for i in range(0, len(payloads), per_request):
        work.put(payloads[i:i + per_request])
    errors: list[str] = []

    def client() -> None:
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
    threads = [threading.Thread(target=client) for _ in range(clients)]
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


def run_import(app: App, photos: list[Path]) -> tuple[float, str]:
    """`flask import-photos` on the photos, for a user of its own (the server is stopped)."""
    env = {**app.env, "UPLOAD_DIR": str(app.tmp / "import-uploads")}
    folder = app.tmp / "import-photos"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).symlink_to(photo)
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


def bench_mode(mode: str, args, photos: list[Path]) -> dict:
    payloads = [(p.name, p.read_bytes()) for p in photos] * args.repeat
    sampler = RssSampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix=f"throughput-{mode}-") as tmp:
        extra = {"DETECT_BATCH": str(args.batch)} if args.batch else {}
        if args.openvino_hint:
            extra["DETECT_OPENVINO_HINT"] = args.openvino_hint
        app = App(mode, args.model, Path(tmp), args.workers, args.threads, extra)
        app.start(sampler)
        try:
            headers = token_for(app.base, "bench@example.com")
            token_for(app.base, "importer@example.com")
            latencies(app, headers, payloads, 2 * args.workers)  # warm every web worker's first request
            lat = latencies(app, headers, payloads, args.latency)
            seconds = throughput(app, headers, payloads, args.clients, args.per_request)
            stages = app.stage_timings()
        finally:
            app.stop()
        imported = run_import(app, photos) if mode == "thread" else None
    sampler.stopped.set()
    return {"mode": mode, "n": len(payloads), "rate": len(payloads) / seconds, "lat": lat, "stages": stages,
            "import": imported, "rss": dict(sampler.peaks)}


def report(args, photos: list[Path], figures: dict, naive_rate: float) -> None:
    mode, lat, stages = figures["mode"], figures["lat"], figures["stages"]
    per_photo = 1 / naive_rate
    p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
    settings = f"DETECT_BATCH={args.batch or 'default'}, DETECT_OPENVINO_HINT={args.openvino_hint or 'default'}"
    print(f"\n[{mode}] {settings}; gunicorn {args.workers} workers x {args.threads} threads"
          + (", 1 Celery worker (threads pool)" if mode == "celery" else ", detection in the web processes")
          + f"; {args.clients} clients, {args.per_request} photos per request, {figures['n']} uploads")
    print(f"  app over HTTP, upload -> done: {figures['rate']:.1f} images/s   "
          f"ratio to the naive loop: {figures['rate'] / naive_rate:.2f}")
    print(f"  single photo upload -> done (idle, n={len(lat)}): p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms;"
          f"  p50 / naive per-photo time ({per_photo * 1000:.1f} ms): {p50 / per_photo:.2f}")
    print("  per analysis, mean ms: " + ", ".join(
        f"{k} {v:.1f}" for k, v in stages.items() if k not in ("done", "all") and v is not None)
        + f"  ({stages['done']}/{stages['all']} done)")
    if figures["import"] is not None:
        seconds, line = figures["import"]
        print(f"  flask import-photos, {len(photos)} photos: {len(photos) / seconds:.1f} images/s "
              f"(whole command, start-up included: {seconds:.1f} s)  ratio to the naive loop: "
              f"{len(photos) / seconds / naive_rate:.2f}")
        print(f"    its report: {line}")
    print("  peak RSS: " + ", ".join(f"{name} {mb:.0f} MiB" for name, mb in sorted(figures["rss"].items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["thread", "celery", "both"], default="thread")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-request", type=int, default=4)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2, help="upload the photo set this many times")
    parser.add_argument("--latency", type=int, default=20, help="single-photo uploads timed on an idle server")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--photos", default=str(DEFAULT_IMAGES))
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--batch", type=int, default=0, help="DETECT_BATCH (0: the app's default)")
    parser.add_argument("--openvino-hint", choices=["latency", "throughput"], help="DETECT_OPENVINO_HINT")
    args = parser.parse_args()
    photos = sorted(Path(args.photos).glob("*.jpg"))[: args.images]
    if not photos or not Path(args.model).exists():
        sys.exit(f"Need photos in {args.photos} and the model at {args.model}")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}; model {Path(args.model).name}; {len(photos)} photos from {args.photos}")
    n = len(photos) * args.repeat
    naive_runs = [run_naive(args.model, photos * args.repeat)]
    results = []
    for mode in ["thread", "celery"] if args.mode == "both" else [args.mode]:
        results.append(bench_mode(mode, args, photos))
        naive_runs.append(run_naive(args.model, photos * args.repeat))
    rates = [n / r["seconds"] for r in naive_runs]
    print(f"\nnaive loop (predict + plot + imwrite, one process), {n} photos, runs before/between/after the "
          f"app: {', '.join(f'{r:.1f}' for r in rates)} images/s; peak RSS "
          f"{max(r['rss_mb'] for r in naive_runs):.0f} MiB")
    print("each ratio is against the faster of the naive runs just before and just after it")
    for i, figures in enumerate(results):
        report(args, photos, figures, max(rates[i], rates[i + 1]))


if __name__ == "__main__":
    main()
