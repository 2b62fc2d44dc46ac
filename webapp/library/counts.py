"""The counts the pages show, kept in step instead of recounted: photos and stored bytes per
user (`user.photos`, `user.stored_bytes`), labels per current run (`RunLabel`) and photos per
label (`UserLabel`). Changed inside the caller's transaction, with the change they follow;
`check_counts` recomputes them all and `rebuild_counts` rebuilds them."""
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from webapp.extensions import db
from webapp.models import Detection, Photo, Run, RunLabel, RunStatus, User, UserLabel


def count_created(user_id: int, delta: int = 1, stored_bytes: int = 0) -> tuple[int, int]:
    """Count photos (and the bytes they keep on disk) in or out of the user's totals; the totals
    after the change. The UPDATE locks the user's row until the commit, so uploads at once are
    counted one after the other (the quota check of an upload relies on it)."""
    return tuple(db.session.execute(
        sa.update(User).where(User.id == user_id)
        .values(photos=User.photos + delta, stored_bytes=User.stored_bytes + stored_bytes)
        .returning(User.photos, User.stored_bytes)).one())


def count_trashed(user_id: int, delta: int) -> None:
    """Count photos into (1) or out of (-1) the user's Trash; they stay in `photos` (quotas)."""
    db.session.execute(sa.update(User).where(User.id == user_id).values(trashed=User.trashed + delta))


def record_labels(run: Run, labels: dict[str, int], replace: bool = True) -> None:
    """A finished current run shows these labels (at its threshold): store them, count its
    photo. `replace=False` for a first run, which has no labels yet to take back."""
    if replace:
        forget_labels(run)
    if not labels:
        return
    db.session.execute(sa.insert(RunLabel), [
        {"run_id": run.id, "label": label, "user_id": run.user_id, "count": count, "created_at": run.created_at,
         "taken_at": run.taken_at}
        for label, count in labels.items()])
    insert = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(UserLabel)
    db.session.execute(
        insert.values([{"user_id": run.user_id, "label": label, "photos": 1} for label in labels])
        .on_conflict_do_update(index_elements=["user_id", "label"],
                               set_={"photos": UserLabel.photos + insert.excluded.photos}))


def forget_labels(run: Run) -> None:
    """The run no longer shows its labels (deleted, or no longer current). Its label rows are
    deleted first, which waits for a run committing them and returns what it removed."""
    labels = list(db.session.scalars(
        sa.delete(RunLabel).where(RunLabel.run_id == run.id).returning(RunLabel.label)))
    if not labels:
        return
    db.session.execute(sa.update(UserLabel).where(UserLabel.user_id == run.user_id, UserLabel.label.in_(labels))
                       .values(photos=UserLabel.photos - 1))
    db.session.execute(sa.delete(UserLabel).where(UserLabel.user_id == run.user_id, UserLabel.photos <= 0))


def runs_by_status() -> dict[RunStatus, int]:
    """How many runs there are in each status, all users together."""
    return dict(db.session.execute(sa.select(Run.status, sa.func.count()).group_by(Run.status)).tuples().all())


# ---- the consistency check ----

def _expected_labels():
    """(run id, label, user id, count) for every done current run, from its detections."""
    return (sa.select(Run.id, Detection.label, Run.user_id, sa.func.count())
            .join(Detection, Detection.run_id == Run.id)
            .where(Run.status == RunStatus.DONE, Run.current, Detection.confidence >= Run.conf)
            .group_by(Run.id, Detection.label, Run.user_id))


def check_counts() -> list[str]:
    """Recompute every kept count from the runs and detections; one line per difference.
    On PostgreSQL all of it is read from one snapshot, so work committed meanwhile is no
    difference; on SQLite run it while nothing is being analysed."""
    _one_snapshot()
    return _label_problems() + _current_run_problems() + _total_problems()


