"""Benchmark: does "Forgot your password?" answer an address with an account in the time it
answers one without? (an attacker who times it learns which addresses have accounts)

Serves the app (werkzeug, threaded, in this process) with mail to a real SMTP server (aiosmtpd,
also here), signs up one account, then POSTs /forgot-password for it and for an unknown address,
interleaved, N times each over real HTTP, and prints both medians, their 10th and 90th
percentiles and the ratio known/unknown. The rate limits are lifted for the run.

Usage: python bench/reset_timing.py [--requests 200]
"""
import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from tests.helpers import make_config  # noqa: E402
from tests.mailbox import Mailbox  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.extensions import db  # noqa: E402

PASSWORD = "a long passphrase"


def csrf(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', session.get(url).text).group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=box.port, authenticator=box.authenticate,
                      auth_require_tls=False)
    smtp.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reset-"))
    app = create_app(make_config(f"sqlite:///{tmp / 'reset.sqlite3'}", tmp, **box.settings(
        RATELIMIT_AUTH="100000 per minute", RESET_RATE_LIMIT="100000 per hour")))
    with app.app_context():
        db.create_all()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    browser = requests.Session()
    browser.post(f"{base}/signup", data={"email": "known@example.com", "password": PASSWORD, "confirm": PASSWORD,
                                         "csrf_token": csrf(browser, f"{base}/signup")})
    asker = requests.Session()
    token = csrf(asker, f"{base}/forgot-password")
    times = {"known@example.com": [], "unknown@example.com": []}
    for _ in range(10):  # warm-up
        for email in times:
            asker.post(f"{base}/forgot-password", data={"email": email, "csrf_token": token}, allow_redirects=False)
    for _ in range(args.requests):
        for email in times:
            started = time.perf_counter()
            answer = asker.post(f"{base}/forgot-password", data={"email": email, "csrf_token": token},
                                allow_redirects=False)
            times[email].append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 303, answer.status_code
    print(f"POST /forgot-password over HTTP, {args.requests} each, interleaved (SQLite, mail to a local SMTP server)")
    medians = {}
    for email, ms in times.items():
        deciles = statistics.quantiles(ms, n=10)
        medians[email] = statistics.median(ms)
        print(f"{email:22} median {medians[email]:6.2f} ms   p10 {deciles[0]:6.2f}   p90 {deciles[-1]:6.2f}")
    print(f"ratio known/unknown: {medians['known@example.com'] / medians['unknown@example.com']:.3f}")
    server.shutdown()
    smtp.stop()


if __name__ == "__main__":
    main()
