"""What /healthz checks. Only the database decides whether the web tier is healthy: it is
healthy without a model or a worker (uploads are kept and retried)."""
import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from webapp.detection.availability import status_line, worker_devices
from webapp.extensions import db, shared_limits
from webapp.jobs.scheduling import QueueUnavailable, get_runner

logger = logging.getLogger(__name__)


def database_answers() -> bool:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("Health check: database unreachable: %s", exc.__class__.__name__)
        return False
    return True


def queue_health() -> dict:
    """With Celery: whether the broker answers, how many workers answer a ping within a second, and
    the devices they detect on ({"cuda:0": 2}: what their reports say)."""
    runner = get_runner()
    if runner.in_process:
        return {}
    try:
        runner.check_broker()
    except QueueUnavailable:
        return {"broker": "unreachable", "workers": 0, "devices": {}}
    answering = runner.workers_answering(timeout=1.0)
    return {"broker": "ok", "workers": answering, "devices": worker_devices(runner.answering_hosts())}


def model_health() -> str:
    return status_line()


def rate_limit_health() -> str:
    """"ok" while the rate limits' storage answers (always, in memory); else what is degraded."""
    if shared_limits.storage_answers():
        return "ok"
    return "degraded: the rate limit storage (RATELIMIT_STORAGE_URI) is unreachable; limits are per process"
