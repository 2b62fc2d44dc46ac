"""Each user's fair share of detection. A user's runs are queued at a lower priority the more of
theirs are queued already: the first few at the top (0), then 3, 6, 9. Another user's first
photos therefore go ahead of the rest of a long backlog, in the thread executor's stream and on
the Celery broker alike (Celery's Redis transport keeps a list per priority), and nothing is
held back while no one else is waiting. Strict priority, without ageing."""
from collections import Counter

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Run, RunStatus

PRIORITIES = (0, 3, 6, 9)  # 0 first, as Celery's Redis transport orders them
FAIR_SHARE_STEPS = ((8, 0), (32, 3), (128, 6))  # (queued below this many, priority)


def fair_priority(queued: int) -> int:
    """The priority of a user's next run when `queued` of theirs are pending or running."""
    for below, priority in FAIR_SHARE_STEPS:
        if queued < below:
            return priority
    return PRIORITIES[-1]


def queued_runs(user_id: int) -> int:
    """How many of the user's runs are pending or running."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Run).where(
        Run.user_id == user_id, Run.status.in_(RunStatus.active()))) or 0


class FairShare:
    """The priorities of the runs one user queues now, one after another (an upload, a retry,
    an import, recovery). `waiting`: how many of the user's pending runs are about to be queued
    here (a retry's claimed runs, a re-run's new run): not counted as queued before their turn.
    The count is taken again (not just one more) while it still decides the priority, so uploads
    at once from one user see each other's runs."""

    def __init__(self, user_id: int, waiting: int = 0):
        self.user_id, self.waiting = user_id, waiting
        self.queued = queued_runs(user_id) - waiting

    @classmethod
    def of_each(cls, user_ids: list[int]) -> dict[int, "FairShare"]:
        """{user id: their share} for runs of these users (one id per run) about to be queued,
        pending already: each user's are their `waiting`."""
        return {user_id: cls(user_id, waiting=n) for user_id, n in Counter(user_ids).items()}

    def next(self) -> int:
        """The priority of the next run; call `queued_one` once it is queued."""
        return fair_priority(self.queued)

    def queued_one(self) -> None:
        self.waiting = max(0, self.waiting - 1)
        if self.queued < FAIR_SHARE_STEPS[-1][0]:
            self.queued = queued_runs(self.user_id) - self.waiting
        else:
            self.queued += 1
