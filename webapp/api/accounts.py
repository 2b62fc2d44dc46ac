"""/api/v1/auth/*: sign-up, log-in (access token + refresh cookie), refresh, log-out; and /me."""
import logging

from flask import current_app, request

from webapp.analyses.quotas import usage
from webapp.api import bp
from webapp.api.openapi import operation
from webapp.api.schemas import LoginIn, SignupIn, TokenOut, UsageOut, UserOut
from webapp.api.security import REFRESH_HEADER, api_user, authenticated, require_same_site_script, unauthorized
from webapp.auth import accounts, auth_rate_limit, tokens
from webapp.web.answers import ProblemError
from webapp.web.validation import json_body

logger = logging.getLogger(__name__)

COOKIE = "refresh_token"
COOKIE_PATH = "/api/v1/auth"
CSRF_NOTE = (f"Cookie-authenticated: send the `{COOKIE}` cookie from login and the header "
             f"`{REFRESH_HEADER}: XMLHttpRequest`.")


def user_out(user) -> dict:
    return UserOut(id=user.id, email=user.email, created_at=user.created_at,
                   usage=UsageOut(**vars(usage(user)))).model_dump(mode="json")


def _token_response(pair: tokens.TokenPair, status: int = 200):
    body = TokenOut(access_token=pair.access_token, expires_in=pair.expires_in).model_dump(mode="json")
    response = current_app.response_class(status=status)
    response.set_data(current_app.json.dumps(body))
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "private, no-store"
    response.set_cookie(COOKIE, pair.refresh_token, max_age=int(current_app.config["REFRESH_TOKEN_TTL"]),
                        **_cookie_attributes())
    return response


def _cookie_attributes() -> dict:
    """HttpOnly, SameSite=Strict, scoped to the auth endpoints; Secure exactly when the session
    cookie is (SESSION_COOKIE_SECURE), so a plain-HTTP server on a LAN can still refresh."""
    return {"path": COOKIE_PATH, "httponly": True, "samesite": "Strict",
            "secure": bool(current_app.config["SESSION_COOKIE_SECURE"])}


def _secure_cookie_hint() -> str:
    if current_app.config["SESSION_COOKIE_SECURE"] and not request.is_secure:
        return (" (The cookie is Secure, so clients send it back over HTTPS only; this request came "
                "over plain HTTP. On a private network the server can set SESSION_COOKIE_SECURE=0.)")
    return ""


def _clear_cookie(response):
    response.delete_cookie(COOKIE, **_cookie_attributes())
    return response


@bp.route("/auth/signup", methods=["POST"])
@auth_rate_limit
@operation(summary="Create an account", tag="auth", body=SignupIn, public=True,
           responses={201: UserOut, 403: None, 409: None, 410: None, 422: None, 429: None})
def signup():
    """As the instance's SIGNUP allows: open, by invitation (`invite`), or closed (403)."""
    data = json_body(SignupIn)
    try:
        user = accounts.sign_up(data.email, data.password, data.invite)
    except accounts.EmailTaken:
        raise ProblemError(409, "An account with this email already exists.") from None
    except accounts.SignupRefused as exc:
        raise ProblemError(403, str(exc)) from None
    return user_out(user), 201


@bp.route("/auth/login", methods=["POST"])
@auth_rate_limit
@operation(summary="Log in: access token in the body, refresh token in an HttpOnly cookie",
           tag="auth", body=LoginIn, public=True, responses={200: TokenOut, 401: None, 403: None, 429: None})
def login():
    data = json_body(LoginIn)
    try:
        user = accounts.authenticate(data.email, data.password)
    except accounts.TooManyFailures as exc:
        raise ProblemError(429, str(exc), headers={"Retry-After": str(exc.seconds)}) from None
    except accounts.AccountDisabled as exc:
        raise ProblemError(403, str(exc)) from None
    if user is None:
        raise ProblemError(401, "Invalid email or password.")
    return _token_response(tokens.issue(user))


@bp.route("/auth/refresh", methods=["POST"])
@auth_rate_limit
@operation(summary="Exchange the refresh cookie for a new access token (the cookie rotates)",
           tag="auth", public=True, cookie=COOKIE, description=CSRF_NOTE,
           headers={REFRESH_HEADER: "CSRF defence: must be XMLHttpRequest."},
           responses={200: TokenOut, 401: None, 403: None, 429: None})
def refresh():
    require_same_site_script()
    raw = request.cookies.get(COOKIE)
    if not raw:
        raise unauthorized("No refresh token cookie: log in first." + _secure_cookie_hint())
    try:
        _, pair = tokens.rotate(raw)
    except tokens.RefreshReused as exc:
        logger.warning("Refresh token re-use: %s", exc)
        raise unauthorized("This refresh token is no longer valid: it was already used, or this "
                           "login was revoked after a re-use. Log in again.") from None
    except tokens.RefreshRefused as exc:
        raise unauthorized(f"Refresh refused ({exc}). Log in again.") from None
    return _token_response(pair)


@bp.route("/auth/logout", methods=["POST"])
@operation(summary="Revoke the refresh token and clear its cookie", tag="auth", public=True,
           cookie=COOKIE, description=CSRF_NOTE,
           headers={REFRESH_HEADER: "CSRF defence: must be XMLHttpRequest."},
           responses={204: None, 403: None})
def logout():
    require_same_site_script()
    raw = request.cookies.get(COOKIE)
    if raw:
        tokens.revoke(raw)
    return _clear_cookie(current_app.response_class(status=204))


@bp.route("/me", methods=["GET"])
@authenticated
@operation(summary="The current user", tag="auth", responses={200: UserOut, 401: None})
def me():
    return user_out(api_user())
