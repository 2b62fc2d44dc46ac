"""How a run is queued for detection: `queue_run`, the one call that uploads, re-runs, retries,
the import and recovery make, and `wait_for_runs`, how a caller waits for runs to finish (an API
upload with `?wait=true`, a DeepStack call that keeps its photo)."""
import time
from concurrent.futures import Future, wait
from typing import Callable, Optional, Sequence

import sqlalchemy as sa
from flask import current_app

from webapp.extensions import db
from webapp.jobs import news, pipeline
from webapp.jobs.processes import stopping
from webapp.jobs.scheduling import background, get_runner
from webapp.jobs.stream import Stream
from webapp.models import Run, RunStatus

STOP_CHECK_SECONDS = 0.25  # a waiting caller looks this often whether the process is stopping


# The task's name travels in broker messages (it is where the function lived first): keep it.
@background(name="webapp.analyses.pipeline.run_analysis", stream=Stream)
def detect_run(run_id: int, redelivered: bool = False) -> None:
    """The detection job: one run through the pipeline's stages (batched with others by the stream)."""
    pipeline.run_one(run_id, redelivered)


def check_queue() -> None:
    """Raise QueueUnavailable unless runs can be queued now (the broker answers, in Celery mode)."""
    get_runner().check_broker()


def queue_run(run_id: int, priority: int = 0) -> Optional[Future]:
    """Queue the run for detection at this priority (see priorities.py): only its id travels (the
    photo is read and decoded by the detection stream). Returns the Future of a run in this
    process (None inline or on Celery); raises QueueUnavailable."""
    return get_runner().submit(detect_run, run_id, priority=priority)


def wait_for_runs(ids: list[int], futures: Sequence[Future] = (), timeout: Optional[float] = None,
                  progress: Optional[Callable[[int], None]] = None) -> bool:
    """Block until these runs are finished; False if `timeout` ran out first (or this process is
    stopping). Runs in this process are waited for by their Futures when the caller has them;
    otherwise (Celery, an import) their rows are read whenever news of finished runs comes
    (`news`), and at least every news.CHECK_SECONDS, telling `progress` how many more have
    finished each time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if get_runner().in_process and futures and progress is None:
        while True:
            _, not_done = wait(futures, timeout=_slice(STOP_CHECK_SECONDS, deadline))
            if not not_done or _given_up(deadline):
                return not not_done
    news.listen(current_app)
    board = news.board()
    finished, total, heard, read_at = 0, 0, -1, 0.0
    while True:
        if board.last != heard or time.monotonic() - read_at >= news.CHECK_SECONDS:
            heard, read_at = board.last, time.monotonic()
            db.session.rollback()  # a new transaction, so the workers' commits are seen
            counts = run_statuses(ids)
            now = sum(n for status, n in counts.items() if status not in RunStatus.active())
            if progress is not None:
                progress(now - finished)
            finished, total = now, sum(counts.values())
            if finished >= total:
                return True
        if _given_up(deadline):
            return False
        board.wait(heard, _slice(STOP_CHECK_SECONDS, deadline))


def _slice(seconds: float, deadline: Optional[float]) -> float:
    return seconds if deadline is None else max(0.0, min(seconds, deadline - time.monotonic()))


def _given_up(deadline: Optional[float]) -> bool:
    """The wait's time is out, or this process is stopping (it answers with what it has)."""
    return (deadline is not None and time.monotonic() >= deadline) or stopping()


def run_statuses(ids: list[int]) -> dict[RunStatus, int]:
    """How many of these runs are in each status (a run deleted meanwhile is in none)."""
    counts: dict[RunStatus, int] = {}
    for start in range(0, len(ids), 1000):
        for status, n in db.session.execute(sa.select(Run.status, sa.func.count()).where(
                Run.id.in_(ids[start:start + 1000])).group_by(Run.status)):
            counts[status] = counts.get(status, 0) + n
    return counts
