import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from webapp.extensions import db

TABLES = {"user", "analysis", "detection", "refresh_token", "analysis_label", "user_label", "api_key", "share_link"}


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
    from webapp.models import Analysis, User

    app = make_app(create_schema=False)
    with app.app_context():
        upgrade()
    ApiActions(app.test_client()).user().upload(("one.png", encode(sample(), "PNG")))
    with app.app_context():
        analysis = db.session.scalar(sa.select(Analysis))
        root = Path(app.config["UPLOAD_DIR"])
        expected = sum((root / p).stat().st_size for p in (analysis.original_path, analysis.thumbnail_path))
        assert analysis.stored_bytes == expected
        db.session.remove()
        downgrade(revision="0005")
        upgrade()
        assert db.session.scalar(sa.select(Analysis.stored_bytes)) == expected
        assert db.session.scalar(sa.select(User.stored_bytes)) == expected
