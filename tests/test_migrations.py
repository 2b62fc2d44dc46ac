import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from webapp.extensions import db

TABLES = {"user", "analysis", "detection", "refresh_token", "analysis_label", "user_label", "api_key", "share_link",
          "photo", "idempotent_request", "invite", "takeout"}


def table_names():
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_every_table(make_app):
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
        assert table_names() == TABLES


def test_upgrade_downgrade_upgrade_round_trips(make_app):
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert table_names() == set()
        upgrade()
        assert table_names() == TABLES


def test_migrated_schema_matches_the_models(make_app):
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []


def test_flask_db_upgrade_command_runs(make_app):
    app = make_app(create_schema=False)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert table_names() == TABLES


def test_migrating_leaves_foreign_keys_enforced_on_sqlite(make_app):
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
        downgrade(revision="0003")
        upgrade()
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_upgrading_to_0006_measures_the_stored_files_of_existing_photos(make_app):
    from pathlib import Path

    from tests.helpers import ApiActions
    from tests.images import encode, sample
    from webapp.models import Run, Photo, User

    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
    ApiActions(app.test_client()).user().upload(("one.png", encode(sample(), "PNG")))
    with app.app_context():
        analysis = db.session.scalar(sa.select(Run))
        root = Path(app.config["UPLOAD_DIR"])
        expected = sum((root / p).stat().st_size for p in (analysis.photo.original_path, analysis.photo.thumbnail_path))
        assert analysis.photo.stored_bytes == expected
        db.session.remove()
        downgrade(revision="0005")
        upgrade()
        assert db.session.scalar(sa.select(Photo.stored_bytes)) == expected
        assert db.session.scalar(sa.select(User.stored_bytes)) == expected


OLD_ANALYSES = [  # as revision 0009 stores them: the photo's fields on the analysis
    {"public_id": "a" * 32, "original_filename": "one.jpg", "original_path": "1/" + "a" * 32 + "/original.jpg",
     "thumbnail_path": "1/" + "a" * 32 + "/thumbnail.jpg", "annotated_path": "1/" + "a" * 32 + "/annotated.jpg",
     "width": 640, "height": 480, "stored_bytes": 1234, "sha256": "1" * 64, "status": "done"},
    {"public_id": "b" * 32, "original_filename": "two.png", "original_path": "1/" + "b" * 32 + "/original.png",
     "thumbnail_path": None, "annotated_path": None, "width": 10, "height": 20, "stored_bytes": 99,
     "sha256": "2" * 64, "status": "failed"},
]


def _seed_at_0009() -> None:
    db.session.execute(sa.text(
        "INSERT INTO \"user\" (id, email, password_hash, created_at, photos, stored_bytes, session_version) "
        "VALUES (1, 'old@example.com', 'x', :now, 2, 1333, 0)"), {"now": "2026-01-01 10:00:00+00:00"})
    for i, row in enumerate(OLD_ANALYSES, start=1):
        db.session.execute(sa.text(
            "INSERT INTO analysis (id, public_id, user_id, original_filename, original_path, annotated_path, "
            "thumbnail_path, width, height, stored_bytes, sha256, status, model_name, conf, iou, imgsz, attempts, "
            "created_at) VALUES (:id, :public_id, 1, :original_filename, :original_path, :annotated_path, "
            ":thumbnail_path, :width, :height, :stored_bytes, :sha256, :status, 'yolo11n.pt', 0.25, 0.7, 640, 1, "
            ":created_at)"), {**row, "id": i, "created_at": f"2026-01-0{i} 10:00:00+00:00"})
    db.session.execute(sa.text(
        "INSERT INTO detection (analysis_id, class_id, label, confidence, x1, y1, x2, y2) VALUES "
        "(1, 0, 'person', 0.9, 1, 2, 3, 4), (1, 16, 'dog', 0.5, 5, 6, 7, 8)"))
    db.session.execute(sa.text(
        "INSERT INTO analysis_label (analysis_id, label, user_id, count, created_at) VALUES "
        "(1, 'person', 1, 1, '2026-01-01 10:00:00+00:00'), (1, 'dog', 1, 1, '2026-01-01 10:00:00+00:00')"))
    db.session.execute(sa.text(
        "INSERT INTO user_label (user_id, label, photos) VALUES (1, 'person', 1), (1, 'dog', 1)"))
    if db.engine.dialect.name == "postgresql":  # ids given by hand: the sequences go past them
        for table in ('"user"', "analysis"):
            db.session.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"))
    db.session.commit()


