"""The Celery app, made the Flask way: configured from the app's `Config`, every task run inside
an app context (Flask's "Background Tasks with Celery" pattern)."""
from celery import Celery, Task
from flask import Flask

QUEUE = "detect"


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


def settings(config) -> dict:
    """Nothing lost, nothing doubled: a task is acknowledged only once it has finished (so a
    worker that dies hands it back), one at a time per worker process, and Redis gives an
    unacknowledged task to another worker after CELERY_VISIBILITY_TIMEOUT seconds."""
    return {
        "broker_url": config["CELERY_BROKER_URL"],
        "broker_transport_options": {"visibility_timeout": config["CELERY_VISIBILITY_TIMEOUT"]},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "worker_prefetch_multiplier": 1,
        # A worker process loads the model before its first task; a replacement process (after a
        # crash) may take that long without being killed as "not up" (Celery's default is 4 s).
        "worker_proc_alive_timeout": 300,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }
