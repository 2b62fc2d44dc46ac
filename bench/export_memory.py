"""Benchmark: the memory an export of a whole library takes in a web process, before and after
writing it a batch at a time.

Seeds one user with N done photos (7 detections each; bench/gallery_scale.py's seed), then, for
each format (COCO, JSON, CSV), runs in a fresh process each:

- **before**: what `GET /api/v1/analyses/export` did until issue 26: every run and detection
  loaded (`listing.all_matching`), the whole document built in memory (`exports.export`), sent;
- **after**: the route as it is now (`exports.export_all`: batches of 500 runs written to a
  temporary file, which is sent), through the Flask test client, the answer read in chunks.

Prints the peak RSS each process reached above what it held before the export (`ru_maxrss`,
after the app was made and signed in), the seconds it took, the answer's size, and after/before.

Usage: python bench/export_memory.py [--photos 100000] [--database sqlite|postgresql://...] [--keep DIR]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402

from gallery_scale import EMAIL, PASSWORD, seed  # noqa: E402
from tests.helpers import make_config  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import User  # noqa: E402

FORMATS = ("coco", "json", "csv")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(database_url: str, tmp: Path, mode: str, fmt: str) -> dict:
    """One export in this (fresh) process: its peak RSS above the start, seconds, bytes."""
    from webapp.analyses import exports, listing
    from webapp.web.delivery import send_export

    app = create_app(make_config(database_url, tmp))
    client = app.test_client()
    token = client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/analyses?limit=5", headers=bearer).status_code == 200  # warm: the same code loaded
    with app.app_context():  # the model's class names (here the model itself, loaded in this process): not the export's
        exports.model_classes([])
    start_mb, started, size = peak_mb(), time.perf_counter(), 0
    if mode == "before":
        with app.test_request_context():
            user = db.session.scalar(sa.select(User).where(User.email == EMAIL))
            runs = listing.all_matching(user, listing.Filters(), with_detections=True)
            response = send_export(exports.export(runs, fmt, None, "analyses", dataset=True))
            for chunk in response.response:
                size += len(chunk)
    else:
        response = client.get(f"/api/v1/analyses/export?format={fmt}", headers=bearer, buffered=False)
        assert response.status_code == 200
        for chunk in response.response:
            size += len(chunk)
        response.close()
    return {"mb": peak_mb() - start_mb, "seconds": time.perf_counter() - started, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--keep", type=Path, help="keep the SQLite database here, seeded once")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.url, args.tmp, *args.child)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    folder = args.keep or tmp
    folder.mkdir(parents=True, exist_ok=True)
    url = (f"sqlite:///{folder / f'export-{args.photos}.sqlite3'}" if args.database == "sqlite" else args.database)
    app = create_app(make_config(url, tmp))
    with app.app_context():
        seeded = sa.inspect(db.engine).has_table("user") and db.session.scalar(
            sa.select(User.photos).where(User.email == EMAIL)) == args.photos
        db.session.rollback()
        if not seeded:
            print(f"Seeding {args.photos:,} photos ...", flush=True)
            db.drop_all()
            db.create_all()
            seed(args.photos)
        db.session.remove()
        db.engine.dispose()
    print(f"{args.photos:,} photos, 7 detections each, {args.database.split(':')[0]}; one fresh process per export")
    print(f"{'format':8} {'before MB':>10} {'after MB':>9} {'ratio':>6} {'before s':>9} {'after s':>8} {'size MB':>8}")
    for fmt in FORMATS:
        got = {}
        for mode in ("before", "after"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, fmt, "--url", url, "--tmp", str(tmp)],
                                 capture_output=True, text=True, check=True)
            got[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        before, after = got["before"], got["after"]
        print(f"{fmt:8} {before['mb']:10.1f} {after['mb']:9.1f} {after['mb'] / max(before['mb'], 0.1):6.2f} "
              f"{before['seconds']:9.1f} {after['seconds']:8.1f} {after['bytes'] / 1e6:8.1f}", flush=True)


if __name__ == "__main__":
    main()
