"""What a Celery worker process tells the web tier about its models: written to a Redis hash
(one field per process) when it starts and after every batch, withdrawn when it stops. The web
tier reads it (`webapp/detection/status.py`) for the banner, /healthz and the class check."""
import json
import logging
import os
import time
from typing import Optional

import redis
from flask import Flask, current_app

from webapp.detection.registry import get_detector, model_names
from webapp.detection.availability import REPORT_KEY, availability, reports_redis
from webapp.jobs.processes import worker_id

logger = logging.getLogger(__name__)


def _field() -> str:
    return worker_id(os.getpid())


def report(app: Optional[Flask] = None) -> None:
    """In a Celery worker process: write its model, classes or problem for the web tier."""
    app = app or current_app
    if not app.config["DETECTION_WORKER"]:
        return
    detector = get_detector(app)
    problem = availability(app)
    others = {name: get_detector(app, name) for name in model_names(app)[1:]}
    body = json.dumps({
        "model": detector.settings.model_name, "device": detector.device,
        "names": detector.names() if detector.loaded else None,
        "models": {name: {"model": d.settings.model_name, "names": d.names() if d.loaded else None}
                   for name, d in others.items()},
        "reason": problem.reason if problem else None, "fix": problem.fix if problem else None,
        "at": time.time(),
    })
    try:
        reports_redis(app).hset(REPORT_KEY, _field(), body)
    except redis.RedisError as exc:
        logger.warning("Cannot write the detection report: %s", exc)


def withdraw_report(app: Flask) -> None:
    """A worker process that stops takes its report back (one killed leaves it until restarts)."""
    try:
        reports_redis(app).hdel(REPORT_KEY, _field())
    except redis.RedisError as exc:
        logger.warning("Cannot withdraw the detection report: %s", exc)
