"""The Celery worker: `celery -A webapp.worker worker -Q detect --concurrency 1`.

It builds the Flask app with the same configuration as the web tier (ANALYSIS_EXECUTOR=celery,
CELERY_BROKER_URL, DATABASE_URL, UPLOAD_DIR shared with the web processes), and each worker
process loads the detection model once, when it starts, then reports it to the web tier.
"""
import logging

from celery.signals import worker_process_init, worker_process_shutdown, worker_ready

from webapp import create_app, detection
from webapp.analyses.pipeline import requeue_lost
from webapp.config import Config
from webapp.vision.detector import ModelUnavailable

logger = logging.getLogger(__name__)


class WorkerConfig(Config):
    ANALYSIS_EXECUTOR = "celery"  # this process runs the tasks; what it queues goes to the broker
    DETECTION_WORKER = True


flask_app = create_app(WorkerConfig)
celery = flask_app.extensions["celery"]


@worker_process_init.connect
def load_model(**_) -> None:
    """Load the model in each worker process before its first task, and say how it went."""
    with flask_app.app_context():
        try:
            detection.get_detector().load()
        except ModelUnavailable as exc:
            logger.error("Detection is unavailable: %s", exc)  # tasks fail with it, and retry later
        detection.report()


@worker_process_shutdown.connect
def withdraw(**_) -> None:
    detection.withdraw_report(flask_app)


@worker_ready.connect
def recover(**_) -> None:
    """Once per worker start: nothing stays pending or running forever (see requeue_lost)."""
    with flask_app.app_context():
        requeue_lost()
