from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Analysis, Detection, RefreshToken, User


def make_user(email="ada@example.com"):
    user = User(email=email)
    user.set_password("a long password")
    db.session.add(user)
    db.session.commit()
    return user


def make_analysis(user, **values):
    analysis = Analysis(
        owner=user, original_filename="bus.jpg", original_path="1/x/original.jpg",
        width=10, height=10, sha256="0" * 64, model_name="m", conf=0.25, iou=0.7, imgsz=640,
        **values,
    )
    analysis.detections = [Detection(class_id=0, label="person", confidence=0.9,
                                     x1=1, y1=1, x2=5, y2=5)]
    db.session.add(analysis)
    db.session.commit()
    return analysis


def counts():
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (User, Analysis, Detection, RefreshToken)}


def test_timestamps_come_back_as_aware_utc(app):
    with app.app_context():
        user = make_user()
        db.session.expire_all()
        created = db.session.get(User, user.id).created_at
        assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)


def test_password_is_stored_hashed(app):
    with app.app_context():
        user = make_user()
        assert "a long password" not in user.password_hash
        assert user.password_hash.startswith("scrypt:")
        assert user.check_password("a long password") and not user.check_password("wrong")


def test_email_is_unique(app):
    with app.app_context():
        make_user()
        with pytest.raises(sa.exc.IntegrityError):
            make_user()


def test_analysis_public_id_is_random_not_a_counter(app):
    with app.app_context():
        user = make_user()
        first, second = make_analysis(user), make_analysis(user)
        assert len(first.public_id) == 32 and first.public_id != second.public_id
        assert str(first.id) not in (first.public_id[:2],)


def test_deleting_a_user_leaves_no_orphan_rows(app):
    with app.app_context():
        user = make_user()
        make_analysis(user)
        db.session.add(RefreshToken(user=user, token_hash="a" * 64, family="f",
                                    expires_at=datetime.now(timezone.utc)))
        db.session.commit()
        db.session.delete(user)
        db.session.commit()
        assert counts() == {"User": 0, "Analysis": 0, "Detection": 0, "RefreshToken": 0}


def test_database_cascades_deletes_without_the_orm(app):
    with app.app_context():
        user = make_user()
        make_analysis(user)
        db.session.execute(sa.delete(User))
        db.session.commit()
        assert counts() == {"User": 0, "Analysis": 0, "Detection": 0, "RefreshToken": 0}


def test_deleting_an_analysis_removes_its_detections(app):
    with app.app_context():
        user = make_user()
        analysis = make_analysis(user)
        db.session.delete(analysis)
        db.session.commit()
        assert counts()["Detection"] == 0 and counts()["User"] == 1
