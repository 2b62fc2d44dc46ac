"""Accounts, shared by the pages and the API: the email and password rules, sign-up, credential
checks with their lock-out, and ending sessions. Services commit their own work (see
`analyses/uploads.py`)."""
import functools
import hashlib
import logging
import math
import re
import secrets
import time
from typing import Optional

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from limits import parse
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.auth import links, tokens
from webapp.errors import Refused
from webapp.extensions import db, limiter, shared_limits
from webapp.models import Invite, User, utcnow

logger = logging.getLogger(__name__)

# The one password and email policy; the sign-up form and the API schema both use it.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 254
PASSWORD_TOO_SHORT = f"Use at least {PASSWORD_MIN_LENGTH} characters."
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

@functools.cache
def _dummy_hash(method: str) -> str:
    """Checked against when the email is unknown, so both failures take the same time."""
    return generate_password_hash("not-a-real-password", method=method)


def _hash_method() -> str:
    return current_app.config["PASSWORD_HASH_METHOD"]


class EmailTaken(Refused):
    """An account with this email already exists."""

    kind = Refused.CONFLICT


class AccountDisabled(Refused):
    """The operator disabled this account (`flask users disable`)."""

    kind = Refused.CONFLICT


DISABLED = "This account is disabled: ask the operator of this instance."


class SignupRefused(Refused):
    """Sign-up is closed, or needs an invitation (SIGNUP), or the invitation is for another email."""

    kind = Refused.CONFLICT


class MailUnavailable(Refused):
    """Mail is not set up (MAIL_URL): what needs it cannot be done here."""

    kind = Refused.UNAVAILABLE


class TooManyMails(Refused):
    """RESET_RATE_LIMIT reached for what mails from this account."""

    kind = Refused.TOO_MANY


class TooManyFailures(Exception):
    """The account had LOGIN_FAILURE_LIMIT failed sign-ins: refused, even with the right password,
    until `seconds` from now."""

    def __init__(self, seconds: int):
        self.seconds = max(1, seconds)
        minutes = math.ceil(self.seconds / 60)
        super().__init__(f"Too many failed sign-ins for this account: try again in {minutes} "
                         f"minute{'' if minutes == 1 else 's'}.")


def normalize_email(email):
    """Trimmed and lower-cased, as emails are stored (so the unique index ignores case).
    Anything that is not a string (a missing form field) is returned as it is."""
    return email.strip().lower() if isinstance(email, str) else email


def is_email(text: str) -> bool:
    """Whether this is an email address, as the sign-up form checks it (no DNS lookup)."""
    try:
        validate_email(normalize_email(text), check_deliverability=False)
    except EmailNotValidError:
        return False
    return len(text) <= EMAIL_MAX_LENGTH


def email_key(email) -> str:
    """An address as the rate limits count it: normalised, then hashed (no address in their storage)."""
    normalized = normalize_email(email) if isinstance(email, str) else ""
    return hashlib.sha256(normalized.encode("utf-8", "replace")).hexdigest()[:32]


LOGIN_ID = re.compile(r"[0-9]{1,18}:[0-9]{1,18}")  # User.get_id(): ASCII digits only


def get_user(user_id: int) -> Optional[User]:
    return db.session.get(User, user_id)


def load_login(login_id: str) -> Optional[User]:
    """The user of a session or remember-me cookie ("<id>:<session version>"), while its session
    version is current; None for anything else (a cookie from before session versions, or not
    one of ours)."""
    if not LOGIN_ID.fullmatch(login_id):
        return None
    user_id, _, version = login_id.partition(":")
    user = get_user(int(user_id))
    if user is None or user.is_disabled:
        return None
    return user if user.session_version == int(version) else None


def find_user(email: str) -> Optional[User]:
    """The user with this email; None for none, and for text no email can hold (control
    characters such as NUL, which PostgreSQL refuses), without asking the database."""
    if CONTROL_CHARACTERS.search(email):
        return None
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def signup_mode() -> str:
    return current_app.config["SIGNUP"]


def sign_up(email: str, password: str, invite_token: Optional[str] = None) -> User:
    """Sign-up as SIGNUP allows it: anyone ("open"), with an invitation for this very email
    ("invite": it is used up by this sign-up, in the same transaction), or nobody ("closed").
    Raises SignupRefused, links.LinkRefused (a bad, expired or used invitation), EmailTaken."""
    mode = signup_mode()
    if mode == "closed":
        raise SignupRefused("Sign-up is closed on this instance: ask its operator for an account.")
    invite = None
    if mode == "invite" or invite_token:
        if not invite_token:
            raise SignupRefused("Sign-up on this instance is by invitation: use the link in your invitation.")
        invite = links.invite_for(invite_token)
        if invite.email != normalize_email(email):
            raise SignupRefused("This invitation is for another email address.")
    return create_user(email, password, invite=invite)


def create_user(email: str, password: Optional[str], invite: Optional[Invite] = None) -> User:
    """Add and commit a new user (`password` None: an unusable random one, for an account the
    operator makes and its owner sets through a link), marking `invite` used. Raises EmailTaken
    (also when a concurrent sign-up won), links.LinkRefused when the invitation was used meanwhile."""
    email = normalize_email(email)
    if find_user(email) is not None:
        raise EmailTaken(email)
    user = User(email=email)
    user.set_password(password if password is not None else secrets.token_urlsafe(32), _hash_method())
    db.session.add(user)
    if invite is not None:
        try:
            db.session.flush()
        except IntegrityError as exc:
            db.session.rollback()
            raise EmailTaken(email) from exc
        used = db.session.execute(sa.update(Invite).where(Invite.id == invite.id, Invite.used_at.is_(None))
                                  .values(used_at=utcnow(), user_id=user.id))
        if used.rowcount != 1:  # another sign-up used it first
            db.session.rollback()
            raise links.LinkRefused("This invitation has been used already: log in instead.")
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise EmailTaken(email) from exc
    return user


def authenticate(email: str, password: str, device: Optional[str] = None) -> Optional[User]:
    """The user for these credentials, or None; unknown email and wrong password look the same.
    Raises TooManyFailures while the email (or, from a browser that signed in to this account
    before, that browser: `device`, its device cookie) is locked out (see `_FailedSignIns`), and
    AccountDisabled for the right password of a disabled account."""
    user = find_user(email)
    failures = _FailedSignIns(email, device_nonce(device, user))
    if not failures.reserve():
        raise TooManyFailures(failures.seconds_left())
    if user is None:
        check_password_hash(_dummy_hash(_hash_method()), password)
    elif user.check_password(password):
        failures.forget()
        if user.is_disabled:
            raise AccountDisabled(DISABLED)
        return user
    return None


def check_current_password(user: User, password: str, device: Optional[str] = None) -> bool:
    """Whether this is the user's password (a password change asks for it); failures count
    towards the same lock-out as sign-ins. Raises TooManyFailures while it is locked out."""
    failures = _FailedSignIns(user.email, device_nonce(device, user))
    if not failures.reserve():
        raise TooManyFailures(failures.seconds_left())
    if user.check_password(password):
        failures.forget()
        return True
    return False


def forget_failures(user: User, device: Optional[str] = None) -> None:
    """A new password set by a reset: the account's failed sign-ins no longer lock it (nor this
    browser's, `device` its device cookie)."""
    _FailedSignIns(user.email).forget()
    nonce = device_nonce(device, user)
    if nonce is not None:
        _FailedSignIns(user.email, nonce).forget()


