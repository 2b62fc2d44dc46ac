"""A user's history, at any size: pages of analyses by keyset (an opaque cursor, never an
OFFSET over the history), filtered by labels, status and dates on indexes, and the counts the
pages show (photos per user, photos per label), kept in step when an analysis is created,
finishes or is deleted instead of being recounted. `check_counts` recomputes them all.

Like the services, functions that change counts run inside the caller's transaction, which
commits them with the change they follow.
"""
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from webapp.extensions import db
from webapp.models import Analysis, AnalysisLabel, AnalysisStatus, Detection, Photo, User, UserLabel

MAX_PAGE = 100  # `page` is a compatibility alias: it may skip at most this many pages
MAX_LABELS = 10  # labels one listing may ask for at once
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # how a day is written in a query: YYYY-MM-DD


class BadCursor(ValueError):
    """The cursor is not one this app made."""


@dataclass(frozen=True)
class Filters:
    labels: tuple[str, ...] = ()  # photos showing every one of these
    status: Optional[AnalysisStatus] = None
    since: Optional[datetime] = None  # created at or after
    until: Optional[datetime] = None  # created before
    oldest_first: bool = False

    @property
    def narrowed(self) -> bool:
        return bool(self.labels or self.status or self.since or self.until)


def filters(labels=(), status=None, first_day: Optional[date] = None, last_day: Optional[date] = None,
            oldest_first: bool = False) -> Filters:
    """Filters from what people type: label names, and a range of whole days (UTC, inclusive)."""
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=timezone.utc)

    names = (name.replace("\x00", "").strip() for name in labels if name)
    return Filters(
        labels=tuple(dict.fromkeys(name for name in names if name))[:MAX_LABELS],
        status=status,
        since=midnight(first_day) if first_day else None,
        until=midnight(last_day + timedelta(days=1)) if last_day and last_day < date.max else None,
        oldest_first=oldest_first,
    )


@dataclass
class Page:
    items: list[Analysis] = field(default_factory=list)
    next_cursor: Optional[str] = None
    number: int = 1  # 1 for the first page, counted along the cursors


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="history-cursor")


def encode_cursor(analysis: Analysis, user: User, filters: Filters, number: int) -> str:
    """Where the page after `analysis` starts, signed: for this user and this order only."""
    return _signer().dumps({"c": analysis.created_at.astimezone(timezone.utc).isoformat(), "i": analysis.id,
                            "u": user.id, "o": filters.oldest_first, "p": number})


def decode_cursor(token: str, user: User, filters: Filters) -> tuple[datetime, int, int]:
    """(created_at, id, page number) of a cursor this app made for this user and order."""
    try:
        data = _signer().loads(token)
        moment = datetime.fromisoformat(data["c"]).astimezone(timezone.utc)
        ident, number = data["i"], data["p"]
        if type(ident) is not int or type(number) is not int:
            raise ValueError(token)
    except (BadData, ValueError, TypeError, KeyError, OverflowError) as exc:
        raise BadCursor("This cursor is not valid: use the `next` link of a page.") from exc
    if data.get("u") != user.id or data.get("o") != filters.oldest_first:
        raise BadCursor("This cursor belongs to another listing (another order or user): use the "
                        "`next` link of this one.")
    return moment, ident, number


def page(user: User, filters: Filters = Filters(), cursor: Optional[str] = None, per_page: int = 24,
         skip_pages: int = 0) -> Page:
    """One page of the user's analyses, newest (or oldest) first, after `cursor`. Raises BadCursor."""
    stmt, created, ident = _ordered(user, filters)
    number = 1
    if cursor:
        at, last_id, number = decode_cursor(cursor, user, filters)
        stmt = stmt.where(_after(created, ident, at, last_id, filters.oldest_first))
    if skip_pages:
        skip_pages = min(skip_pages, MAX_PAGE)
        stmt, number = stmt.offset(skip_pages * per_page), number + skip_pages
    rows = list(db.session.scalars(stmt.limit(per_page + 1)))
    items = rows[:per_page]
    following = encode_cursor(items[-1], user, filters, number + 1) if len(rows) > per_page else None
    return Page(items, following, number)


