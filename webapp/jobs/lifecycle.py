"""What a process does when it starts and when it stops, the same for a gunicorn worker (its
`post_worker_init` / `worker_exit` hooks in gunicorn.conf.py) and a Celery worker (its signals in
webapp/worker.py)."""
import logging
import threading
from pathlib import Path

from flask import Flask

from webapp import storage
from webapp.extensions import db
from webapp.detection.registry import get_detector, runs_here
from webapp.jobs.processes import yield_cpu
from webapp.jobs.recovery import requeue_interrupted, requeue_lost
from webapp.jobs.reports import report, withdraw_report
from webapp.jobs.scheduling import get_runner
from webapp.jobs.stream import batch_size
from webapp.vision.detector import ModelUnavailable

logger = logging.getLogger(__name__)


def start_process(app: Flask) -> None:
    """Once, when the process starts: queue again what stopped processes left behind (a Celery
    worker: work whose message or worker is gone; any other process: runs a dead process of this
    host had), remove temporary photos a killed process left, and where this process detects,
    load and warm the model so the first photo does not wait for it. A web process only loads a
    model already on disk (one still to be downloaded is fetched when the first photo comes); a
    Celery worker loads it whatever it takes, then reports it to the web tier."""
    with app.app_context():
        worker = app.config["DETECTION_WORKER"]
        if worker:
            requeue_lost()
            _sweeper.start(app)
        else:
            requeue_interrupted()
            storage.sweep_temporary()
        if runs_here(app) and (worker or Path(get_detector(app).settings.model).exists()):
            # in a thread of detection's priority: the threads the runtime starts for the model
            # (OpenVINO's, ONNX Runtime's) take the priority of the thread that starts them
            warming = threading.Thread(target=_warm_at_low_priority, args=(app,), name="warm-model")
            warming.start()
            warming.join()
        report(app)


class _LostWorkSweeper:
    """In a Celery worker, every LOST_WORK_SECONDS: `requeue_lost`, so work whose message is gone
    is run by the workers already running, not only by the next one to start; and the worker's
    report written again (a Redis restarted without its data forgot it: the web tier would say
    no worker is running). Several workers
    sweeping at once queue a run twice at most; its claim runs it once."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, app: Flask) -> None:
        if self._thread is None and app.config["LOST_WORK_SECONDS"] > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sweep, args=(app,), daemon=True, name="lost-work")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread = None

    def _sweep(self, app: Flask) -> None:
        while not self._stop.wait(app.config["LOST_WORK_SECONDS"]):
            with app.app_context():
                try:
                    report(app)
                    requeue_lost()
                except Exception:  # noqa: BLE001 - the broker or the database is down: next time
                    logger.warning("Could not look for lost work (the broker or the database is down); "
                                   "trying again in %s s", app.config["LOST_WORK_SECONDS"], exc_info=True)
                finally:
                    db.session.remove()


_sweeper = _LostWorkSweeper()


def _warm_at_low_priority(app: Flask) -> None:
    yield_cpu(app.config["DETECT_NICE"])
    with app.app_context():
        _warm_model(app)


def _warm_model(app: Flask) -> None:
    detector = get_detector(app)
    try:
        detector.load()
        detector.warm_up(batch_size(app, load=True))
    except ModelUnavailable as exc:
        logger.error("Detection is unavailable: %s", exc)  # runs fail with it, and can be retried


def stop_process(app: Flask, finish: bool) -> None:
    """When the process stops: what is being detected finishes; queued work finishes too
    (`finish`: a Celery worker's warm shutdown, whose tasks go back to the broker otherwise) or
    stays pending for the next process's start (a gunicorn worker). A Celery worker withdraws
    its report."""
    _sweeper.stop()
    get_runner(app).close(finish=finish, timeout=None if finish else 20)
    if app.config["DETECTION_WORKER"]:
        withdraw_report(app)
