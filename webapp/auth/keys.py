"""API keys: created signed in, shown once, stored as the SHA-256 of a high-entropy secret
(`spt_` + 32 random bytes, URL-safe), listed by name and prefix, revoked by deleting them. A key
authenticates API requests like an access token (webapp/api/security.py), within its scope, at
most API_KEY_RATE_LIMIT requests per key, and its last use is written at most once a minute."""
import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Optional

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from limits import parse

from webapp.errors import Refused
from webapp.extensions import db, shared_limits
from webapp.models import ApiKey, ApiKeyScope, User, utcnow

PREFIX = "spt_"
SEALED_SECONDS = 300  # a sealed secret opens this long (the page after the creation's redirect)
NAME_MAX_LENGTH = 100
MAX_KEYS_PER_USER = 50
LAST_USED_EVERY = timedelta(minutes=1)


class TooManyKeys(Refused):
    """The user already has MAX_KEYS_PER_USER keys."""

    kind = Refused.CONFLICT


def looks_like_key(text: Optional[str]) -> bool:
    return bool(text) and text.startswith(PREFIX)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def create(user: User, name: str, scope: str = ApiKeyScope.FULL, save_to_gallery: bool = False) -> tuple[ApiKey, str]:
    """A new key and its secret, which is never shown again. Commits."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.user_id == user.id)) \
            >= MAX_KEYS_PER_USER:
        raise TooManyKeys(f"You already have {MAX_KEYS_PER_USER} API keys: revoke one you no longer use first.")
    raw = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, name=name.strip()[:NAME_MAX_LENGTH], prefix=raw[:len(PREFIX) + 8],
                 secret_hash=_digest(raw), scope=ApiKeyScope(scope).value, save_to_gallery=save_to_gallery)
    db.session.add(key)
    db.session.commit()
    return key, raw


def find(raw: str) -> Optional[ApiKey]:
    """The key with this secret, or None (unknown, revoked, or not shaped like a key)."""
    if not looks_like_key(raw) or len(raw) > 200:
        return None
    return db.session.scalar(sa.select(ApiKey).where(ApiKey.secret_hash == _digest(raw)))


def within_rate(key: ApiKey) -> Optional[int]:
    """None while the key is within API_KEY_RATE_LIMIT; else the seconds until it may go on."""
    return shared_limits.wait_after_hit(parse(current_app.config["API_KEY_RATE_LIMIT"]), "api-key", str(key.id))


def touch(key: ApiKey) -> None:
    """Record a use: at most one write a minute per key, whoever calls. Commits."""
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_EVERY:
        return
    db.session.execute(sa.update(ApiKey).where(
        ApiKey.id == key.id,
        sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_EVERY),
    ).values(last_used_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def list_keys(user: User) -> list[ApiKey]:
    return list(db.session.scalars(sa.select(ApiKey).where(ApiKey.user_id == user.id)
                                   .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))


def revoke(user: User, key_id: int) -> bool:
    """Delete the user's key; False when there is none (anyone else's included). Commits."""
    deleted = db.session.execute(sa.delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id)).rowcount
    db.session.commit()
    return bool(deleted)


def revoke_all(user: User) -> int:
    """Delete every key of the user (a password reset asked to); how many. Commits."""
    deleted = db.session.execute(sa.delete(ApiKey).where(ApiKey.user_id == user.id)).rowcount
    db.session.commit()
    return deleted


# ---- the secret on its way to the page that shows it once ----

def seal(secret: str) -> str:
    """The new key's secret encrypted (Fernet, a key derived from SECRET_KEY) for the one page
    that shows it after the creation's redirect: the session carries it, unreadable, and it opens
    for SEALED_SECONDS only. Nothing on the server keeps it."""
    return _fernet().encrypt(secret.encode()).decode()


def unseal(sealed: object) -> Optional[str]:
    """The secret `seal` made, or None: tampered with, made with another SECRET_KEY, or too old."""
    if not isinstance(sealed, str):
        return None
    try:
        return _fernet().decrypt(sealed.encode(), ttl=SEALED_SECONDS).decode()
    except (InvalidToken, ValueError):
        return None


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"api-key-reveal\0" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))
