"""Error pages: HTML for people, JSON for clients that ask for it (and everything under /api/)."""
import logging

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from webapp.extensions import db
from webapp.pages import wants_partial

logger = logging.getLogger(__name__)


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def too_large_message() -> str:
    from flask import current_app

    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"The upload is too large: the limit is {limit / (1024 * 1024):g} MB per request."


def _respond(status: int, title: str, message: str):
    if wants_json():
        return jsonify(error=title, message=message, status=status), status
    if wants_partial():
        return render_template("errors/_error.html", title=title, message=message), status
    return render_template("errors/error.html", status=status, title=title, message=message), status


def handle_http(exc: HTTPException):
    message = exc.description or ""
    if isinstance(exc, RequestEntityTooLarge):
        message = too_large_message()
    return _respond(exc.code or 500, exc.name, message)


def handle_csrf(exc: CSRFError):
    return _respond(400, "Bad Request", f"The form was stale or incomplete ({exc.description}) "
                    "Reload the page and try again.")


def handle_unexpected(exc: Exception):
    db.session.rollback()
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return _respond(500, InternalServerError.name, "Something went wrong on our side. Please try again.")


def init_app(app) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(Exception, handle_unexpected)
