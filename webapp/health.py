"""`GET /healthz`: is the app up, its database reachable, its detection model usable?
Only the database decides the status code: the web tier is healthy without a model."""
import logging

import sqlalchemy as sa
from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from webapp import detection
from webapp.extensions import db

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.route("/healthz", methods=["GET"])
def healthz():
    model = detection.status_line()
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("Health check: database unreachable: %s", exc.__class__.__name__)
        return {"status": "error", "database": "unreachable", "model": model}, 503
    return {"status": "ok", "database": "ok", "model": model}, 200
