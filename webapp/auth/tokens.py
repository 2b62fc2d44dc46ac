"""API tokens: short-lived JWT access tokens and rotating, revocable refresh tokens.

A refresh token is 256 random bits, handed to the client once and stored only as its SHA-256.
Every refresh rotates it: the presented token is revoked and a new one of the same *family* is
issued. Presenting a token that was already rotated (or revoked) means it leaked: the whole
family is revoked, so neither the thief nor the owner can refresh again without logging in.

Like every service, these functions commit their own work (the revocation included, before
RefreshReused is raised), so the views that call them never commit.
"""
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_jwt_extended import create_access_token

from webapp.extensions import db
from webapp.models import RefreshToken, User, utcnow


class RefreshRefused(Exception):
    """The refresh token is unknown, expired or revoked; the message says which, for logs."""


class RefreshReused(RefreshRefused):
    """An already-rotated token came back: its family has been revoked."""


@dataclass
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def access_token_for(user: User) -> tuple[str, int]:
    ttl = int(current_app.config["ACCESS_TOKEN_TTL"])
    # "sv": the user's session version; logging out everywhere (or a new password) ends the token.
    token = create_access_token(identity=str(user.id), expires_delta=timedelta(seconds=ttl),
                                additional_claims={"sv": user.session_version})
    return token, ttl


def _new_refresh_token(user: User, family: str) -> str:
    raw = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=int(current_app.config["REFRESH_TOKEN_TTL"]))
    db.session.add(RefreshToken(user=user, token_hash=hash_token(raw), family=family,
                                expires_at=utcnow() + ttl))
    return raw


def issue(user: User) -> TokenPair:
    """A fresh pair for a login: a new refresh-token family. Commits."""
    access, ttl = access_token_for(user)
    pair = TokenPair(access, ttl, _new_refresh_token(user, str(uuid.uuid4())))
    db.session.commit()
    return pair


def rotate(raw: str) -> tuple[User, TokenPair]:
    """Exchange a refresh token for a new pair; commits. Raises RefreshRefused, or RefreshReused
    after committing the revocation of the token's whole family. The user's row is locked first,
    as a password change or a log-out everywhere locks it, so a refresh racing one of them
    either ends before it (and its new token is revoked with the rest) or sees its token revoked."""
    owner = db.session.scalar(sa.select(RefreshToken.user_id).where(RefreshToken.token_hash == hash_token(raw)))
    if owner is not None:
        db.session.execute(sa.select(User.id).where(User.id == owner).with_for_update())
    row = db.session.scalar(
        sa.select(RefreshToken).where(RefreshToken.token_hash == hash_token(raw)).with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        db.session.rollback()
        raise RefreshRefused("unknown refresh token")
    if row.revoked_at is not None:
        revoke_family(row.family)
        raise RefreshReused(f"refresh token of family {row.family} re-used")
    if row.expires_at <= utcnow():
        db.session.rollback()
        raise RefreshRefused("expired refresh token")
    if row.user.is_disabled:
        db.session.rollback()
        raise RefreshRefused("the account is disabled")
    row.revoked_at = utcnow()
    access, ttl = access_token_for(row.user)
    pair = TokenPair(access, ttl, _new_refresh_token(row.user, row.family))
    db.session.commit()
    return row.user, pair


def revoke(raw: str) -> None:
    """Revoke one refresh token (logout); unknown tokens are ignored. Commits."""
    _revoke_where(RefreshToken.token_hash == hash_token(raw))


def revoke_family(family: str) -> None:
    """Revoke every token of a login (a re-used token's family). Commits."""
    _revoke_where(RefreshToken.family == family)


def revoke_all(user: User) -> None:
    """Revoke every refresh token of the user (log out everywhere, a new password). Commits."""
    _revoke_where(RefreshToken.user_id == user.id)


def _revoke_where(condition) -> None:
    db.session.execute(
        sa.update(RefreshToken).where(condition, RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    db.session.commit()