def _check_analyses_kept() -> None:
    from webapp.library import counts
    from webapp.models import Run

    for row in OLD_ANALYSES:
        analysis = db.session.scalar(sa.select(Run).where(Run.public_id == row["public_id"]))
        assert analysis.photo.public_id == row["public_id"] and analysis.current
        for field in ("original_filename", "original_path", "thumbnail_path", "width", "height", "stored_bytes",
                      "sha256"):
            assert getattr(analysis.photo, field) == row[field], field
        assert analysis.annotated_path == row["annotated_path"] and analysis.status == row["status"]
        assert analysis.queued_at == analysis.created_at == analysis.photo.created_at
    first = db.session.scalar(sa.select(Run).where(Run.public_id == "a" * 32))
    assert [(d.label, d.confidence, d.x1) for d in first.detections] == [("person", 0.9, 1), ("dog", 0.5, 5)]
    assert counts.check_counts() == []


def test_photos_and_runs_migration_up_down_up_keeps_every_analysis(make_app):
    from webapp.models import Run

    app = make_app(create_schema=False)
    with app.app_context():
        upgrade(revision="0009")
        _seed_at_0009()
        upgrade()
        _check_analyses_kept()
        first = db.session.scalar(sa.select(Run).where(Run.public_id == "a" * 32))
        rerun = Run(photo=first.photo, user_id=1, current=False, created_at=first.created_at, model_name="m",
                    taken_at=first.taken_at, conf=0.5, iou=0.7, imgsz=320, status="done")
        db.session.add(rerun)
        db.session.commit()
        db.session.remove()

        downgrade(revision="0009")  # the re-run goes; each photo is its one analysis again
        rows = db.session.execute(sa.text(
            "SELECT public_id, original_filename, original_path, thumbnail_path, annotated_path, width, height, "
            "stored_bytes, sha256, status FROM analysis ORDER BY id")).mappings().all()
        assert [dict(r) for r in rows] == OLD_ANALYSES
        assert db.session.execute(sa.text("SELECT COUNT(*) FROM detection")).scalar() == 2
        db.session.remove()

        upgrade()
        _check_analyses_kept()


def test_date_taken_migration_up_down_up_reads_each_stored_original(make_app):
    """0011 reads the date taken, camera and location from each stored original (upload time
    where it says none or its file is gone), for the photo, its runs and its label rows."""
    from datetime import datetime, timezone
    from pathlib import Path

    from tests.helpers import ApiActions
    from tests.images import encode, sample
    from tests.test_photo_facts import exif_photo
    from webapp.models import Photo, Run, RunLabel

    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
    api = ApiActions(app.test_client()).user()
    api.upload(("dated.jpg", exif_photo(offset="+02:00")), ("plain.png", encode(sample(), "PNG")),
               ("gone.jpg", exif_photo(taken="2010:01:01 00:00:00")))
    with app.app_context():
        gone = db.session.scalar(sa.select(Photo).where(Photo.original_filename == "gone.jpg"))
        (Path(app.config["UPLOAD_DIR"]) / gone.original_path).unlink()
        db.session.execute(sa.insert(RunLabel).values(  # a label row, as a finished run has
            run_id=gone.runs[0].id, label="person", user_id=gone.user_id, count=1,
            created_at=gone.created_at, taken_at=gone.taken_at))
        db.session.commit()
        db.session.remove()
        for _ in range(2):
            downgrade(revision="0010")
            assert "taken_at" not in {c["name"] for c in sa.inspect(db.engine).get_columns("photo")}
            upgrade()
            photos = {p.original_filename: p for p in db.session.scalars(sa.select(Photo))}
            dated, plain, gone = photos["dated.jpg"], photos["plain.png"], photos["gone.jpg"]
            assert (dated.taken_at, dated.taken_offset, dated.taken_source) == (
                datetime(2016, 7, 14, 18, 3, 21), 120, "exif")
            assert (dated.camera_model, round(dated.latitude, 4), round(dated.longitude, 4)) == (
                "Canon EOS 5D", 48.8582, -2.2944)
            uploaded = plain.created_at.astimezone(timezone.utc).replace(tzinfo=None)  # as written, in UTC
            assert (plain.taken_at, plain.taken_source) == (uploaded, "upload")
            assert gone.taken_source == "upload" and gone.latitude is None  # its file is gone: upload time
            for photo in photos.values():
                assert {run.taken_at for run in photo.runs} == {photo.taken_at}
            assert db.session.scalar(sa.select(RunLabel.taken_at)) == gone.taken_at
            db.session.remove()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 3


def test_sqlites_user_table_never_reuses_an_id(make_app):
    """A login carries the user's id: a deleted account's must never be a new account's."""
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
        if db.engine.dialect.name != "sqlite":
            return  # PostgreSQL's sequences never reuse one
        with db.engine.connect() as conn:
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'user'").scalar()
    assert "AUTOINCREMENT" in sql
