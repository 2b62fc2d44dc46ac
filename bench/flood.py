"""Pixel bombs against the real server: does the web tier keep answering?

The attack of issue 22 (item 3), over real HTTP against gunicorn (2 workers x 4 threads) in the
chosen mode ("celery": the compose stack's, with a real worker over Redis; "thread": `make run`'s
executor, detection in the web processes):

(a) quiet: `/healthz` and an API sign-in, timed one after the other (the baseline, same run);
(b) upload flood: one signed-up user, 8 clients at once, each sending requests of 10 PNGs that
    declare 6000 x 6000 pixels in about 100 KB (each costs about 1.5 s of CPU to decode), again
    and again for `--seconds`;
(c) share flood: 8 anonymous clients, each from its own loopback address (127.0.0.2-9), asking a
    share link for the annotated view of such a photo at confidences not drawn before.

Flooding clients wait as a 429 or 503's `Retry-After` asks (`--ignore-retry-after`: they do not,
and the flood is then mostly of cheap refusals). During (b) and (c) a prober times `/healthz` and a
sign-in from yet another address, every `--every` seconds. Prints p50/p95/max of each, and their
ratio to the quiet baseline. Usage:
    python bench/flood.py [--mode celery|thread] [--seconds 20] [--model PATH]
"""
import argparse
import http.client
import io
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import DEFAULT_MODEL, PASSWORD, ROOT, App, RssSampler, multipart, percentile  # noqa: E402

BOMB_SIDE = 6000
CLIENTS = 8


def bomb() -> bytes:
    """A PNG of 6000 x 6000 pixels that compresses to about 100 KB (noise in one corner)."""
    image = Image.new("RGB", (BOMB_SIDE, BOMB_SIDE), (40, 120, 200))
    image.paste(Image.effect_noise((120, 120), 64).convert("RGB"), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            source: str = "127.0.0.1", timeout: float = 120) -> tuple[int, bytes]:
    return answer(port, method, path, body, headers, source, timeout)[:2]


