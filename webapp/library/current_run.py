"""Which run the gallery shows for a photo: its current run, one per photo, the run that
finished last (or the first until one has). It changes only under the photo's lock, which
deletes take too, so a photo never shows two runs, or none."""
from collections import Counter
from typing import Optional

import sqlalchemy as sa

from webapp.extensions import db
from webapp.library.counts import forget_labels, record_labels
from webapp.models import Photo, Run


def lock_photos(photo_ids) -> list[int]:
    """Lock these photos' rows until the commit, in id order (so two writers never wait on each
    other crosswise). The ids still there."""
    ids = set(photo_ids)
    if db.engine.dialect.name == "sqlite":  # no row locks: a write takes its one write lock, held to the commit
        return sorted(db.session.scalars(sa.update(Photo).where(Photo.id.in_(ids)).values(id=Photo.id)
                                         .returning(Photo.id).execution_options(synchronize_session=False)))
    return list(db.session.scalars(sa.select(Photo.id).where(Photo.id.in_(ids)).order_by(Photo.id).with_for_update()))


def current_run(photo_id: int) -> Optional[Run]:
    """The photo's current run (None once the photo is gone)."""
    return db.session.scalar(sa.select(Run).where(Run.photo_id == photo_id, Run.current))


def latest_finished(runs: list[Run]) -> Optional[Run]:
    done = [r for r in runs if r.is_done]
    return max(done, key=lambda r: (r.finished_at, r.id)) if done else None


def make_current(run: Run, labels: Optional[Counter] = None) -> None:
    """Make `run` its photo's current run (the caller holds the photo's lock and commits): the
    others stop being current and their labels stop counting; a finished run's labels
    (`labels`, else counted from its detections) count instead."""
    for other in db.session.scalars(sa.select(Run).where(
            Run.photo_id == run.photo_id, Run.current, Run.id != run.id)):
        forget_labels(other)
        other.current = False
    if not run.current:
        run.current = True
        if run.is_done:
            record_labels(run, labels if labels is not None else run.label_counts(), replace=False)
    db.session.flush()
