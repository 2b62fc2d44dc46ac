"""How a run is queued for detection: `queue_run`, the one call that uploads, re-runs, retries,
the import and recovery make, and `wait_for_runs`, how a caller waits for runs to finish (an API
upload with `?wait=true`, a DeepStack call that keeps its photo)."""
import time
from concurrent.futures import Future, wait
from typing import Optional

import numpy as np
import sqlalchemy as sa

from webapp.extensions import db
from webapp.jobs import pipeline
from webapp.jobs.scheduling import background, get_runner
from webapp.jobs.stream import Stream
from webapp.models import Run, RunStatus

# How often a waiting caller looks at runs Celery workers finish: soon at first (a photo takes
# tens of milliseconds), then less and less often, up to the longest interval.
WAIT_POLL_SECONDS = (0.01, 0.25)


# The task's name travels in broker messages (it is where the function lived first): keep it.
@background(name="webapp.analyses.pipeline.run_analysis", stream=Stream)
def run_analysis(run_id: int, image_bgr: Optional[np.ndarray] = None, redelivered: bool = False) -> None:
    """The detection job: one run through the pipeline's stages (batched with others by the stream)."""
    pipeline.run_one(run_id, image_bgr, redelivered)


def check_queue() -> None:
    """Raise QueueUnavailable unless runs can be queued now (the broker answers, in Celery mode)."""
    get_runner().check_broker()


def queue_run(run_id: int, priority: int = 0, image_bgr: Optional[np.ndarray] = None) -> Optional[Future]:
    """Queue the run for detection at this priority (see priorities.py): only its id travels; a
    run in this process also gets the decoded photo when the caller has it. Returns the Future
    of a run in this process (None inline or on Celery); raises QueueUnavailable."""
    runner = get_runner()
    local = {"image_bgr": image_bgr} if image_bgr is not None and runner.in_process else None
    return runner.submit(run_analysis, run_id, local=local, priority=priority)


def wait_for_runs(ids: list[int], futures: list[Future], timeout: Optional[float]) -> bool:
    """Block until these runs are finished; False if `timeout` ran out first. Runs in this
    process are waited for by their Futures; Celery's by watching their rows."""
    if get_runner().in_process:
        _, not_done = wait(futures, timeout=timeout)
        return not not_done
    deadline = time.monotonic() + (timeout or 0)
    interval, longest = WAIT_POLL_SECONDS
    while True:
        db.session.rollback()  # a new transaction, so the workers' commits are seen
        active = db.session.scalar(sa.select(sa.func.count()).select_from(Run).where(
            Run.id.in_(ids), Run.status.in_(RunStatus.active())))
        if not active or time.monotonic() >= deadline:
            return not active
        time.sleep(interval)
        interval = min(interval * 1.5, longest)