def answer(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
           source: str = "127.0.0.1", timeout: float = 120) -> tuple[int, bytes, float]:
    """(status, body, the Retry-After it asked for: 0 without one)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), float(response.getheader("Retry-After") or 0)
    finally:
        connection.close()


def pause(retry_after: float, args) -> None:
    """A client told to come back later: waits as asked (unless --ignore-retry-after: then it
    is a plain HTTP flood of cheap refusals, which any endpoint would see, and a proxy's own
    limits are for)."""
    if retry_after and not args.ignore_retry_after:
        time.sleep(retry_after)


def sign_in_body(email: str) -> tuple[bytes, dict]:
    return json.dumps({"email": email, "password": PASSWORD}).encode(), {"Content-Type": "application/json"}


class Prober(threading.Thread):
    """Times /healthz and a sign-in, one after the other, every `every` seconds, until stopped."""

    def __init__(self, port: int, email: str, every: float):
        super().__init__(daemon=True)
        self.port, self.email, self.every = port, email, every
        self.healthz: list[float] = []
        self.sign_in: list[float] = []
        self.failures = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        body, headers = sign_in_body(self.email)
        while not self.stopped.is_set():
            for times, method, path, data in ((self.healthz, "GET", "/healthz", b""),
                                              (self.sign_in, "POST", "/api/v1/auth/login", body)):
                started = time.perf_counter()
                try:
                    status, _ = request(self.port, method, path, data, headers if data else None, "127.0.0.10")
                except OSError:
                    status = 0
                times.append(time.perf_counter() - started)
                self.failures += status != 200
            self.stopped.wait(self.every)


def measure(port: int, email: str, seconds: float, every: float, load=None) -> Prober:
    """Probe for `seconds`, with `load(stop)` running in CLIENTS threads meanwhile (None: quiet)."""
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(stop, i), daemon=True) for i in range(CLIENTS)] if load else []
    for loader in loaders:
        loader.start()
    time.sleep(1 if load else 0)  # the flood is on before the first probe
    prober = Prober(port, email, every)
    prober.start()
    time.sleep(seconds)
    prober.stopped.set()
    prober.join(120)
    stop.set()
    for loader in loaders:
        loader.join(180)
    return prober


def summary(name: str, values: list[float], quiet: list[float]) -> str:
    p50, p95, top = percentile(values, 0.5), percentile(values, 0.95), max(values)
    return (f"{name}: n={len(values)} p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {top * 1000:.0f} ms"
            f"  (p95 / quiet p95: {p95 / percentile(quiet, 0.95):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["celery", "thread"], default="celery")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--every", type=float, default=0.2)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--ignore-retry-after", action="store_true",
                        help="flooding clients send again at once when told to wait")
    args = parser.parse_args()
    data = bomb()
    print(f"mode {args.mode}; clients {'ignore' if args.ignore_retry_after else 'honour'} Retry-After;"
          f" gunicorn 2 workers x 4 threads; a bomb is a {BOMB_SIDE}x{BOMB_SIDE} PNG of "
          f"{len(data) / 1024:.0f} KB; {CLIENTS} flooding clients; probes every {args.every} s for {args.seconds} s")
    sampler = RssSampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        app = App(args.mode, args.model, Path(tmp), 2, 4, {"RATELIMIT_AUTH": "100000 per minute"})
        app.start(sampler)
        try:
            run(app, args, data)
        finally:
            app.stop()
    sampler.stopped.set()
    print("peak RSS: " + ", ".join(f"{name} {mb:.0f} MiB" for name, mb in sorted(sampler.peaks.items())))


def run(app: App, args, data: bytes) -> None:
    port = app.port
    body, headers = sign_in_body("attacker@example.com")
    request(port, "POST", "/api/v1/auth/signup", body, headers)
    request(port, "POST", "/api/v1/auth/signup", *sign_in_body("prober@example.com"))
    token = json.loads(request(port, "POST", "/api/v1/auth/login", body, headers)[1])["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}

    # a finished photo of the bombs' size, shared (for the share flood, after the upload flood)
    one, content_type = multipart([("shared.png", data)])
    status, reply = request(port, "POST", "/api/v1/analyses?wait=true", one, {**bearer, "Content-Type": content_type},
                            timeout=600)
    shared = json.loads(reply)["analyses"][0]["id"]
    waited = time.monotonic() + 600
    while time.monotonic() < waited and app.count_active():
        time.sleep(1)
    path = share_path(app, shared)

    quiet = measure(port, "prober@example.com", args.seconds / 2, args.every)
    print(summary("quiet     /healthz", quiet.healthz, quiet.healthz))
    print(summary("quiet     sign-in ", quiet.sign_in, quiet.sign_in))

    payload, content_type = multipart([(f"bomb{i}.png", data) for i in range(10)])
    sent = {"requests": 0, "refused": 0}

    def upload_flood(stop: threading.Event, _: int) -> None:
        while not stop.is_set():
            try:
                status, _, retry_after = answer(port, "POST", "/api/v1/analyses", payload,
                                                {**bearer, "Content-Type": content_type})
            except OSError:  # answered (429) and closed before the body was all sent
                status, retry_after = 0, 1.0
            sent["requests"] += 1
            sent["refused"] += status != 202
            pause(retry_after, args)

    flood = measure(port, "prober@example.com", args.seconds, args.every, upload_flood)
    tell(f"upload flood: {sent['requests']} requests of 10 bombs ({sent['refused']} refused)", flood, quiet)

    statuses: dict[int, int] = {}

    def share_flood(stop: threading.Event, i: int) -> None:
        source = f"127.0.0.{2 + i}"
        while not stop.is_set():
            conf = random.randint(5, 99) / 100
            code, _, retry_after = answer(port, "GET", f"{path}/image/annotated?conf={conf}", source=source)
            statuses[code] = statuses.get(code, 0) + 1
            pause(retry_after, args)

    flood = measure(port, "prober@example.com", args.seconds, args.every, share_flood)
    tell(f"share flood: answers by status {dict(sorted(statuses.items()))}", flood, quiet)


def tell(what: str, flood: Prober, quiet: Prober) -> None:
    print(what)
    print(summary("  /healthz", flood.healthz, quiet.healthz))
    print(summary("  sign-in ", flood.sign_in, quiet.sign_in))
    print(f"  probes failed: {flood.failures}")


def share_path(app: App, public_id: str) -> str:
    """/s/<token> of a link to the run, made by the app's own code (the API has no share route)."""
    code = ("import sqlalchemy as sa\nfrom webapp import create_app\nfrom webapp.extensions import db\n"
            "from webapp.models import Run\nfrom webapp.shares import links\napp = create_app()\n"
            "with app.app_context():\n"
            f"    run = db.session.scalar(sa.select(Run).where(Run.public_id == {public_id!r}))\n"
            "    print(links.token_for(links.create(run, None)))\n")
    made = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=app.env, capture_output=True, text=True)
    if made.returncode:
        raise SystemExit(f"could not make the share link:\n{made.stderr[-2000:]}")
    return "/s/" + made.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    main()
