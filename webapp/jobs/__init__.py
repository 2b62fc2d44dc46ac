"""Scheduling work off the request. The scheduler knows nothing of what it runs: the caller
hands it a function and its arguments, which run inside an app context.

`ANALYSIS_EXECUTOR` picks how: "thread" (a small thread pool in each web process, the embedded
default) or "sync" (inside the request; for tests and one-off scripts).
"""
import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional

import psutil
from flask import Flask

from webapp.config import ConfigurationError
from webapp.extensions import db

logger = logging.getLogger(__name__)

EXTENSION_KEY = "jobs"
EXECUTORS = ("thread", "sync")


def worker_id(pid: Optional[int] = None) -> str:
    """host:pid:start-time of a process; the start time tells a reused pid from the original."""
    process = psutil.Process(pid or os.getpid())
    return f"{socket.gethostname()}:{process.pid}:{int(process.create_time())}"


def is_alive(worker: str) -> bool:
    """Whether the process named by `worker_id` still runs (another host's: assumed so)."""
    host, pid, _ = (worker.rsplit(":", 2) + ["", ""])[:3]
    if host != socket.gethostname():
        return True  # another machine's worker: not ours to judge
    try:
        return worker_id(int(pid)) == worker
    except (ValueError, psutil.Error):
        return False


class JobRunner:
    def __init__(self, app: Flask):
        self.app = app
        self.mode = app.config["ANALYSIS_EXECUTOR"]
        if self.mode not in EXECUTORS:
            raise ConfigurationError(
                f"Configuration error: ANALYSIS_EXECUTOR must be one of {', '.join(EXECUTORS)}, "
                f"not {self.mode!r}."
            )
        self._executor: Optional[ThreadPoolExecutor] = None
        self._futures: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args) -> Optional[Future]:
        """Run `fn(*args)` in an app context: now ("sync", returns None) or on a worker thread
        (returns its Future)."""
        if self.mode == "sync":
            fn(*args)
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.app.config["ANALYSIS_WORKERS"], thread_name_prefix="analysis"
                )
            future = self._executor.submit(self._run, fn, args)
            self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        with self.app.app_context():
            try:
                fn(*args)
            except Exception:
                logger.exception("Background job %s failed", getattr(fn, "__name__", fn))
            finally:
                db.session.remove()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until every queued job has finished; False if `timeout` ran out first."""
        _, not_done = wait(list(self._futures), timeout=timeout)
        return not not_done


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = JobRunner(app)


def get_runner(app: Flask) -> JobRunner:
    return app.extensions[EXTENSION_KEY]
