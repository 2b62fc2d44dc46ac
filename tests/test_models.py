import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests import factories
from webapp.extensions import db
from webapp.models import Run, RunStatus, Detection, RefreshToken, User


def counts():
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (User, Run, Detection, RefreshToken)}


def test_timestamps_come_back_as_aware_utc(app):
    with app.app_context():
        user = factories.user()
        db.session.expire_all()
        created = db.session.get(User, user.id).created_at
        assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)


def test_password_is_stored_hashed(app):
    with app.app_context():
        user = factories.user(password="a long password")
        assert "a long password" not in user.password_hash
        assert user.password_hash.startswith("scrypt:")
        assert user.check_password("a long password") and not user.check_password("wrong")


def test_email_is_unique(app):
    with app.app_context():
        factories.user()
        db.session.add(User(email="ada@example.com", password_hash="x"))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()


def test_analysis_public_id_is_random_not_a_counter(app):
    with app.app_context():
        user = factories.user()
        first, second = factories.analysis(user), factories.analysis(user)
        assert len(first.public_id) == 32 and first.public_id != second.public_id
        assert uuid.UUID(first.public_id).version == 4  # 122 random bits, unrelated to the row id


def test_status_reads_back_as_the_enum(app):
    with app.app_context():
        analysis = factories.analysis(factories.user(), status=RunStatus.FAILED)
        db.session.expire_all()
        status = db.session.get(Run, analysis.id).status
        assert status is RunStatus.FAILED and status == "failed"


def test_deleting_a_user_leaves_no_orphan_rows(app):
    with app.app_context():
        user = factories.user()
        factories.analysis(user, labels=[("person", 0.9)])
        db.session.add(RefreshToken(user=user, token_hash="a" * 64, family="f",
                                    expires_at=datetime.now(timezone.utc)))
        db.session.commit()
        db.session.delete(user)
        db.session.commit()
        assert counts() == {"User": 0, "Run": 0, "Detection": 0, "RefreshToken": 0}


def test_database_cascades_deletes_without_the_orm(app):
    with app.app_context():
        user = factories.user()
        factories.analysis(user, labels=[("person", 0.9)])
        db.session.execute(sa.delete(User))
        db.session.commit()
        assert counts() == {"User": 0, "Run": 0, "Detection": 0, "RefreshToken": 0}


def test_deleting_an_analysis_removes_its_detections(app):
    with app.app_context():
        user = factories.user()
        analysis = factories.analysis(user, labels=[("person", 0.9)])
        db.session.delete(analysis)
        db.session.commit()
        assert counts()["Detection"] == 0 and counts()["User"] == 1
