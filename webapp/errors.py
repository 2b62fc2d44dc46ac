"""Errors: RFC 9457 problem JSON under /api/ (and for clients that ask for JSON), HTML pages
for people, an HTML fragment for HTMX requests."""
import logging
from typing import Optional

from flask import current_app, jsonify, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webapp.extensions import db, login_manager
from webapp.htmx import wants_partial

logger = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raised by API code to answer with a problem document."""

    def __init__(self, status: int, detail: str, headers: Optional[dict] = None, **extra):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def problem(status: int, detail: str, title: Optional[str] = None, headers: Optional[dict] = None, **extra):
    """The one JSON error shape: application/problem+json with type, title, status, detail."""
    body = {"type": "about:blank", "title": title or _title(status), "status": status,
            "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers.update(headers or {})
    return response


def _title(status: int) -> str:
    from werkzeug.http import HTTP_STATUS_CODES

    return HTTP_STATUS_CODES.get(status, "Error")


def too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"The upload is too large: the limit is {limit / (1024 * 1024):g} MB per request."


def _respond(status: int, title: str, message: str, headers: Optional[dict] = None):
    if wants_json():
        return problem(status, message, title=title, headers=headers)
    if wants_partial():
        return render_template("errors/_error.html", title=title, message=message), status, headers or {}
    page = render_template("errors/error.html", status=status, title=title, message=message)
    return page, status, headers or {}


def handle_http(exc: HTTPException):
    message = exc.description or ""
    if isinstance(exc, RequestEntityTooLarge):
        message = too_large_message()
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after", "www-authenticate")}
    return _respond(exc.code or 500, exc.name, message, headers)


def handle_problem(exc: ProblemError):
    return problem(exc.status, exc.detail, headers=exc.headers, **exc.extra)


def handle_csrf(exc: CSRFError):
    """A page form or htmx write without a valid token. Signed out meanwhile (the session ended,
    or a log-out in another tab): off to log in again, not a bare refusal."""
    if not wants_json() and request.blueprint != "auth" and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return _respond(400, "Bad Request", f"The form was stale or incomplete ({exc.description}) "
                    "Reload the page and try again.")


def handle_unexpected(exc: Exception):
    db.session.rollback()
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return _respond(500, "Internal Server Error", "Something went wrong on our side. Please try again.")


def init_app(app) -> None:
    app.register_error_handler(ProblemError, handle_problem)
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(Exception, handle_unexpected)