def _label_problems() -> list[str]:
    problems = []
    expected = {(a, label): (u, n) for a, label, u, n in db.session.execute(_expected_labels())}
    kept = {(a, label): (u, n) for a, label, u, n in db.session.execute(sa.select(
        RunLabel.run_id, RunLabel.label, RunLabel.user_id, RunLabel.count))}
    for key in sorted(set(expected) | set(kept)):
        if expected.get(key) != kept.get(key):
            problems.append(f"analysis {key[0]} label {key[1]!r}: kept {kept.get(key)}, "
                            f"detections say {expected.get(key)}")
    per_label: dict[tuple[int, str], int] = {}
    for (_, label), (user_id, _) in expected.items():
        per_label[(user_id, label)] = per_label.get((user_id, label), 0) + 1
    kept_labels = {(u, label): n for u, label, n in db.session.execute(
        sa.select(UserLabel.user_id, UserLabel.label, UserLabel.photos))}
    for key in sorted(set(per_label) | set(kept_labels)):
        if per_label.get(key, 0) != kept_labels.get(key, 0):
            problems.append(f"user {key[0]} label {key[1]!r}: kept {kept_labels.get(key, 0)} photos, "
                            f"analyses say {per_label.get(key, 0)}")
    return problems


def _current_run_problems() -> list[str]:
    current = sa.func.sum(sa.case((Run.current, 1), else_=0))
    problems = []
    for photo_id, trashed, runs, showing in db.session.execute(
            sa.select(Photo.id, Photo.trashed_at.is_not(None), sa.func.count(Run.id), current).select_from(Photo)
            .outerjoin(Run, Run.photo_id == Photo.id).group_by(Photo.id, Photo.trashed_at)):
        if not runs or (showing or 0) != (0 if trashed else 1):
            problems.append(f"photo {photo_id}: {runs} runs, {showing or 0} shown (every photo shows one run, "
                            "one in the Trash none)")
    return problems


def _total_problems() -> list[str]:
    problems = []
    in_trash = sa.func.sum(sa.case((Photo.trashed_at.is_not(None), 1), else_=0))
    totals = {u: (n, b, t) for u, n, b, t in db.session.execute(sa.select(
        Photo.user_id, sa.func.count(), sa.func.sum(Photo.stored_bytes), in_trash).group_by(Photo.user_id))}
    for user_id, kept_photos, kept_bytes, kept_trashed in db.session.execute(
            sa.select(User.id, User.photos, User.stored_bytes, User.trashed)):
        photos, stored, trashed = totals.get(user_id, (0, 0, 0))
        if kept_photos != photos:
            problems.append(f"user {user_id}: kept {kept_photos} photos, there are {photos}")
        if kept_trashed != (trashed or 0):
            problems.append(f"user {user_id}: kept {kept_trashed} photos in the Trash, there are {trashed or 0}")
        if kept_bytes != (stored or 0):
            problems.append(f"user {user_id}: kept {kept_bytes} bytes, photos say {stored or 0}")
    return problems


def _one_snapshot() -> None:
    if db.engine.dialect.name == "postgresql":
        db.session.rollback()
        db.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


def rebuild_counts() -> None:
    """Recompute every kept count from the runs and detections (commits). Runs that finish or
    are deleted meanwhile wait for it (a table lock on PostgreSQL, SQLite's one writer)."""
    db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text('LOCK TABLE analysis_label, user_label, "user" IN SHARE ROW EXCLUSIVE MODE'))
    db.session.execute(sa.delete(RunLabel))
    db.session.execute(sa.delete(UserLabel))
    db.session.execute(sa.insert(RunLabel).from_select(
        ["analysis_id", "label", "user_id", "count", "created_at", "taken_at"],
        _expected_labels().add_columns(Run.created_at, Run.taken_at).group_by(Run.created_at, Run.taken_at)))
    db.session.execute(sa.insert(UserLabel).from_select(
        ["user_id", "label", "photos"],
        sa.select(RunLabel.user_id, RunLabel.label, sa.func.count()).group_by(RunLabel.user_id, RunLabel.label)))
    counted = sa.select(sa.func.count()).select_from(Photo).where(Photo.user_id == User.id).scalar_subquery()
    stored = (sa.select(sa.func.coalesce(sa.func.sum(Photo.stored_bytes), 0)).where(Photo.user_id == User.id)
              .scalar_subquery())
    trashed = (sa.select(sa.func.count()).select_from(Photo)
               .where(Photo.user_id == User.id, Photo.trashed_at.is_not(None)).scalar_subquery())
    db.session.execute(sa.update(User).values(photos=counted, stored_bytes=stored, trashed=trashed))
    db.session.commit()
