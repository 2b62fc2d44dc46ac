"""Benchmark: does a page cost the same with 100 photos as with 100,000?

Seeds one user with N done analyses (7 detections each, labels from a skewed mix: "person" on
70% of the photos, "toothbrush" on 30 photos spread over the whole history, so that both sizes
fill a page with it: 30% of 100, 0.03% of 100,000) straight through the models (bulk
inserts, no inference), then times, through the Flask test client, the gallery's first page, a
page filtered by a common and by a rare label, a scroll page deep in the history (after half the
photos), and the API list unfiltered and filtered: in both orders, by date taken (the default:
dates spread over ten years, independent of upload order, many photos sharing a minute) and by
upload time (`by=uploaded`). Median of 15 requests each, at N=100 and
N=100,000, on SQLite and on PostgreSQL, in one run; prints each time and the ratio.

Also the full pages of two labels and of a label with one month (counted up to one more than a
bulk action takes), and the year scrubber's rows (every full page reads them).

Usage: python bench/gallery_scale.py [--small 3000] [--large 1000000]
       [--postgres postgresql://postgres@127.0.0.1:5432/bench | --postgres none] [--keep DIR]
`--keep DIR` keeps the SQLite databases in DIR and seeds each size only once (1,000,000 photos
take about 9 minutes to seed on 2 vCPUs).
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from tests.helpers import HX, AuthActions, make_config  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.analyses import listing  # noqa: E402
from webapp.library import counts  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Run, Detection, Photo, User  # noqa: E402

REPEAT = 15
RARE_PHOTOS = 30
LABELS = ["car", "chair", "cup", "dog", "cat", "bicycle", "bus", "bottle", "book", "tv", "laptop", "bird"]
EMAIL, PASSWORD = "many@example.com", "a long passphrase"


def seed(n: int) -> None:
    """One user with n done analyses, one a second apart, and their detections and counts."""
    rng = random.Random(n)
    user = User(email=EMAIL)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rare = set(rng.sample(range(n), RARE_PHOTOS))
    decade = 10 * 365 * 24 * 60  # minutes: taken times a minute apart at most, so many are equal
    for first in range(0, n, 5000):
        photos = [{"public_id": f"{i:032x}", "user_id": user.id, "original_filename": f"IMG_{i}.jpg",
                   "original_path": f"{user.id}/{i:032x}/original.jpg", "width": 640, "height": 480,
                   "sha256": "0" * 64, "created_at": start + timedelta(seconds=i),
                   "taken_at": datetime(2014, 1, 1) + timedelta(minutes=rng.randrange(min(decade, n))),
                   "taken_source": "exif"}
                  for i in range(first, min(first + 5000, n))]
        photo_ids = db.session.scalars(sa.insert(Photo).returning(Photo.id, sort_by_parameter_order=True),
                                       photos).all()
        rows = [{"public_id": photo["public_id"], "user_id": user.id, "photo_id": photo_id, "status": "done",
                 "model_name": "yolo11n.pt", "conf": 0.25, "iou": 0.7, "imgsz": 640,
                 "created_at": photo["created_at"], "taken_at": photo["taken_at"], "queued_at": photo["created_at"],
                 "attempts": 1}
                for photo, photo_id in zip(photos, photo_ids, strict=True)]
        ids = db.session.scalars(sa.insert(Run).returning(Run.id, sort_by_parameter_order=True), rows).all()
        detections = []
        for index, run_id in enumerate(ids, start=first):
            labels = ["person"] * (rng.random() < 0.7) + ["toothbrush"] * (index in rare)
            labels += rng.choices(LABELS, k=7 - len(labels))
            detections += [{"run_id": run_id, "class_id": 0, "label": label,
                            "confidence": rng.uniform(0.05, 1.0), "x1": 1, "y1": 1, "x2": 9, "y2": 9}
                           for label in labels]
        db.session.execute(sa.insert(Detection), detections)
        db.session.commit()
    counts.rebuild_counts()
    if db.engine.dialect.name == "postgresql":  # planner statistics, as autovacuum would gather them
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()


def median_ms(client, url, headers=None) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get(url, headers=headers or {})
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times)


def measure(database_url: str, n: int, tmp: Path, reuse: bool = False) -> dict[str, float]:
    app = create_app(make_config(database_url, tmp, GALLERY_PER_PAGE=24))
    with app.app_context():
        seeded = reuse and sa.inspect(db.engine).has_table("user") and db.session.scalar(
            sa.select(User.photos).where(User.email == EMAIL)) == n
        db.session.rollback()  # no transaction left open: dropping the tables waits for none
        if not seeded:
            db.drop_all()
            db.create_all()
            seed(n)
        user = db.session.scalar(sa.select(User).where(User.email == EMAIL))
        month = listing.sort_date(db.session.scalar(sa.select(Run).where(Run.user_id == user.id)
                                                    .order_by(Run.taken_at.desc(), Run.id.desc()).offset(n // 2)),
                                  listing.Filters())
        first = month.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        one_month = f"from={first:%Y-%m-%d}&to={last:%Y-%m-%d}"
        middle = db.session.scalar(sa.select(Run).where(Run.user_id == user.id)
                                   .order_by(Run.taken_at.desc(), Run.id.desc()).offset(n // 2))
        deep = listing.encode_cursor(middle, user, listing.Filters(), n // 2 // 24)
        uploaded = listing.Filters(by_upload=True)
        middle = db.session.scalar(sa.select(Run).where(Run.user_id == user.id)
                                   .order_by(Run.created_at.desc(), Run.id.desc()).offset(n // 2))
        deep_uploaded = listing.encode_cursor(middle, user, uploaded, n // 2 // 24)
    client = app.test_client()
    assert AuthActions(client).login(EMAIL, PASSWORD).status_code == 302
    token = client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    results = {
        "GET /analyses": median_ms(client, "/analyses"),
        "GET /analyses?label=person (common)": median_ms(client, "/analyses?label=person"),
        "GET /analyses?label=toothbrush (rare)": median_ms(client, "/analyses?label=toothbrush"),
        "GET /analyses?label=dog&label=person": median_ms(client, "/analyses?label=dog&label=person"),
        "GET /analyses?label=person&<one month>": median_ms(client, f"/analyses?label=person&{one_month}"),
        "GET /analyses?cursor=<half way> (scroll)": median_ms(client, f"/analyses?cursor={deep}", HX),
        "GET /api/v1/analyses": median_ms(client, "/api/v1/analyses", bearer),
        "GET /api/v1/analyses?label=dog": median_ms(client, "/api/v1/analyses?label=dog", bearer),
        "GET /api/v1/analyses?label=dog&label=person": median_ms(client, "/api/v1/analyses?label=dog&label=person",
                                                                 bearer),
        "GET /analyses?by=uploaded": median_ms(client, "/analyses?by=uploaded"),
        "GET /analyses?by=uploaded&label=toothbrush": median_ms(client, "/analyses?by=uploaded&label=toothbrush"),
        "GET /analyses?by=uploaded&cursor=<half way>": median_ms(
            client, f"/analyses?by=uploaded&cursor={deep_uploaded}", HX),
        "GET /api/v1/analyses?by=uploaded&label=dog": median_ms(client, "/api/v1/analyses?by=uploaded&label=dog",
                                                                bearer),
    }
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/bench"),
                        help="the PostgreSQL database to use, or 'none' for SQLite only")
    parser.add_argument("--keep", type=Path, help="keep the SQLite databases here, seeding each size once")
    args = parser.parse_args()
    if args.postgres != "none":
        ensure_database(args.postgres)
    print(f"one user, {args.small} and {args.large} done analyses, 7 detections each; median of {REPEAT}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        backends = [("SQLite", lambda n: f"sqlite:///{keep / f'bench-{n}.sqlite3'}")]
        if args.postgres != "none":
            backends.append(("PostgreSQL", lambda n: args.postgres))
        for backend, url in backends:
            small = measure(url(args.small), args.small, Path(tmp), reuse=args.keep is not None)
            large = measure(url(args.large), args.large, Path(tmp), reuse=args.keep is not None)
            print(f"\n{backend}\n| request | {args.small} | {args.large:,} | ratio |\n| --- | --- | --- | --- |")
            for name in small:
                ratio = large[name] / small[name]
                worst = max(worst, ratio)
                print(f"| `{name}` | {small[name]:.1f} ms | {large[name]:.1f} ms | {ratio:.2f} |")
    print(f"\nworst ratio: {worst:.2f} (target <= 1.5)")


def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist (never `test`'s)."""
    name = url.rsplit("/", 1)[1]
    engine = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


if __name__ == "__main__":
    main()
