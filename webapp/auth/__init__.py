"""Accounts: the sign-up, log-in and log-out pages (blueprint `auth`), their services and the
API's tokens."""
from flask import Blueprint, current_app

from webapp.extensions import limiter

bp = Blueprint("auth", __name__)


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


# The one limit on credential checks (sign-up, log-in, refresh; pages and API), per client address.
auth_rate_limit = limiter.limit(_auth_limit, methods=["POST"])

from webapp.auth import routes  # noqa: E402,F401
