"""How the app answers what went wrong, in one place: RFC 9457 problem JSON under /api/ (and for
clients that ask for JSON), HTML pages for people, an HTML fragment for htmx requests, and a
shape of its own for a path prefix that declares one (the DeepStack endpoint's).

The services' errors (`webapp/errors.py`) are answered here by class and kind: NotFound is a
404, Gone a 410, a refusal is 413 (too large, too many), 409 (conflict), 422 (invalid, quota)
or 503 with `Retry-After` (unavailable)."""
import logging
from typing import Callable, Optional

from flask import Flask, Response, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask.globals import request_ctx
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from webapp.errors import DomainError, Gone, NotFound, Refused
from webapp.extensions import db, login_manager
from webapp.storage import human_size
from webapp.web import limits
from webapp.web.htmx import wants_partial

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30  # what a 503 tells a client to wait (the model, the queue or the database is down)
RETRY_LATER = {"Retry-After": str(RETRY_AFTER_SECONDS)}
STATUS_OF_KIND = {Refused.TOO_LARGE: 413, Refused.TOO_MANY: 413, Refused.QUOTA: 422, Refused.CONFLICT: 409,
                  Refused.INVALID: 422, Refused.UNAVAILABLE: 503}
DATABASE_DOWN = "The database cannot be reached right now. Please try again in a minute."

SHAPES_KEY = "error_shapes"  # in app.extensions: {path prefix: answer(status, message, headers)}


class ProblemError(Exception):
    """Raised by API code to answer with a problem document."""

    def __init__(self, status: int, detail: str, headers: Optional[dict] = None, **extra):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra


def status_of(error: DomainError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Gone):
        return 410
    return STATUS_OF_KIND.get(getattr(error, "kind", None), 422)


def headers_of(error: DomainError) -> dict:
    if status_of(error) != 503:
        return {}
    return {"Retry-After": str(getattr(error, "retry_after", None) or RETRY_AFTER_SECONDS)}


def register_shape(app: Flask, prefix: str, answer: Callable) -> None:
    """Answer every error under `prefix` with `answer(status, message, headers)`."""
    app.extensions.setdefault(SHAPES_KEY, {})[prefix] = answer


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/v1/")):  # the API, and the DeepStack endpoint
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def problem(status: int, detail: str, title: Optional[str] = None, headers: Optional[dict] = None, **extra):
    """The one JSON error shape: application/problem+json with type, title, status, detail."""
    body = {"type": "about:blank", "title": title or HTTP_STATUS_CODES.get(status, "Error"), "status": status,
            "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers.update(headers or {})
    return response


def respond(status: int, title: str, message: str, headers: Optional[dict] = None):
    """An error, answered as the client expects it (see the module's docstring)."""
    if request_ctx.url_adapter is None:  # a Host no URL can be built for: no page, which would build some
        return Response(f"{status} {title}: {message or title}\n", status, headers or {}, mimetype="text/plain")
    for prefix, answer in current_app.extensions.get(SHAPES_KEY, {}).items():
        if request.path.startswith(prefix):
            return answer(status, message or title, headers)
    if wants_json():
        return problem(status, message, title=title, headers=headers)
    if wants_partial():  # htmx: into the page's message area, wherever the request meant to swap
        fragment = render_template("errors/_error.html", title=title, message=message)
        return fragment, status, {**(headers or {}), "HX-Retarget": "#htmx-errors", "HX-Reswap": "innerHTML"}
    page = render_template("errors/error.html", status=status, title=title, message=message)
    return page, status, headers or {}


def _too_large():
    """413: too many bytes, or (within the size limit) too many files in one request."""
    config = current_app.config
    length = request.content_length
    if not limits.is_upload():
        return respond(413, "Request too large", f"This request is too large: the limit is "
                       f"{human_size(config['MAX_BODY_SIZE'])} for anything but an upload.")
    if length is not None and length <= (config.get("MAX_CONTENT_LENGTH") or length):
        message = f"Too many files in one upload: send at most {config['MAX_FORM_PARTS'] - 2} per request."
    else:
        message = limits.too_large_message()
    if limits.back_to() and not wants_json() and not wants_partial():
        flash(message, "error")  # a plain upload form: back to its page, which says why
        return redirect(url_for(limits.back_to()))
    return respond(413, "Upload too large", message)


def _cookie_dropped_over_http(exc: CSRFError) -> bool:
    """The session cookie never came back because it is Secure and the page came over plain HTTP."""
    return (bool(current_app.config.get("SESSION_COOKIE_SECURE")) and not request.is_secure
            and "session token is missing" in (exc.description or ""))


def handle_http(exc: HTTPException):
    if isinstance(exc, RequestEntityTooLarge):
        return _too_large()
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after", "www-authenticate")}
    return respond(exc.code or 500, exc.name, exc.description or "", headers)


def handle_problem(exc: ProblemError):
    return problem(exc.status, exc.detail, headers=exc.headers, **exc.extra)


def handle_domain(exc: DomainError):
    """A service's error that no view turned into something else."""
    status = status_of(exc)
    return respond(status, HTTP_STATUS_CODES.get(status, "Error"), str(exc), headers_of(exc))


def handle_csrf(exc: CSRFError):
    """A page form or htmx write without a valid token. Signed out meanwhile (the session ended,
    or a log-out in another tab): off to log in again, not a bare refusal."""
    if not wants_json() and request.blueprint != "auth" and not current_user.is_authenticated:
        return login_manager.unauthorized()
    logger.info("CSRF check refused %s %s: %s", request.method, request.path, exc.description)
    if _cookie_dropped_over_http(exc):
        logger.warning("Session cookies are Secure but %s came over plain HTTP: serve HTTPS (with "
                       "TRUSTED_PROXIES behind a proxy) or set SESSION_COOKIE_SECURE=0", request.path)
        return respond(400, "Cookies refused", (
            "Your browser did not keep this site's session cookie: the server marks its cookies "
            "Secure (HTTPS only), but this page came over plain HTTP. Use the site's https:// "
            "address; on a private network an administrator can set SESSION_COOKIE_SECURE=0."))
    return respond(400, "Form expired", "This form has expired or did not come from this site. "
                   "Reload the page and try again.")


def handle_database_down(exc: OperationalError):
    """503 with the app's own page or problem document. The page is rendered as for a visitor:
    loading the signed-in user would need the database again. A missing table or column (a
    migration not applied) is not an outage: a 500, logged as such."""
    if "no such table" in str(exc.orig) or "no such column" in str(exc.orig):
        return handle_unexpected(exc)
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass
    logger.error("Database unreachable on %s %s: %s", request.method, request.path, exc.orig or exc)
    g._login_user = login_manager.anonymous_user()
    return respond(503, "Service Unavailable", DATABASE_DOWN, RETRY_LATER)


def handle_unexpected(exc: Exception):
    db.session.rollback()
    g._login_user = login_manager.anonymous_user()  # the error may have come from loading the user
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return respond(500, "Internal Server Error", "Something went wrong on our side. Please try again.")


def init_app(app: Flask) -> None:
    app.add_template_filter(human_size)
    app.register_error_handler(ProblemError, handle_problem)
    app.register_error_handler(DomainError, handle_domain)
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(OperationalError, handle_database_down)
    app.register_error_handler(Exception, handle_unexpected)
