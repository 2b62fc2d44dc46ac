"""Running analyses off the request: an in-process background worker by default.

`ANALYSIS_EXECUTOR` picks how: "thread" (a small thread pool in each web process, the embedded
default) or "sync" (inside the request; for tests and one-off scripts).
"""
import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Optional

import numpy as np
import psutil
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError

from webapp.extensions import db
from webapp.jobs.runner import fail_analysis, run_analysis
from webapp.models import Analysis, AnalysisStatus
from webapp.settings import ConfigurationError

logger = logging.getLogger(__name__)

EXTENSION_KEY = "jobs"
INTERRUPTED = "Interrupted by a server restart before it finished. Please upload the photo again."


def worker_id(pid: Optional[int] = None) -> str:
    """host:pid:start-time of a process; the start time tells a reused pid from the original."""
    process = psutil.Process(pid or os.getpid())
    return f"{socket.gethostname()}:{process.pid}:{int(process.create_time())}"


def _is_alive(worker: str) -> bool:
    host, pid, _ = (worker.rsplit(":", 2) + ["", ""])[:3]
    if host != socket.gethostname():
        return True  # another machine's worker: not ours to judge
    try:
        return worker_id(int(pid)) == worker
    except (ValueError, psutil.Error):
        return False


class JobRunner:
    def __init__(self, app):
        self.app = app
        self.mode = app.config["ANALYSIS_EXECUTOR"]
        if self.mode not in ("thread", "sync"):
            raise ConfigurationError(
                f"Configuration error: ANALYSIS_EXECUTOR must be thread or sync, not {self.mode!r}."
            )
        self._executor: Optional[ThreadPoolExecutor] = None
        self._futures: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, analysis_id: int, image_bgr: Optional[np.ndarray] = None) -> Optional[Future]:
        """Queue an analysis; its Future, or None when it already ran inline ("sync").
        `image_bgr` (the decoded upright image) saves decoding it again."""
        if self.mode == "sync":
            run_analysis(analysis_id, image_bgr)
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.app.config["ANALYSIS_WORKERS"], thread_name_prefix="analysis"
                )
            future = self._executor.submit(self._run, analysis_id, image_bgr)
            self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def _run(self, analysis_id: int, image_bgr: Optional[np.ndarray]) -> None:
        with self.app.app_context():
            try:
                run_analysis(analysis_id, image_bgr)
            finally:
                db.session.remove()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until every queued analysis has finished; False if `timeout` ran out first."""
        _, not_done = wait(list(self._futures), timeout=timeout)
        return not not_done


def recover_interrupted(app) -> int:
    """Mark as failed the pending/running analyses whose process on this host is gone."""
    with app.app_context():
        try:
            active = db.session.scalars(
                sa.select(Analysis).where(Analysis.status.in_(AnalysisStatus.ACTIVE))
            ).all()
        except (OperationalError, ProgrammingError):
            db.session.rollback()  # no schema yet (before `flask db upgrade`)
            return 0
        orphans = [a for a in active if not a.worker or not _is_alive(a.worker)]
        for analysis in orphans:
            fail_analysis(analysis, INTERRUPTED)
        db.session.commit()
        db.session.remove()
    if orphans:
        logger.warning("Marked %d interrupted analyses as failed", len(orphans))
    return len(orphans)


def init_app(app) -> None:
    app.extensions[EXTENSION_KEY] = JobRunner(app)
    recover_interrupted(app)


def get_runner(app) -> JobRunner:
    return app.extensions[EXTENSION_KEY]
