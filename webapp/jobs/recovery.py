"""Work a stopped process left behind, found and queued again (or given back to its owner):

- **interrupted**: runs pending or running in a process of this host that is gone (a restart, a
  gunicorn worker replaced after `max_requests`, kill -9). A process that detects them itself
  takes them over (`requeue_interrupted`, at a gunicorn worker's start); a command that cannot
  run them marks them failed, to be retried (`fail_interrupted`, `flask recover-interrupted`).
- **lost**: runs on the Celery broker whose message is gone (Redis without persistence, a web
  process killed between commit and publish) or whose worker died (`requeue_lost`, at a Celery
  worker's start).

Every claim is one conditional UPDATE, so of several processes starting at once one takes a run,
and a duplicate message finds its run taken and does nothing."""
import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import OperationalError, ProgrammingError

from webapp.extensions import db
from webapp.jobs.celery import queue_keys
from webapp.jobs.priorities import FairShare
from webapp.jobs.processes import CELERY_OWNER, is_alive, process_state
from webapp.jobs.queue import detect_run, queue_run
from webapp.jobs.scheduling import get_runner
from webapp.models import Run, RunStatus, utcnow

logger = logging.getLogger(__name__)

INTERRUPTED = "Interrupted by a server restart before it finished. It can be retried."


def _interrupted() -> list[Run]:
    """Runs pending or running in a process that is gone, oldest first (not the broker's: Celery
    hands those to another worker)."""
    try:
        active = db.session.scalars(sa.select(Run).where(
            Run.status.in_(RunStatus.active()),
            sa.or_(Run.worker.is_(None), ~Run.worker.startswith(CELERY_OWNER))).order_by(Run.id)).all()
    except (OperationalError, ProgrammingError):
        db.session.rollback()
        logger.warning("No analysis table yet: run `flask db upgrade`")
        return []
    return [r for r in active if not r.worker or not is_alive(r.worker)]


def fail_interrupted() -> int:
    """Mark the interrupted runs failed, to be retried; how many."""
    orphans = _interrupted()
    for run in orphans:
        run.fail(INTERRUPTED)
    db.session.commit()
    if orphans:
        logger.warning("Marked %d interrupted runs as failed", len(orphans))
    return len(orphans)


def requeue_interrupted() -> int:
    """Take the interrupted runs over and queue them in this process, each user's at a lower
    priority the more they have (a photo that keeps killing its process is given up after
    ANALYSIS_MAX_ATTEMPTS starts); how many."""
    runner = get_runner()
    taken: list[tuple[int, int]] = []
    for run in _interrupted():
        previous = run.worker
        claimed = db.session.execute(
            sa.update(Run).where(
                Run.id == run.id, Run.status.in_(RunStatus.active()),
                Run.worker.is_(None) if previous is None else Run.worker == previous)
            .values(status=RunStatus.PENDING, worker=runner.queued_by(), started_at=None)
            .execution_options(synchronize_session=False)).rowcount
        if claimed:
            taken.append((run.id, run.user_id))
    db.session.commit()
    shares = FairShare.of_each([user_id for _, user_id in taken])
    for run_id, user_id in taken:  # oldest first, each user's lower the more they have
        queue_run(run_id, shares[user_id].next())
        shares[user_id].queued_one()
    if taken:
        logger.warning("Queued again %d runs a stopped process left unfinished", len(taken))
    return len(taken)


def requeue_lost() -> int:
    """With Celery: queue again what no message will bring back soon. A run left running by a
    dead process of this host, or by another host's past the visibility timeout, goes back to
    pending. A pending run is either waiting on the broker or held by a live worker (fetched
    ahead of its turn); when fewer wait than there are pending runs no live worker holds (a
    message was lost, or a worker that died had fetched it: its message comes back only after
    the visibility timeout, an hour by default), each of those is queued again (one that was in
    fact waiting runs once: the second message finds it taken). How many."""
    runner = get_runner()
    expired = utcnow() - timedelta(seconds=current_app.config["CELERY_VISIBILITY_TIMEOUT"] + 60)
    running = db.session.scalars(sa.select(Run).where(
        Run.status == RunStatus.RUNNING, Run.worker.startswith(f"{CELERY_OWNER}:"))).all()
    stale = [r for r in running if process_state(r.worker) == "dead"
             or (process_state(r.worker) == "unknown" and r.started_at and r.started_at < expired)]
    for run in stale:
        run.status, run.worker = RunStatus.PENDING, CELERY_OWNER
    db.session.commit()
    pending = set(db.session.scalars(sa.select(Run.id).where(
        Run.status == RunStatus.PENDING, Run.worker == CELERY_OWNER)).all())
    held = runner.held_by_workers(detect_run.celery_task.name)
    waiting = runner.waiting_count(queue_keys()) or 0
    if held is None:  # the workers could not be asked: every message delivered counts as held
        unheld, expected = pending, len(pending) + len(running) - len(stale)
        waiting += runner.unacknowledged_count() or 0
    else:
        unheld = pending - held
        expected = len(unheld)
    lost = unheld if waiting < expected else {r.id for r in stale}
    for run_id in sorted(lost):
        queue_run(run_id)
    if lost:
        logger.warning("Queued %d runs again that no task on the broker would have run", len(lost))
    return len(lost)
