"""Who is calling the API: an API key (`X-API-Key`, or `Authorization: Bearer spt_…`), a bearer
access token, or else the browser session (with CSRF for changes)."""
from functools import wraps
from typing import Optional

import jwt as pyjwt
from flask import current_app, g, request
from flask_jwt_extended import get_jwt, get_jwt_identity, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from webapp.auth import accounts, keys
from webapp.extensions import csrf
from webapp.models import User
from webapp.web.answers import ProblemError

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
REFRESH_HEADER = "X-Requested-With"
INVALID_TOKEN = "Invalid access token: log in again (POST /api/v1/auth/login)."
EXPIRED_TOKEN = "The access token has expired: get a new one (POST /api/v1/auth/refresh, or log in again)."
DETECT_ONLY = ("This API key may only call detection (POST /api/v1/analyses, POST /v1/vision/detection): "
               "its scope is detect-only.")
AUTHENTICATION_REQUIRED = "Authentication required: send Authorization: Bearer <access token> or an API key."


def unauthorized(detail: str, invalid_token: bool = False) -> ProblemError:
    challenge = 'Bearer realm="api"' + (', error="invalid_token"' if invalid_token else "")
    return ProblemError(401, detail, headers={"WWW-Authenticate": challenge})


def normalize_bearer() -> None:
    """`Authorization: bearer <token>` in any case (RFC 6750), as Flask-JWT-Extended expects it."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        request.environ["HTTP_AUTHORIZATION"] = f"Bearer {credentials.strip()}"


def has_valid_bearer() -> bool:
    """Whether the request carries a valid access token (signature and expiry; cheap, no query)."""
    normalize_bearer()
    try:
        verify_jwt_in_request(locations=["headers"])
        return get_jwt().get("exp") is not None
    except (JWTExtendedException, pyjwt.PyJWTError, ValueError, TypeError):
        return False


def _user_from_bearer() -> User:
    """The user of a valid access token. The scheme is case-insensitive (RFC 6750); the token
    must carry an expiry; the answer never echoes what the decoder said."""
    normalize_bearer()
    try:
        verify_jwt_in_request(locations=["headers"])
        claims = get_jwt()
        if claims.get("exp") is None:
            raise ValueError("no expiry")
        user_id, version = int(get_jwt_identity()), claims.get("sv", 0)
    except pyjwt.ExpiredSignatureError:
        raise unauthorized(EXPIRED_TOKEN, invalid_token=True) from None
    except (JWTExtendedException, pyjwt.PyJWTError, ValueError, TypeError):
        raise unauthorized(INVALID_TOKEN, invalid_token=True) from None
    user = accounts.get_user(user_id)
    if user is None:
        raise unauthorized("The token's user no longer exists.", invalid_token=True)
    if user.is_disabled:
        raise unauthorized(accounts.DISABLED, invalid_token=True)
    if version != user.session_version:
        raise unauthorized("This access token was ended by a log-out, a log-out of all devices or a new "
                           "password: refresh it (POST /api/v1/auth/refresh) or log in again.", invalid_token=True)
    return user


def _user_from_session() -> Optional[User]:
    if not current_user.is_authenticated:
        return None
    if request.method not in SAFE_METHODS:
        try:
            csrf.protect()
        except CSRFError as exc:
            raise ProblemError(403, f"CSRF check failed: {exc.description} Send X-CSRFToken, "
                                    "or use a bearer token.") from None
    return current_user._get_current_object()


def api_key_secret() -> Optional[str]:
    """The API key the request carries, if any: `X-API-Key`, or a bearer credential shaped like one."""
    header = request.headers.get("X-API-Key", "").strip()
    if header:
        return header
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and keys.looks_like_key(credentials) else None


def user_from_key(raw: str, detection: bool) -> User:
    """The owner of a valid key, within its scope and its rate limit; 401/403/429 otherwise."""
    key = keys.find(raw)
    if key is None:
        raise unauthorized("Invalid API key: it does not exist or it was revoked.", invalid_token=True)
    if key.user.is_disabled:
        raise unauthorized(f"{accounts.DISABLED} Its API keys do not work meanwhile.", invalid_token=True)
    if key.detect_only and not detection:
        raise ProblemError(403, DETECT_ONLY)
    wait = keys.within_rate(key)
    if wait is not None:
        raise ProblemError(429, f"Too many requests with this API key: try again in {wait} seconds.",
                           headers={"Retry-After": str(wait)})
    keys.touch(key)
    g.api_key = key
    return key.user


def api_user() -> User:
    return g.api_user


def authenticated(view=None, *, detection: bool = False, api_keys: bool = True):
    """Authenticate an API request (an API key, a bearer token, then the session) or answer 401.
    `detection`: a detect-only key may call it too; `api_keys=False`: no key may (managing keys
    takes a login)."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            raw = api_key_secret()
            if raw is not None:
                if not api_keys:
                    raise ProblemError(403, "API keys cannot manage API keys: log in (POST /api/v1/auth/login) "
                                            "and use the access token, or use the API keys page.")
                g.api_user = user_from_key(raw, detection)
            elif request.headers.get("Authorization"):
                g.api_user = _user_from_bearer()
            else:
                g.api_user = _user_from_session()
                if g.api_user is None:
                    raise unauthorized(AUTHENTICATION_REQUIRED)
            return view(*args, **kwargs)
        return wrapper

    return decorate(view) if view is not None else decorate


def upload_signed_in() -> bool:
    """Before an upload's body is read: whether it carries a credential that may upload (a key
    that exists, a valid bearer token, or a signed-in session)."""
    raw = api_key_secret()
    if raw is not None:
        return keys.find(raw) is not None
    if request.headers.get("Authorization"):
        return has_valid_bearer()
    return current_user.is_authenticated


def refuse_upload():
    raise unauthorized("Authentication required: send Authorization: Bearer <access token>.")


def require_same_site_script() -> None:
    """CSRF defence for the cookie-authenticated token endpoints (refresh, logout): a custom
    header, which a cross-site form or image cannot send and a cross-site script cannot send
    without a CORS preflight we would refuse; and, when the browser says where the request comes
    from, that origin must be ours (or one of CORS_ORIGINS)."""
    if request.headers.get(REFRESH_HEADER) != "XMLHttpRequest":
        raise ProblemError(403, f"Send the header {REFRESH_HEADER}: XMLHttpRequest with this request.")
    origin = request.headers.get("Origin")
    if origin and origin != request.host_url.rstrip("/"):
        if origin not in current_app.config["CORS_ORIGINS"]:
            raise ProblemError(403, f"Cross-site request from {origin} refused.")
