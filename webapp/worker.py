"""The Celery worker: `celery -A webapp.worker worker -Q detect`.

It builds the Flask app with the same configuration as the web tier (ANALYSIS_EXECUTOR=celery,
CELERY_BROKER_URL, DATABASE_URL, UPLOAD_DIR shared with the web processes). A worker is one
process with one model: it loads and warms the model when it starts, reports it to the web
tier, and its pool threads hand their runs to the process's batched stream
(webapp/jobs/stream.py), which detects several at a time on the model. It also answers the
DeepStack endpoint's calls, on their own queue.
"""
from celery.signals import celeryd_after_setup, worker_init, worker_shutdown

from webapp import create_app
from webapp.config import Config
from webapp.deepstack import tasks  # noqa: F401 - registers the DeepStack endpoint's task
from webapp.auth import takeout  # noqa: F401 - registers the "Download everything" job
from webapp.jobs.celery import DEEPSTACK_QUEUE, concurrency
from webapp.jobs.lifecycle import start_process, stop_process
from webapp.jobs.processes import yield_cpu
from webapp.jobs.stream import batch_size


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
    instance.app.amqp.queues.select_add(DEEPSTACK_QUEUE)


@worker_init.connect
def start(**_) -> None:
    yield_cpu(flask_app.config["DETECT_NICE"])  # its threads (and those they start) after the web tier's
    start_process(flask_app)


@worker_shutdown.connect
def stop(**_) -> None:
    stop_process(flask_app, finish=True)  # the tasks it holds finish first (a warm shutdown)
