"""`POST /v1/vision/detection`: DeepStack's request and answer shapes (its errors too, whatever
goes wrong under /v1/vision/)."""
import ipaddress
import logging
import math
import time
from typing import Optional

from flask import Flask, current_app, g, jsonify, request
from flask_limiter.util import get_remote_address
from limits import parse
from werkzeug.exceptions import TooManyRequests

from webapp.api.security import api_key_secret, user_from_key
from webapp.auth import keys
from webapp.deepstack import bp, detect
from webapp.errors import Refused
from webapp.config import ConfigurationError
from webapp.extensions import csrf, shared_limits
from webapp.vision.detector import DetectorError
from webapp.vision.images import ImageRejected
from webapp.web import limits
from webapp.web.answers import RETRY_LATER, ProblemError, register_shape

logger = logging.getLogger(__name__)
DEFAULT_MIN_CONFIDENCE = 0.4
PATHS = "/v1/vision/"
INVALID_KEY = "Invalid API key: it does not exist or it was revoked."
DETECTING = "This caller has photos being detected at once already: send this one once one of them is answered."
DETECTING_HERE = "This server process is detecting as many photos as it may at once: send this one again."


class Failed(Exception):
    def __init__(self, status: int, error: str, headers: Optional[dict] = None):
        super().__init__(error)
        self.status, self.error, self.headers = status, error, headers or {}


def deepstack_error(status: int, error: str, headers: Optional[dict] = None):
    """DeepStack's error shape, which its clients read: {"success": false, "error": ...}."""
    response = jsonify({"success": False, "error": error})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _key_may_upload() -> bool:
    """Before the body is read: a key in a header must exist (one in the form is checked once read)."""
    raw = api_key_secret()
    return raw is None or keys.find(raw) is not None


def _open_to_caller() -> bool:
    """Whether the caller's address is in DEEPSTACK_OPEN_NETWORKS (may detect without a key)."""
    networks = current_app.extensions.get("deepstack_open_networks") or ()
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


@bp.route("/v1/vision/detection", methods=["POST"])
@limits.upload(signed_in=_key_may_upload, refuse=lambda: deepstack_error(401, INVALID_KEY))
def detection_endpoint():
    started = time.perf_counter()
    try:
        user = _authenticate()
        min_conf = _min_confidence()
        upload = request.files.get("image")
        if upload is None:
            raise Failed(400, "Send the photo in the multipart field `image`.")
        if user is None:
            _count_keyless_call()
        with limits.at_once(("deepstack",), DETECTING_HERE, most=current_app.config["DEEPSTACK_AT_ONCE"]), \
                limits.at_once(("deepstack", user.id if user is not None else request.remote_addr), DETECTING):
            predictions = _detect(user, upload.filename or "deepstack.jpg", upload.read(), min_conf)
    except TooManyRequests as exc:  # this caller's detections at once (UPLOADS_AT_ONCE per process)
        return deepstack_error(429, exc.description, {"Retry-After": "1"})
    except Failed as exc:
        return deepstack_error(exc.status, exc.error, exc.headers)
    return jsonify({"success": True, "predictions": predictions,
                    "duration": round((time.perf_counter() - started) * 1000)})


def _count_keyless_call() -> None:
    """A keyless call from an open network counts against DEEPSTACK_OPEN_RATE_LIMIT for its address
    (a 429 past it); a call with a key, in the form or a header, does not."""
    wait = shared_limits.wait_after_hit(parse(current_app.config["DEEPSTACK_OPEN_RATE_LIMIT"]), "deepstack-open",
                                        get_remote_address())
    if wait is not None:
        raise Failed(429, f"Too many calls without a key from this address: try again in {wait} seconds.",
                     {"Retry-After": str(wait)})


def _detect(user, filename: str, data: bytes, min_conf: float) -> list[dict]:
    """The service's answer, or its error as DeepStack's status: 400 for a photo it cannot use,
    422 when detection fails on it, 503 (with Retry-After) when something it needs is down.
    Without a user (a keyless call from an open network), detection only."""
    try:
        if user is not None and g.api_key.save_to_gallery:
            return detect.detect_and_keep(user, filename, data, min_conf)
        return detect.detect(data, min_conf)
    except ImageRejected as exc:
        raise Failed(400, str(exc)) from None
    except DetectorError as exc:
        raise Failed(422, str(exc)) from None
    except Refused as exc:
        if exc.kind == Refused.UNAVAILABLE:
            raise Failed(503, str(exc), RETRY_LATER) from None
        raise Failed(400, str(exc)) from None


def _authenticate():
    raw = api_key_secret() or (request.form.get("api_key") or "").strip()
    if not raw and _open_to_caller():
        return None  # DEEPSTACK_OPEN_NETWORKS: detection only, nothing stored, nobody's account
    if not raw:
        raise Failed(401, "An API key is required: send it as the form field api_key (or the X-API-Key header). "
                          "Create one on the API keys page.")
    try:
        return user_from_key(raw, detection=True)
    except ProblemError as exc:
        raise Failed(exc.status, exc.detail, {k: v for k, v in exc.headers.items() if k == "Retry-After"}) from None


def _min_confidence() -> float:
    text = (request.form.get("min_confidence") or "").strip()
    if not text:
        return DEFAULT_MIN_CONFIDENCE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise Failed(400, "min_confidence must be a number from 0 to 1.")
    return value


def init_app(app: Flask) -> None:
    try:
        app.extensions["deepstack_open_networks"] = tuple(
            ipaddress.ip_network(text, strict=False) for text in app.config["DEEPSTACK_OPEN_NETWORKS"])
    except ValueError as exc:
        raise ConfigurationError(f"Configuration error: DEEPSTACK_OPEN_NETWORKS: {exc} "
                                 "(write networks as CIDR, comma-separated: 192.168.1.0/24,10.0.0.5)") from None
    if app.extensions["deepstack_open_networks"]:
        logger.warning("The DeepStack endpoint detects without a key for %s",
                       ", ".join(map(str, app.extensions["deepstack_open_networks"])))
    csrf.exempt(bp)  # no cookie authenticates it: an API key does
    register_shape(app, PATHS, deepstack_error)
    app.register_blueprint(bp)
