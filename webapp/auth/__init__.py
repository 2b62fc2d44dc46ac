"""Accounts: the sign-up, log-in, account and API keys pages (blueprint `auth`, in `routes`),
and their services: `accounts` (sign-up, credentials, lock-out, sessions), `tokens` (the API's
access and refresh tokens), `keys` (API keys)."""
from flask import Blueprint, current_app

from webapp.extensions import limiter

bp = Blueprint("auth", __name__)


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


# The one limit on credential checks (sign-up, log-in, refresh; pages and API), per client address.
auth_rate_limit = limiter.limit(_auth_limit, methods=["POST"])
