"""The Celery app, made the Flask way: configured from the app's `Config`, every task run inside
an app context (Flask's "Background Tasks with Celery" pattern), and the queues it uses."""
from celery import Celery, Task
from flask import Flask

from webapp.jobs.priorities import PRIORITIES

DETECT_QUEUE = "detect"  # runs of the model on stored photos
DEEPSTACK_QUEUE = "deepstack"  # the DeepStack endpoint's calls: answered, never stored, expiring
PRIORITY_SEPARATOR = ":"


def queue_keys() -> list[str]:
    """The Redis lists of the detect queue, one per priority (Redis has no priority queue: kombu
    keeps a list per step and takes from the lowest-numbered non-empty one first)."""
    return [DETECT_QUEUE if p == 0 else f"{DETECT_QUEUE}{PRIORITY_SEPARATOR}{p}" for p in PRIORITIES]


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(settings(app.config))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def concurrency(batch: int, threads: int) -> int:
    """Tasks a worker holds at once: each waits for its run in the worker's stream, so the
    stream can fill a batch while the previous one is detected, drawn and stored."""
    return 2 * batch + threads


def settings(config) -> dict:
    """Nothing lost, nothing doubled: a task is acknowledged only once its run is stored (so a
    worker that dies hands it back), and Redis gives an unacknowledged task to another worker
    after CELERY_VISIBILITY_TIMEOUT seconds. A worker is one process whose pool threads hand
    their runs to the process's batched stream (webapp/jobs/stream.py), one model per worker;
    `--concurrency` on the command line overrides how many tasks it holds."""
    return {
        "broker_url": config["CELERY_BROKER_URL"],
        "broker_transport_options": {
            "visibility_timeout": config["CELERY_VISIBILITY_TIMEOUT"],
            "priority_steps": list(PRIORITIES),  # see webapp/jobs/priorities.py
            "sep": PRIORITY_SEPARATOR,
            "queue_order_strategy": "priority",
        },
        "broker_connection_retry_on_startup": True,
        "task_default_queue": DETECT_QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,  # but remote calls (scheduling.remote: the DeepStack endpoint's) answer
        "result_backend": config["CELERY_BROKER_URL"],
        "result_expires": 600,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_concurrency": concurrency(config["DETECT_BATCH"] or 1, config["DETECT_THREADS"]),
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }
