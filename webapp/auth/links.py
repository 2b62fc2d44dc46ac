"""The signed links of accounts: a password reset (and the operator's set-password link), an
invitation to sign up, an email change. Each is an itsdangerous timed token with a salt of its
own (one kind of link is never taken for another), and each works once:

- a reset link carries a digest of the password's hash (`User.password_stamp`): once any new
  password is set (this link's, another's, a change on the account page) it stops working;
- an invitation names a row (`Invite`) that signing up marks used;
- an email-change link carries the address it changes from: once changed, it no longer matches.

Reset and email-change links also carry when they were made (`at`, to the microsecond): those made
before the account's `links_after` (set when it is disabled, and when its address changes) no
longer work, so re-enabling an account or changing an address back brings none back.
"""
import time
from typing import Optional

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from webapp.errors import Gone
from webapp.extensions import db
from webapp.models import Invite, User

RESET_SECONDS = 3600  # a reset link asked for by email: one hour
EMAIL_CHANGE_SECONDS = 24 * 3600
MAX_TOKEN_LENGTH = 400

NOT_VALID = "This link is not valid: check that it was copied whole, or ask for a new one."
EXPIRED = "This link has expired: ask for a new one."
USED = ("This link has been used already (or the password or the address was changed since): "
        "ask for a new one.")


class LinkRefused(Gone):
    """The link is not one of ours, has expired or was used: the message says which."""


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=salt)


def _load(salt: str, token: str, max_age: Optional[int] = None):
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise LinkRefused(NOT_VALID)
    try:
        return _serializer(salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkRefused(EXPIRED) from None
    except BadData:
        raise LinkRefused(NOT_VALID) from None


# ---- password reset ----

def _made_before_links(user: User, data: dict) -> bool:
    """Whether the link was made before the account's `links_after` (or says nothing of when)."""
    at = data.get("at")
    if not isinstance(at, (int, float)):
        return True
    return user.links_after is not None and at <= user.links_after.timestamp()


def reset_token(user: User, seconds: int = RESET_SECONDS) -> str:
    """A link's token that sets a new password for `user`, for `seconds` (signed with it)."""
    return _serializer("password-reset").dumps({"u": user.id, "p": user.password_stamp, "t": int(seconds),
                                                "at": time.time()})


def user_for_reset(token: str) -> User:
    """The user whose password this token may set; LinkRefused when it is expired, used, or the
    account is gone or disabled."""
    data = _load("password-reset", token)
    if not isinstance(data, dict) or not isinstance(data.get("t"), int) or not isinstance(data.get("u"), int):
        raise LinkRefused(NOT_VALID)
    _load("password-reset", token, max_age=data["t"])
    user = db.session.get(User, data["u"])
    if user is not None and user.is_disabled:
        raise LinkRefused("This account is disabled: ask the operator of this instance.")
    if user is None or user.password_stamp != data.get("p") or _made_before_links(user, data):
        raise LinkRefused(USED)
    return user


# ---- invitations ----

def invite_token(invite: Invite) -> str:
    return _serializer("invite").dumps({"n": invite.nonce})


def invite_for(token: str) -> Invite:
    """The unused invitation this token is; LinkRefused otherwise."""
    data = _load("invite", token, max_age=current_app.config["INVITE_DAYS"] * 86400)
    nonce = data.get("n") if isinstance(data, dict) else None
    invite = db.session.scalar(sa.select(Invite).where(Invite.nonce == str(nonce))) if nonce else None
    if invite is None:
        raise LinkRefused(NOT_VALID)
    if invite.used_at is not None:
        raise LinkRefused("This invitation has been used already: log in instead.")
    return invite


# ---- email change ----

def email_token(user: User, new_email: str) -> str:
    return _serializer("email-change").dumps({"u": user.id, "o": user.email, "e": new_email, "at": time.time()})


def email_change_for(token: str) -> tuple[User, str]:
    """(the user, the new address) of a live email-change link; LinkRefused otherwise."""
    data = _load("email-change", token, max_age=EMAIL_CHANGE_SECONDS)
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("e"), str):
        raise LinkRefused(NOT_VALID)
    user = db.session.get(User, data["u"])
    if user is None or user.email != data.get("o") or user.is_disabled or _made_before_links(user, data):
        raise LinkRefused("This link has been used already (or the address was changed since).")
    return user, data["e"]
