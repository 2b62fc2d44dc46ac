"""The Celery worker: `celery -A webapp.worker worker -Q detect`.

It builds the Flask app with the same configuration as the web tier (ANALYSIS_EXECUTOR=celery,
CELERY_BROKER_URL, DATABASE_URL, UPLOAD_DIR shared with the web processes). A worker is one
process with one model: it loads and warms the model when it starts, reports it to the web
tier, and its pool threads hand their analyses to the process's batched stream
(webapp/analyses/batching.py), which detects several at a time on the model.
"""
import logging

from celery.signals import celeryd_after_setup, worker_init, worker_ready, worker_shutdown

from webapp import create_app, detection
from webapp.analyses.batching import batch_size
from webapp.analyses.pipeline import requeue_lost
from webapp.config import Config
from webapp.jobs import get_runner
from webapp.jobs.celery import concurrency
from webapp.vision.detector import ModelUnavailable

logger = logging.getLogger(__name__)


class WorkerConfig(Config):
    ANALYSIS_EXECUTOR = "celery"  # this process runs the tasks; what it queues goes to the broker
    DETECTION_WORKER = True


flask_app = create_app(WorkerConfig)
celery = flask_app.extensions["celery"]
# DETECT_BATCH=0 means "by device": 32 photos to a batch on CUDA; on the CPU what the model runs
# at once, known once loaded, so the most it can be (without loading the model on import).
celery.conf.worker_concurrency = concurrency(batch_size(flask_app), flask_app.config["DETECT_THREADS"])


@celeryd_after_setup.connect
def also_answer_deepstack(sender, instance, **_) -> None:
    """Every worker also takes the DeepStack endpoint's tasks, whatever `-Q` names."""
    from webapp.deepstack import QUEUE

    instance.app.amqp.queues.select_add(QUEUE)


@worker_init.connect
def load_model(**_) -> None:
    """Load and warm the model before the first task, and say how it went."""
    with flask_app.app_context():
        try:
            detector = detection.get_detector()
            detector.load()
            detector.warm_up(batch_size(flask_app, load=True))
        except ModelUnavailable as exc:
            logger.error("Detection is unavailable: %s", exc)  # tasks fail with it, and retry later
        detection.report()


@worker_shutdown.connect
def withdraw(**_) -> None:
    get_runner(flask_app).close()  # the tasks it holds finish first (a warm shutdown)
    detection.withdraw_report(flask_app)


@worker_ready.connect
def recover(**_) -> None:
    """Once per worker start: nothing stays pending or running forever (see requeue_lost)."""
    with flask_app.app_context():
        requeue_lost()
