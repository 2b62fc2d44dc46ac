"""How much a request may send before anything reads it: an upload up to MAX_CONTENT_LENGTH,
every other request up to MAX_BODY_SIZE (a log-in form, a JSON body: a few hundred bytes).
Runs before the CSRF check, which would otherwise parse a form of any size first."""
from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

UPLOAD_ENDPOINTS = {"analyses.upload", "api.upload", "deepstack.detection_endpoint"}


def init_app(app: Flask) -> None:
    """Register before the CSRF protection (before-request functions run in order)."""
    app.before_request(limit_body)


def _signed_in() -> bool:
    from flask_login import current_user

    if request.endpoint == "deepstack.detection_endpoint":
        from webapp.api.security import api_key_secret
        from webapp.auth import keys

        raw = api_key_secret()  # else in the form (as DeepStack clients send it): checked once read
        return raw is None or keys.find(raw) is not None
    if request.endpoint == "api.upload":
        from webapp.api.security import api_key_secret, has_valid_bearer
        from webapp.auth import keys

        raw = api_key_secret()
        if raw is not None:
            return keys.find(raw) is not None
        if request.headers.get("Authorization"):
            return has_valid_bearer()
    return current_user.is_authenticated


def is_upload() -> bool:
    return request.endpoint in UPLOAD_ENDPOINTS


def limit_body():
    """A declared length over the limit is refused at once (413), without reading the body; one
    sent without a length is cut off at the limit while it is read. An upload from someone not
    signed in is refused before its body is read (the log-in page, or a 401 problem)."""
    if is_upload() and not _signed_in():
        if request.endpoint == "deepstack.detection_endpoint":
            from webapp.errors import deepstack_error

            return deepstack_error(401, "Invalid API key: it does not exist or it was revoked.")
        if request.endpoint == "api.upload":
            from webapp.api.security import unauthorized

            raise unauthorized("Authentication required: send Authorization: Bearer <access token>.")
        from webapp.extensions import login_manager

        return login_manager.unauthorized()
    limit = current_app.config["MAX_CONTENT_LENGTH"] if is_upload() else current_app.config["MAX_BODY_SIZE"]
    request.max_content_length = limit
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
