"""`Idempotency-Key` on the API's requests that store something (an upload, a run): the same key
and the same request within 24 hours give the first answer again (`Idempotent-Replayed: true`)
instead of doing it twice; see `webapp/analyses/idempotency.py`."""
import hashlib
import re
from functools import wraps
from typing import Optional

from flask import current_app, g, jsonify, request

from werkzeug.exceptions import HTTPException

from webapp import storage
from webapp.analyses import idempotency
from webapp.api.security import api_user
from webapp.errors import DomainError
from webapp.web.answers import ProblemError

HEADER = "Idempotency-Key"
KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII


def resumed_since():
    """When an interrupted first attempt of this request began (what it stored since is reused),
    or None."""
    return g.get("idempotent_resumed_since")


def stored_key(key: str, scope: str) -> str:
    """How a key is stored: per scope (a detect-only key never gets what the account itself was
    answered; keys are per account already), as a digest."""
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()


def _fingerprint() -> str:
    files = []
    for field, upload in request.files.items(multi=True):
        digest = storage.sha256_of(upload.stream)
        files.append((field, upload.filename, digest))
    def pairs(values) -> list:
        return sorted((str(key), str(value)) for key, value in values.items(multi=True))

    return idempotency.fingerprint(request.method, request.path, pairs(request.args), pairs(request.form), files)


def idempotent(view):
    """Honour an Idempotency-Key (after authentication: keys are per user)."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        key: Optional[str] = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not KEY.fullmatch(key):
            raise ProblemError(422, f"{HEADER} must be 1 to 255 visible ASCII characters (a UUID, say).")
        caller = g.get("api_key")
        scope = "detect-only" if caller is not None and caller.detect_only else "full"
        try:
            claimed = idempotency.claim(api_user().id, stored_key(key, scope), _fingerprint())
        except idempotency.KeyInUse as exc:
            raise ProblemError(409, str(exc), headers={"Retry-After": "5"}) from None
        if claimed.answer is not None:
            status, body = claimed.answer
            response = jsonify(body)
            response.status_code = status
            response.headers["Idempotent-Replayed"] = "true"
            return response
        g.idempotent_resumed_since = claimed.resumed_since
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except (DomainError, ProblemError, HTTPException):  # refused: nothing done, the key is free
            idempotency.release(claimed)
            raise
        except Exception:  # failed midway: sent again, it goes on from what it stored
            idempotency.interrupted(claimed)
            raise
        if 200 <= response.status_code < 300 and response.is_json:
            idempotency.answered(claimed, response.status_code, response.get_json())
        else:
            idempotency.release(claimed)
        return response

    return wrapper
