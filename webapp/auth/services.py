"""Accounts, shared by the pages and the API: the email and password rules, sign-up and
credential checks. Services commit their own work (see `analyses/services.py`)."""
import re
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.auth import tokens
from webapp.extensions import db
from webapp.models import User

# The one password and email policy; the sign-up form and the API schema both use it.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 254
PASSWORD_TOO_SHORT = f"Use at least {PASSWORD_MIN_LENGTH} characters."
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Checked against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class EmailTaken(ValueError):
    """An account with this email already exists."""


def normalize_email(email):
    """Trimmed and lower-cased, as emails are stored (so the unique index ignores case).
    Anything that is not a string (a missing form field) is returned as it is."""
    return email.strip().lower() if isinstance(email, str) else email


def find_user(email: str) -> Optional[User]:
    """The user with this email; None for none, and for text no email can hold (control
    characters such as NUL, which PostgreSQL refuses), without asking the database."""
    if CONTROL_CHARACTERS.search(email):
        return None
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


def end_sessions(user: User) -> None:
    """A log-out: every browser session and remember-me cookie of the user issued so far stops
    working, and so do access tokens (they carry the version; a script refreshes its own).
    Refresh tokens, an API client's long-lived login, are left to `end_everything`. Commits."""
    user.end_sessions()
    db.session.commit()


def end_everything(user: User, new_password: Optional[str] = None) -> None:
    """Log out of all devices (optionally setting a new password): browser sessions, access tokens
    and every refresh token, in one transaction that locks the user's row first (see
    tokens.rotate). The caller logs the current browser in again after a new password. Commits."""
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
    if new_password is not None:
        user.set_password(new_password)
    user.end_sessions()
    tokens.revoke_all(user)  # commits
