"""What the operator does to accounts (`flask users ...`, webapp/cli.py): list them, make one,
hand out a set-password link or an invitation, disable, enable and delete. A disabled account
cannot sign in; its sessions, tokens, API keys and share links stop working at once, and its
queued work is not run (the pipeline fails it, to be retried once enabled)."""
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from webapp.auth import accounts, closing, links
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.models import ApiKey, Invite, User, utcnow


@dataclass(frozen=True)
class Account:
    email: str
    created_at: datetime
    photos: int
    stored_bytes: int
    api_keys: int
    disabled: bool


def list_accounts() -> list[Account]:
    keys = (sa.select(ApiKey.user_id, sa.func.count().label("n")).group_by(ApiKey.user_id).subquery())
    rows = db.session.execute(
        sa.select(User, sa.func.coalesce(keys.c.n, 0)).outerjoin(keys, keys.c.user_id == User.id).order_by(User.id))
    return [Account(u.email, u.created_at, u.photos, u.stored_bytes, n, u.is_disabled) for u, n in rows]


def account(email: str) -> User:
    user = accounts.find_user(email)
    if user is None:
        raise NotFound(f"No account uses {accounts.normalize_email(email)}.")
    return user


def link_lifetime() -> int:
    return current_app.config["INVITE_DAYS"] * 86400


def set_password_token(user: User) -> str:
    """The token of a one-time link that sets the account's password (any older one stops working
    once used), valid INVITE_DAYS."""
    return links.reset_token(user, link_lifetime())


def create(email: str) -> tuple[User, str]:
    """An account with no usable password yet, and the token of the link its owner sets one with."""
    user = accounts.create_user(email, None)
    return user, set_password_token(user)


def invite(email: str) -> str:
    """The token of a single-use link that signs up this email (SIGNUP "invite" or "open")."""
    email = accounts.normalize_email(email)
    if accounts.find_user(email) is not None:
        raise accounts.EmailTaken(f"{email} has an account already.")
    row = Invite(email=email)
    db.session.add(row)
    db.session.commit()
    return links.invite_token(row)


def disable(user: User) -> None:
    """Disable the account: every session and token ends now (keys, share links and queued work
    check the flag). Commits."""
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
    user.disabled_at = user.disabled_at or utcnow()
    user.links_after = utcnow()  # its reset and email links die, and stay dead once it is enabled
    accounts.end_everything(user)  # commits


def enable(user: User) -> None:
    user.disabled_at = None
    db.session.commit()


def delete(user: User) -> None:
    closing.delete_account(user)