def neighbours(user: User, filters: Filters, analysis: Analysis) -> tuple[Optional[Analysis], Optional[Analysis]]:
    """The analyses just before and just after `analysis` in the listing `filters` gives (as the
    gallery shows it, same order), or None at either end: the detail page's previous and next.
    Each is one row read along the listing's index, from where `analysis` sits in it (whether
    or not it matches the filter itself)."""
    def first_after(wanted: Filters) -> Optional[Analysis]:
        stmt, created, ident = _ordered(user, wanted)
        return db.session.scalars(stmt.where(
            _after(created, ident, analysis.created_at, analysis.id, wanted.oldest_first)).limit(1)).first()

    backwards = Filters(filters.labels, filters.status, filters.since, filters.until, not filters.oldest_first)
    return first_after(backwards), first_after(filters)


def count(user: User, filters: Filters) -> int:
    """How many analyses match: a kept count where there is one, else counted."""
    kept = total(user, filters)
    if kept is not None:
        return kept
    stmt = _ordered(user, filters)[0].order_by(None)
    return db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0


def select_all(user: User, filters: Filters = Filters()):
    """Every analysis that matches, in order (exports)."""
    return _ordered(user, filters)[0]


def _ordered(user: User, filters: Filters):
    """The filtered select, ordered along the index that serves it, with its ordering columns."""
    if filters.labels:
        if filters.status not in (None, AnalysisStatus.DONE):
            return sa.select(Analysis).where(sa.false()), Analysis.created_at, Analysis.id
        driver = aliased(AnalysisLabel)
        first, *others = sorted(filters.labels, key=lambda name: label_photos(user, name))
        stmt = (sa.select(Analysis).join(driver, driver.analysis_id == Analysis.id)
                .where(driver.user_id == user.id, driver.label == first))
        for other in others:  # each a primary-key lookup of the driving row's analysis
            stmt = stmt.where(sa.exists().where(AnalysisLabel.analysis_id == driver.analysis_id,
                                                AnalysisLabel.label == other))
        created, ident = driver.created_at, driver.analysis_id
    else:
        stmt = sa.select(Analysis).where(Analysis.user_id == user.id, Analysis.shown)  # one per photo
        if filters.status:
            stmt = stmt.where(Analysis.status == filters.status)
        created, ident = Analysis.created_at, Analysis.id
    if filters.since:
        stmt = stmt.where(created >= filters.since)
    if filters.until:
        stmt = stmt.where(created < filters.until)
    order = (created.asc(), ident.asc()) if filters.oldest_first else (created.desc(), ident.desc())
    return stmt.order_by(*order), created, ident


def _after(created, ident, at: datetime, last_id: int, ascending: bool):
    """Rows after (at, last_id) in the page order, written so that the index range starts there."""
    if ascending:
        return sa.and_(created >= at, sa.or_(created > at, ident > last_id))
    return sa.and_(created <= at, sa.or_(created < at, ident < last_id))


# ---- counts shown on pages ----

def label_photos(user: User, label: str) -> int:
    return db.session.scalar(sa.select(UserLabel.photos).where(
        UserLabel.user_id == user.id, UserLabel.label == label)) or 0


def label_summary(user: User) -> list[tuple[str, int]]:
    """Every label of the user's photos with how many show it, most common first."""
    rows = db.session.execute(sa.select(UserLabel.label, UserLabel.photos).where(
        UserLabel.user_id == user.id, UserLabel.photos > 0)).all()
    return sorted(((label, n) for label, n in rows), key=lambda r: (-r[1], r[0]))


CO_LABELS_UP_TO = 5000  # photos a label filter may match for the filter bar to count labels among them


def co_labels(user: User, filters: Filters) -> Optional[dict[str, int]]:
    """{label: photos} among the photos a label filter matches (what adding each label would
    leave), or None when the filter may match more than CO_LABELS_UP_TO photos (then counting
    them would cost more than a page should)."""
    if not filters.labels or min(label_photos(user, name) for name in filters.labels) > CO_LABELS_UP_TO:
        return None
    matching = _ordered(user, filters)[0].order_by(None).with_only_columns(Analysis.id).subquery()
    return dict(db.session.execute(
        sa.select(AnalysisLabel.label, sa.func.count()).where(AnalysisLabel.analysis_id.in_(sa.select(matching)))
        .group_by(AnalysisLabel.label)).tuples().all())


