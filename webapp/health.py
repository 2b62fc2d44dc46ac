"""`GET /healthz`: is the app up and its database reachable?"""
import logging

import sqlalchemy as sa
from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from webapp.extensions import csrf, db

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.route("/healthz", methods=["GET"])
@csrf.exempt
def healthz():
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("Health check: database unreachable: %s", exc.__class__.__name__)
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}, 200