def change_email(user: User, new_email: str) -> User:
    """Use a new (confirmed) address. Raises EmailTaken. Commits."""
    new_email = normalize_email(new_email)
    if find_user(new_email) is not None:
        raise EmailTaken("Another account uses that address now.")
    user.email = new_email
    user.links_after = utcnow()  # links mailed to the old address (a reset, another change) die with it
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise EmailTaken("Another account uses that address now.") from exc
    return user


# A browser that signed in to an account gets a device cookie (OWASP's defence against lock-out
# abuse): its own failed attempts are counted on it alone, so failures from elsewhere that lock
# the account do not lock out its owner on a browser they have used before.
DEVICE_COOKIE = "spotter_device"
DEVICE_COOKIE_DAYS = 365


def _devices() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="device-cookie")


def new_device_token(user: User) -> str:
    return _devices().dumps({"u": user.id, "n": secrets.token_hex(12)})


def device_nonce(token: Optional[str], user: Optional[User]) -> Optional[str]:
    """The device cookie's id when it is genuine and was issued to this user; else None."""
    if not token or user is None or len(token) > 200:
        return None
    try:
        data = _devices().loads(token)
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("u") != user.id or not isinstance(data.get("n"), str):
        return None
    return data["n"]


class _FailedSignIns:
    """Failed sign-ins of one email (as stored: trimmed, lower-case; known or not, so a lock-out
    tells nothing about which accounts exist), from any address, in the rate limiter's storage:
    Redis when RATELIMIT_STORAGE_URI names it, shared by every worker; or, for a browser with a
    device cookie of the account, of that browser alone. LOGIN_FAILURE_LIMIT (e.g. "10 per 15
    minutes") attempts lock sign-in until that window ends. Every attempt is counted before the
    password is checked (so attempts at once cannot slip past the limit) and a success forgets
    them. If the storage cannot be reached, the counts are kept per process until it is back."""

    def __init__(self, email, device: Optional[str] = None):
        if device is not None:
            self.namespace, self.key = "login-failures-device", device
        else:
            self.namespace, self.key = "login-failures", email_key(email)
        self.limit = parse(current_app.config["LOGIN_FAILURE_LIMIT"])

    def _call(self, method: str):
        if not limiter.enabled:
            return None
        return getattr(shared_limits, method)(self.limit, self.namespace, self.key)

    def reserve(self) -> bool:
        """Count this attempt; False when it is past the limit (locked)."""
        return self._call("hit") is not False

    def seconds_left(self) -> int:
        stats = self._call("get_window_stats")
        return int(stats.reset_time - time.time()) if stats else self.limit.get_expiry()

    def forget(self) -> None:
        self._call("clear")


def end_sessions(user: User) -> None:
    """A log-out: every browser session and remember-me cookie of the user issued so far stops
    working, and so do access tokens (they carry the version; a script refreshes its own).
    Refresh tokens, an API client's long-lived login, are left to `end_everything`. Commits."""
    user.end_sessions()
    db.session.commit()


def replace_password(user: User, expected_hash: str, new_password: str) -> bool:
    """Set a new password only if the stored hash is still `expected_hash` (one conditional
    UPDATE: of two uses of one reset link at once, one wins), ending every session, remember
    cookie and access token (the session version) and, once it has, every refresh token.
    False, with nothing changed, when another change came first. Commits."""
    changed = db.session.execute(
        sa.update(User).where(User.id == user.id, User.password_hash == expected_hash)
        .values(password_hash=generate_password_hash(new_password, method=_hash_method()),
                session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        db.session.rollback()
        return False
    db.session.expire(user)
    tokens.revoke_all(user)  # commits
    return True


def end_everything(user: User, new_password: Optional[str] = None) -> None:
    """Log out of all devices (optionally setting a new password): browser sessions, access tokens
    and every refresh token, in one transaction that locks the user's row first (see
    tokens.rotate). The caller logs the current browser in again after a new password. Commits."""
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
    if new_password is not None:
        user.set_password(new_password, _hash_method())
    user.end_sessions()
    tokens.revoke_all(user)  # commits