def labels_of(analyses: list[Analysis]) -> dict[int, list[tuple[str, int]]]:
    """{analysis id: [(label, count), ...]} for a page of analyses, most boxes first."""
    chips: dict[int, list[tuple[str, int]]] = {a.id: [] for a in analyses}
    if chips:
        rows = db.session.execute(sa.select(AnalysisLabel.analysis_id, AnalysisLabel.label, AnalysisLabel.count)
                                  .where(AnalysisLabel.analysis_id.in_(list(chips)))).all()
        for analysis_id, label, count in rows:
            chips[analysis_id].append((label, count))
    for found in chips.values():
        found.sort(key=lambda c: (-c[1], c[0]))
    return chips


def total(user: User, filters: Filters) -> Optional[int]:
    """How many analyses match, where a kept count says so (none filter, or one label alone)."""
    if not filters.narrowed:
        return db.session.scalar(sa.select(User.photos).where(User.id == user.id)) or 0
    if len(filters.labels) == 1 and not (filters.since or filters.until) and filters.status in (None, "done"):
        return label_photos(user, filters.labels[0])
    return None


# ---- keeping the counts (inside the caller's transaction) ----

def count_created(user_id: int, delta: int = 1, stored_bytes: int = 0) -> tuple[int, int]:
    """Count photos (and the bytes they keep on disk) in or out of the user's totals; the totals
    after the change. The UPDATE locks the user's row until the commit, so uploads at once are
    counted one after the other (the quota check in `accept_upload` relies on it)."""
    return tuple(db.session.execute(
        sa.update(User).where(User.id == user_id)
        .values(photos=User.photos + delta, stored_bytes=User.stored_bytes + stored_bytes)
        .returning(User.photos, User.stored_bytes)).one())


def record_labels(analysis: Analysis, labels: dict[str, int], replace: bool = True) -> None:
    """A finished analysis shows these labels (at its threshold): store them, count its photo.
    `replace=False` for a first run, which has no labels yet to take back."""
    if replace:
        forget_labels(analysis)
    if not labels:
        return
    db.session.execute(sa.insert(AnalysisLabel), [
        {"analysis_id": analysis.id, "label": label, "user_id": analysis.user_id, "count": count,
         "created_at": analysis.created_at} for label, count in labels.items()])
    insert = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(UserLabel)
    db.session.execute(
        insert.values([{"user_id": analysis.user_id, "label": label, "photos": 1} for label in labels])
        .on_conflict_do_update(index_elements=["user_id", "label"],
                               set_={"photos": UserLabel.photos + insert.excluded.photos}))


def forget_labels(analysis: Analysis) -> None:
    """The analysis no longer shows its labels (deleted, or about to show others). Its label
    rows are deleted first, which waits for a run committing them and returns what it removed."""
    labels = list(db.session.scalars(
        sa.delete(AnalysisLabel).where(AnalysisLabel.analysis_id == analysis.id).returning(AnalysisLabel.label)))
    if not labels:
        return
    db.session.execute(sa.update(UserLabel).where(UserLabel.user_id == analysis.user_id, UserLabel.label.in_(labels))
                       .values(photos=UserLabel.photos - 1))
    db.session.execute(sa.delete(UserLabel).where(UserLabel.user_id == analysis.user_id, UserLabel.photos <= 0))


# ---- which run of a photo the gallery shows ----

def lock_photos(photo_ids) -> list[int]:
    """Lock these photos' rows until the commit, in id order (so two writers never wait on each
    other crosswise): which run a photo shows changes only under this lock. The ids still there."""
    ids = set(photo_ids)
    if db.engine.dialect.name == "sqlite":  # no row locks: a write takes its one write lock, held to the commit
        return sorted(db.session.scalars(sa.update(Photo).where(Photo.id.in_(ids)).values(id=Photo.id)
                                         .returning(Photo.id).execution_options(synchronize_session=False)))
    return list(db.session.scalars(sa.select(Photo.id).where(Photo.id.in_(ids)).order_by(Photo.id).with_for_update()))


def shown_run(photo_id: int) -> Optional[Analysis]:
    """The run the gallery shows for this photo (None once the photo is gone)."""
    return db.session.scalar(sa.select(Analysis).where(Analysis.photo_id == photo_id, Analysis.shown))


def latest_finished(runs: list[Analysis]) -> Optional[Analysis]:
    done = [r for r in runs if r.is_done]
    return max(done, key=lambda r: (r.finished_at, r.id)) if done else None


