"""How much a request may send before anything reads it: an upload up to MAX_CONTENT_LENGTH,
every other request up to MAX_BODY_SIZE (a log-in form, a JSON body: a few hundred bytes).
Runs before the CSRF check, which would otherwise parse a form of any size first.

A route that takes uploads says so where it is defined (`@upload(...)`), with who may send one:
an upload from someone not signed in is refused before its body is read. Once signed in, one
account has at most UPLOADS_AT_ONCE upload requests in a process at a time (`@uploads_at_once`);
the DeepStack endpoint holds as many detections per caller (`at_once`)."""
import threading
from collections import Counter
from contextlib import contextmanager
from functools import wraps
from typing import Callable, Hashable, Optional

from flask import Flask, current_app, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge, TooManyRequests

from webapp.extensions import login_manager
from webapp.storage import human_size


def upload(signed_in: Optional[Callable[[], bool]] = None, refuse: Optional[Callable[[], object]] = None,
           back_to: Optional[str] = None):
    """Mark a view as taking uploads (MAX_CONTENT_LENGTH). `signed_in` says whether the caller
    may send one (default: a signed-in browser session), `refuse` answers one who may not
    (default: the log-in page); a plain form's 413 goes back to the endpoint `back_to`, saying why."""
    def mark(view):
        view.upload_limit = True
        view.upload_signed_in = signed_in or (lambda: current_user.is_authenticated)
        view.upload_refused = refuse or login_manager.unauthorized
        view.upload_back_to = back_to
        return view

    return mark


def init_app(app: Flask) -> None:
    """Register before the CSRF protection (before-request functions run in order)."""
    app.before_request(limit_body)


def _view():
    return current_app.view_functions.get(request.endpoint) if request.endpoint else None


def is_upload() -> bool:
    return bool(getattr(_view(), "upload_limit", False))


def back_to() -> Optional[str]:
    """Where a plain upload form that was too large goes back to (an endpoint), if anywhere."""
    return getattr(_view(), "upload_back_to", None)


def limit_body():
    """A declared length over the limit is refused at once (413), without reading the body; one
    sent without a length is cut off at the limit while it is read. An upload from someone not
    signed in is refused before its body is read."""
    view = _view()
    if is_upload() and not view.upload_signed_in():
        return view.upload_refused()
    limit = current_app.config["MAX_CONTENT_LENGTH"] if is_upload() else current_app.config["MAX_BODY_SIZE"]
    request.max_content_length = limit
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


def too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"The upload is too large: the limit is {human_size(limit)} per request."


BUSY = "You are sending other photos right now: send this one once one of them is in."
_in_flight: Counter = Counter()
_in_flight_lock = threading.Lock()


def uploads_at_once(who: Callable[[], object]):
    """At most UPLOADS_AT_ONCE requests of one account (`who()` names it) in this view in this
    process at a time; the next is answered 429 with `Retry-After: 1` (before the view reads its body:
    an API upload's is unread then; a page's form has been read by the CSRF check).
    Uploads cost the web tier little each, but a request holds a server thread while its body
    arrives: without this, one account sending many at once holds every thread, and everyone
    else's pages and sign-ins wait behind them."""
    def wrap(view):
        @wraps(view)
        def limited(*args, **kwargs):
            with at_once((request.endpoint, who())):
                return view(*args, **kwargs)

        return limited

    return wrap


@contextmanager
def at_once(key: Hashable, message: str = BUSY, most: Optional[int] = None):
    """Within: one of at most `most` (UPLOADS_AT_ONCE by default) holders of `key` in this
    process (none when it is 0); past that, TooManyRequests(`message`) with `Retry-After: 1`."""
    most = current_app.config["UPLOADS_AT_ONCE"] if most is None else most
    if not most:
        yield
        return
    with _in_flight_lock:
        if _in_flight[key] >= most:
            raise TooManyRequests(message, retry_after=1)
        _in_flight[key] += 1
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight[key] -= 1
            if not _in_flight[key]:
                del _in_flight[key]
