"""The web layer's plumbing, shared by every blueprint: how much a request may send (`limits`),
security headers (`headers`), how errors are answered (`answers`), htmx's requests (`htmx`),
sending files (`delivery`), validating request data (`validation`), static file versions
(`assets`), times in the viewer's zone (`times`)."""
from flask import Flask

from webapp.web import answers, assets, headers, limits, times


def init_app(app: Flask) -> None:
    limits.init_app(app)  # first: before anything reads a body
    headers.init_app(app)
    answers.init_app(app)
    assets.init_app(app)
    times.init_app(app)


def init_after_limiter(app: Flask) -> None:
    """What must be registered after flask-limiter (its after-request hooks run before the limiter's)."""
    headers.init_after_limiter(app)