def show_run(run: Analysis, labels: Optional[dict[str, int]] = None) -> None:
    """Make `run` the one the gallery shows for its photo (the caller holds the photo's lock and
    commits): the others stop being shown and their labels stop counting; a finished run's
    labels (`labels`, else counted from its detections) count instead."""
    for other in db.session.scalars(sa.select(Analysis).where(
            Analysis.photo_id == run.photo_id, Analysis.shown, Analysis.id != run.id)):
        forget_labels(other)
        other.shown = False
    if not run.shown:
        run.shown = True
        if run.is_done:
            record_labels(run, labels if labels is not None else Counter(d.label for d in run.visible_detections()),
                          replace=False)
    db.session.flush()


# ---- the consistency check ----

def _expected_labels():
    """(analysis id, label, user id, count) for every done analysis a photo shows, from its detections."""
    return (sa.select(Analysis.id, Detection.label, Analysis.user_id, sa.func.count())
            .join(Detection, Detection.analysis_id == Analysis.id)
            .where(Analysis.status == AnalysisStatus.DONE, Analysis.shown, Detection.confidence >= Analysis.conf)
            .group_by(Analysis.id, Detection.label, Analysis.user_id))


def check_counts() -> list[str]:
    """Recompute every kept count from the analyses and detections; one line per difference.
    On PostgreSQL all of it is read from one snapshot, so work committed meanwhile is no
    difference; on SQLite run it while nothing is being analysed."""
    _one_snapshot()
    problems = []
    expected = {(a, label): (u, n) for a, label, u, n in db.session.execute(_expected_labels())}
    kept = {(a, label): (u, n) for a, label, u, n in db.session.execute(sa.select(
        AnalysisLabel.analysis_id, AnalysisLabel.label, AnalysisLabel.user_id, AnalysisLabel.count))}
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
    shown = sa.func.sum(sa.case((Analysis.shown, 1), else_=0))
    for photo_id, runs, showing in db.session.execute(
            sa.select(Photo.id, sa.func.count(Analysis.id), shown).select_from(Photo)
            .outerjoin(Analysis, Analysis.photo_id == Photo.id).group_by(Photo.id)):
        if not runs or showing != 1:
            problems.append(f"photo {photo_id}: {runs} runs, {showing or 0} shown (every photo shows one run)")
    totals = {u: (n, b) for u, n, b in db.session.execute(sa.select(
        Photo.user_id, sa.func.count(), sa.func.sum(Photo.stored_bytes)).group_by(Photo.user_id))}
    for user_id, kept_photos, kept_bytes in db.session.execute(sa.select(User.id, User.photos, User.stored_bytes)):
        photos, stored = totals.get(user_id, (0, 0))
        if kept_photos != photos:
            problems.append(f"user {user_id}: kept {kept_photos} photos, there are {photos}")
        if kept_bytes != (stored or 0):
            problems.append(f"user {user_id}: kept {kept_bytes} bytes, photos say {stored or 0}")
    return problems


def _one_snapshot() -> None:
    if db.engine.dialect.name == "postgresql":
        db.session.rollback()
        db.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


def rebuild_counts() -> None:
    """Recompute every kept count from the analyses and detections (commits). Analyses that
    finish or are deleted meanwhile wait for it (a table lock on PostgreSQL, SQLite's one writer)."""
    db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text('LOCK TABLE analysis_label, user_label, "user" IN SHARE ROW EXCLUSIVE MODE'))
    db.session.execute(sa.delete(AnalysisLabel))
    db.session.execute(sa.delete(UserLabel))
    db.session.execute(sa.insert(AnalysisLabel).from_select(
        ["analysis_id", "label", "user_id", "count", "created_at"],
        _expected_labels().add_columns(Analysis.created_at).group_by(Analysis.created_at)))
    db.session.execute(sa.insert(UserLabel).from_select(
        ["user_id", "label", "photos"],
        sa.select(AnalysisLabel.user_id, AnalysisLabel.label, sa.func.count())
        .group_by(AnalysisLabel.user_id, AnalysisLabel.label)))
    counted = sa.select(sa.func.count()).select_from(Photo).where(Photo.user_id == User.id).scalar_subquery()
    stored = (sa.select(sa.func.coalesce(sa.func.sum(Photo.stored_bytes), 0)).where(Photo.user_id == User.id)
              .scalar_subquery())
    db.session.execute(sa.update(User).values(photos=counted, stored_bytes=stored))
    db.session.commit()
