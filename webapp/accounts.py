"""Account services shared by the pages and the API: sign-up and credential checks."""
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db
from webapp.models import User, normalize_email

# Checked against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class EmailTaken(ValueError):
    """An account with this email already exists."""


def find_user(email: str) -> Optional[User]:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def create_user(email: str, password: str) -> User:
    """Add and commit a new user. Raises EmailTaken (also when a concurrent sign-up won)."""
    email = normalize_email(email)
    if find_user(email) is not None:
        raise EmailTaken(email)
    user = User(email=email)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise EmailTaken(email) from exc
    return user


def authenticate(email: str, password: str) -> Optional[User]:
    """The user for these credentials, or None; unknown email and wrong password look the same."""
    user = find_user(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if user.check_password(password) else None
