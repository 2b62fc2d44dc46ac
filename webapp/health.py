"""`GET /healthz`: is the app up, its database reachable, its detection model usable; with
Celery, the broker reachable and how many workers answer a ping within a second? Only the
database decides the status code: the web tier is healthy without a model or a worker."""
import logging

import sqlalchemy as sa
from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from webapp import detection, jobs
from webapp.extensions import db

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.route("/healthz", methods=["GET"])
def healthz():
    body = {"status": "ok", "database": "ok", **_queue_health(), "model": detection.status_line()}
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("Health check: database unreachable: %s", exc.__class__.__name__)
        return {**body, "status": "error", "database": "unreachable"}, 503
    return body, 200


def _queue_health() -> dict:
    runner = jobs.get_runner()
    if runner.in_process:
        return {}
    try:
        runner.check_broker()
    except jobs.QueueUnavailable:
        return {"broker": "unreachable", "workers": 0}
    return {"broker": "ok", "workers": runner.workers_answering(timeout=1.0)}
