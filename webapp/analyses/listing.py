"""A user's photos as the gallery and the API list them, at any size: pages by keyset (an opaque
cursor, never an OFFSET over the history), filtered by labels, status and dates on indexes, each
photo once (its current run), with the counts the filter bar shows, read from the kept counts
(`webapp/library/counts.py`) instead of recounted.

Two orders, each on its own indexes: by date taken (the default: `taken_at`, the local time the
camera wrote, else the upload time in UTC) and by upload time (`by=uploaded`). The day filters
follow the order: days as the photos were taken (as written), or upload days (UTC).

The filter fields (labels, from, to, sort, by) are read one way for pages and API: `FilterFields`
is what the API validates (strictly: a 422), `read_filters` what a page takes (forgivingly: it
leaves out what the API would refuse and says so); both build `Filters` with `filters()`."""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Iterator, Literal, Optional

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import aliased, selectinload

from webapp.errors import Refused
from webapp.extensions import db
from webapp.models import Detection, Run, RunLabel, RunStatus, User, UserLabel

MAX_PAGE = 100  # `page` is a compatibility alias: it may skip at most this many pages
MAX_LABELS = 10  # labels one listing may ask for at once
TOP_LABELS = 8  # labels the filter bar shows as chips; the others are behind "more…"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # how a day is written in a query: YYYY-MM-DD
CO_LABELS_UP_TO = 5000  # photos a label filter may match for the filter bar to count labels among them
MAX_YEARS = 60  # years the gallery's scrubber offers at most


class BadCursor(Refused):
    """The cursor is not one this app made."""

    kind = Refused.INVALID


@dataclass(frozen=True)
class Filters:
    labels: tuple[str, ...] = ()  # photos showing every one of these
    status: Optional[RunStatus] = None
    since: Optional[datetime] = None  # taken (or uploaded) at or after
    until: Optional[datetime] = None  # taken (or uploaded) before
    oldest_first: bool = False
    by_upload: bool = False  # ordered and filtered by upload time, not date taken

    @property
    def narrowed(self) -> bool:
        return bool(self.labels or self.status or self.since or self.until)


def filters(labels=(), status=None, first_day: Optional[date] = None, last_day: Optional[date] = None,
            oldest_first: bool = False, by_upload: bool = False) -> Filters:
    """Filters from what people type: label names, and a range of whole days (inclusive): days
    taken as written, or upload days in UTC."""
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=timezone.utc if by_upload else None)

    names = (name.replace("\x00", "").strip() for name in labels if name)
    return Filters(
        labels=tuple(dict.fromkeys(name for name in names if name))[:MAX_LABELS],
        status=status,
        since=midnight(first_day) if first_day else None,
        until=midnight(last_day + timedelta(days=1)) if last_day and last_day < date.max else None,
        oldest_first=oldest_first, by_upload=by_upload,
    )


def parse_day(value: str) -> date:
    """A day written YYYY-MM-DD; ValueError for anything else (a date must be a real one)."""
    if not (isinstance(value, str) and DAY.fullmatch(value)):
        raise ValueError("use a day as YYYY-MM-DD")
    return date.fromisoformat(value)


class FilterFields(BaseModel):
    """The filter fields of a listing's query, as the API takes them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    label: Optional[list[Annotated[str, Field(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]]] = Field(
        None, max_length=MAX_LABELS, description="Only analyses showing every one of these labels (repeat the field).")
    from_: Optional[date] = Field(None, alias="from", description=(
        "Taken (with `by=uploaded`: uploaded, UTC) on or after this day, YYYY-MM-DD."))
    to: Optional[date] = Field(None, description="Taken (or uploaded) on or before this day, YYYY-MM-DD.")
    sort: Literal["newest", "oldest"] = "newest"
    by: Literal["taken", "uploaded"] = Field("taken", description=(
        "Order and filter by date taken (the camera's, else the upload time) or by upload time."))

    @field_validator("from_", "to", mode="before")
    @classmethod
    def calendar_day(cls, value):
        return None if value is None else parse_day(value)

    @model_validator(mode="after")
    def range_in_order(self):
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError("`from` is after `to`")
        return self

    def filters(self, status: Optional[RunStatus] = None) -> Filters:
        return filters(self.label or (), status, self.from_, self.to, oldest_first=self.sort == "oldest",
                       by_upload=self.by == "uploaded")


def read_filters(args) -> tuple[Filters, dict, Optional[str]]:
    """A page's filters from its query string (or a form): the labels (all of them), from/to days
    (inclusive), sort and by; the query to repeat in links; and what was left out, in words."""
    asked = [name for name in args.getlist("label") if name.strip()]
    problem = f"Only the first {MAX_LABELS} labels are used." if len(set(asked)) > MAX_LABELS else None
    days: dict[str, Optional[date]] = {}
    for key in ("from", "to"):
        value = args.get(key, "").strip()
        try:
            days[key] = parse_day(value) if value else None
        except ValueError:
            days[key], problem = None, f"Ignored the date {value!r}: use YYYY-MM-DD."
    if days["from"] and days["to"] and days["from"] > days["to"]:
        problem = "The first day is after the last: no photo can match. Swap them?"
    wanted = filters(asked, None, days["from"], days["to"], oldest_first=args.get("sort") == "oldest",
                     by_upload=args.get("by") == "uploaded")
    return wanted, filter_query(wanted, days["from"], days["to"]), problem


def filter_query(wanted: Filters, first_day: Optional[date] = None, last_day: Optional[date] = None) -> dict:
    """The query string of these filters, for links that keep them."""
    query: dict = {"label": list(wanted.labels)} if wanted.labels else {}
    for key, day in (("from", first_day), ("to", last_day)):
        if day:
            query[key] = day.isoformat()
    if wanted.oldest_first:
        query["sort"] = "oldest"
    if wanted.by_upload:
        query["by"] = "uploaded"
    return query


# ---- pages ----

@dataclass
class Page:
    items: list[Run] = field(default_factory=list)
    next_cursor: Optional[str] = None
    number: int = 1  # 1 for the first page, counted along the cursors
    after: Optional[datetime] = None  # where its cursor started it: the date (taken or uploaded) of the photo before


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="history-cursor")


def sort_date(run: Run, wanted: Filters) -> datetime:
    """The date `run` is ordered by in this listing: its upload time (UTC) or date taken (naive)."""
    return run.created_at.astimezone(timezone.utc) if wanted.by_upload else run.taken_at


def encode_cursor(run: Run, user: User, wanted: Filters, number: int) -> str:
    """Where the page after `run` starts, signed: for this user and this order only."""
    return _cursor(sort_date(run, wanted), run.id, user, wanted, number)


def _cursor(at: datetime, ident: int, user: User, wanted: Filters, number: int) -> str:
    return _signer().dumps({"c": at.isoformat(), "i": ident, "u": user.id, "o": wanted.oldest_first,
                            "b": wanted.by_upload, "p": number})


def decode_cursor(token: str, user: User, wanted: Filters) -> tuple[datetime, int, int]:
    """(date, id, page number) of a cursor this app made for this user and order."""
    try:
        data = _signer().loads(token)
        by_upload = data.get("b", True)  # cursors made before dates taken were upload-ordered
        moment = datetime.fromisoformat(data["c"])
        moment = moment.astimezone(timezone.utc) if by_upload else moment.replace(tzinfo=None)
        ident, number = data["i"], data["p"]
        if type(ident) is not int or type(number) is not int:
            raise ValueError(token)
    except (BadData, ValueError, TypeError, KeyError, OverflowError) as exc:
        raise BadCursor("This cursor is not valid: use the `next` link of a page.") from exc
    if data.get("u") != user.id or data.get("o") != wanted.oldest_first or by_upload != wanted.by_upload:
        raise BadCursor("This cursor belongs to another listing (another order or user): use the "
                        "`next` link of this one.")
    return moment, ident, number


def page(user: User, wanted: Filters = Filters(), cursor: Optional[str] = None, per_page: int = 24,
         skip_pages: int = 0) -> Page:
    """One page of the user's photos (their current runs), newest (or oldest) first, after
    `cursor`. Raises BadCursor."""
    stmt, created, ident = _ordered(user, wanted)
    number, at = 1, None
    if cursor:
        at, last_id, number = decode_cursor(cursor, user, wanted)
        stmt = stmt.where(_after(created, ident, at, last_id, wanted.oldest_first))
    if skip_pages:
        skip_pages = min(skip_pages, MAX_PAGE)
        stmt, number = stmt.offset(skip_pages * per_page), number + skip_pages
    rows = list(db.session.scalars(stmt.limit(per_page + 1)))
    items = rows[:per_page]
    following = encode_cursor(items[-1], user, wanted, number + 1) if len(rows) > per_page else None
    return Page(items, following, number, at)


def years(user: User, wanted: Filters) -> list[tuple[int, str]]:
    """The years the listing has photos in, in its order, each with a cursor whose page starts at
    that year (newest first: its last photo; oldest first: its first). One row read along the
    listing's own index per year found, from where the year before it ended: the history's size
    does not matter, only its number of years (at most MAX_YEARS)."""
    stmt, created, _ = _ordered(user, wanted)
    found: list[tuple[int, str]] = []
    bound = None
    while len(found) < MAX_YEARS:
        step = stmt if bound is None else stmt.where(created >= bound if wanted.oldest_first else created < bound)
        first = db.session.scalars(step.with_only_columns(created).limit(1)).first()
        if first is None or not 1 < first.year < 9999:
            break
        found.append((first.year, _jump_cursor(user, wanted, first.year)))
        bound = _new_year(first.year + 1 if wanted.oldest_first else first.year, wanted)
    return found


def _new_year(year: int, wanted: Filters) -> datetime:
    """The first moment of `year` as the listing's dates are written (uploads in UTC, taken as written)."""
    return datetime(year, 1, 1, tzinfo=timezone.utc if wanted.by_upload else None)


def _jump_cursor(user: User, wanted: Filters, year: int) -> str:
    """A cursor as if the page before ended just outside `year`: the next page starts in it."""
    if wanted.oldest_first:
        at = _new_year(year, wanted) - timedelta(microseconds=1)
    else:
        at = _new_year(year + 1, wanted)
    return _cursor(at, 0, user, wanted, 2)


def neighbours(user: User, wanted: Filters, run: Run) -> tuple[Optional[Run], Optional[Run]]:
    """The photos just before and just after `run`'s in the listing `wanted` gives (same order),
    or None at either end: the detail page's previous and next. Each is one row read along the
    listing's index, from where `run` sits in it (whether or not it matches the filter itself)."""
    def first_after(direction: Filters) -> Optional[Run]:
        stmt, created, ident = _ordered(user, direction)
        return db.session.scalars(stmt.where(
            _after(created, ident, sort_date(run, wanted), run.id, direction.oldest_first)).limit(1)).first()

    backwards = _reversed(wanted)
    return first_after(backwards), first_after(wanted)


def _reversed(wanted: Filters) -> Filters:
    """The same listing in the other order."""
    return Filters(wanted.labels, wanted.status, wanted.since, wanted.until, not wanted.oldest_first, wanted.by_upload)


def back_cursor(user: User, wanted: Filters, run: Run, before: int = 12) -> Optional[str]:
    """A cursor whose page shows `run` after the `before` photos that come just before it in the
    listing (the detail page's way back to the gallery, wherever the photo sits in it), or None
    when it is that near the top (the first page shows it). At most `before` + 1 rows read
    backwards along the listing's index from the photo."""
    backwards = _reversed(wanted)
    stmt, created, ident = _ordered(user, backwards)
    newer = list(db.session.scalars(stmt.where(_after(created, ident, sort_date(run, wanted), run.id,
                                                      backwards.oldest_first)).limit(before + 1)))
    if len(newer) <= before:
        return None
    return encode_cursor(newer[before], user, wanted, 2)


def count(user: User, wanted: Filters, up_to: Optional[int] = None) -> int:
    """How many photos match: a kept count where there is one, else counted, at most `up_to` + 1
    of them (so that a filter matching most of a large library costs what a small one does:
    more than `up_to` is all a page needs to know)."""
    kept = total(user, wanted)
    if kept is not None:
        return kept
    stmt = _ordered(user, wanted)[0].order_by(None)
    if up_to is not None:
        stmt = stmt.with_only_columns(Run.id).limit(up_to + 1)
    return db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0


def total(user: User, wanted: Filters) -> Optional[int]:
    """How many photos match, where a kept count says so (no filter, or one label alone)."""
    if not wanted.narrowed:
        return db.session.scalar(sa.select(User.photos - User.trashed).where(User.id == user.id)) or 0
    if len(wanted.labels) == 1 and not (wanted.since or wanted.until) and wanted.status in (None, RunStatus.DONE):
        return label_photos(user, wanted.labels[0])
    return None


def select_all(user: User, wanted: Filters = Filters()):
    """Every current run that matches, in order (exports, "select all")."""
    return _ordered(user, wanted)[0]


def all_matching(user: User, wanted: Filters, limit: Optional[int] = None, with_detections: bool = False) -> list[Run]:
    """The current runs that match (at most `limit`), in order."""
    stmt = select_all(user, wanted).limit(limit)
    if with_detections:
        stmt = stmt.options(selectinload(Run.detections))
    return list(db.session.scalars(stmt))


def batches_matching(user: User, wanted: Filters, size: int = 500) -> Iterator[list[Run]]:
    """The current runs that match, in order, `size` at a time with their detections (keyset
    pages along the listing's index): an export of any size holds one batch in memory."""
    stmt, created, ident = _ordered(user, wanted)
    stmt = stmt.add_columns(created, ident).options(selectinload(Run.detections)).limit(size)
    after = None
    while True:
        page = stmt if after is None else stmt.where(_after(created, ident, *after, wanted.oldest_first))
        rows = db.session.execute(page).all()
        if not rows:
            return
        yield [row[0] for row in rows]
        if len(rows) < size:
            return
        after = (rows[-1][1], rows[-1][2])


def stored_classes(user: User, wanted: Filters) -> list[tuple[int, str]]:
    """Every (class id, label) stored with the current runs that match (what an export's classes
    are decided from), without loading the runs."""
    runs = select_all(user, wanted).order_by(None).with_only_columns(Run.id)
    return [tuple(row) for row in db.session.execute(
        sa.select(Detection.class_id, Detection.label).where(Detection.run_id.in_(runs)).distinct())]


def _ordered(user: User, wanted: Filters):
    """The filtered select, ordered along the index that serves it, with its ordering columns."""
    if wanted.labels:
        if wanted.status not in (None, RunStatus.DONE):
            return sa.select(Run).where(sa.false()), Run.created_at, Run.id
        driver = aliased(RunLabel)
        first, *others = sorted(wanted.labels, key=lambda name: label_photos(user, name))
        stmt = (sa.select(Run).join(driver, driver.run_id == Run.id)
                .where(driver.user_id == user.id, driver.label == first))
        for other in others:  # each a primary-key lookup of the driving row's run
            stmt = stmt.where(sa.exists().where(RunLabel.run_id == driver.run_id, RunLabel.label == other))
        created, ident = (driver.created_at if wanted.by_upload else driver.taken_at), driver.run_id
    else:
        stmt = sa.select(Run).where(Run.user_id == user.id, Run.current)  # one per photo
        if wanted.status:
            stmt = stmt.where(Run.status == wanted.status)
        created, ident = (Run.created_at if wanted.by_upload else Run.taken_at), Run.id
    if wanted.since:
        stmt = stmt.where(created >= wanted.since)
    if wanted.until:
        stmt = stmt.where(created < wanted.until)
    order = (created.asc(), ident.asc()) if wanted.oldest_first else (created.desc(), ident.desc())
    return stmt.order_by(*order), created, ident


def _after(created, ident, at: datetime, last_id: int, ascending: bool):
    """Rows after (at, last_id) in the page order, written so that the index range starts there."""
    if ascending:
        return sa.and_(created >= at, sa.or_(created > at, ident > last_id))
    return sa.and_(created <= at, sa.or_(created < at, ident < last_id))


# ---- the labels shown with a page ----

def first_label_like(user: User, text: str) -> Optional[str]:
    """The label a search for `text` picks (Enter in the filter bar's "Find a label"): of the
    user's labels containing it (any case), one starting with it first, then the one on the most
    photos, then by name; None when none does."""
    wanted = "".join(ch for ch in text if ch.isprintable()).strip().lower()[:100]  # a NUL ends SQLite's LIKE pattern
    if not wanted:
        return None
    escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = db.session.execute(sa.select(UserLabel.label, UserLabel.photos).where(
        UserLabel.user_id == user.id, UserLabel.photos > 0,
        sa.func.lower(UserLabel.label).like(f"%{escaped}%", escape="\\"))).all()
    if not found:
        return None
    return min(found, key=lambda row: (not row.label.lower().startswith(wanted), -row.photos, row.label)).label


def label_photos(user: User, label: str) -> int:
    return db.session.scalar(sa.select(UserLabel.photos).where(
        UserLabel.user_id == user.id, UserLabel.label == label)) or 0


def label_summary(user: User) -> list[tuple[str, int]]:
    """Every label of the user's photos with how many show it, most common first."""
    rows = db.session.execute(sa.select(UserLabel.label, UserLabel.photos).where(
        UserLabel.user_id == user.id, UserLabel.photos > 0)).all()
    return sorted(((label, n) for label, n in rows), key=lambda r: (-r[1], r[0]))


def co_labels(user: User, wanted: Filters) -> Optional[dict[str, int]]:
    """{label: photos} among the photos a label filter matches (what adding each label would
    leave), or None when the filter may match more than CO_LABELS_UP_TO photos (then counting
    them would cost more than a page should)."""
    if not wanted.labels or min(label_photos(user, name) for name in wanted.labels) > CO_LABELS_UP_TO:
        return None
    matching = _ordered(user, wanted)[0].order_by(None).with_only_columns(Run.id).subquery()
    return dict(db.session.execute(
        sa.select(RunLabel.label, sa.func.count()).where(RunLabel.run_id.in_(sa.select(matching)))
        .group_by(RunLabel.label)).tuples().all())


@dataclass
class FilterBar:
    """The gallery's filter bar: every label with its photos, the chips in view (`top`), the
    others behind "more…", and how many photos the filter matches (where no kept count says so,
    counted up to one more than `filter_bar`'s `count_up_to`)."""

    labels: list[tuple[str, int]]
    top: list[tuple[str, int]]
    more: list[tuple[str, int]]
    matching: int


def filter_bar(user: User, wanted: Filters, count_up_to: Optional[int] = None) -> FilterBar:
    """With labels chosen, the other labels offered are those that would leave photos, with how
    many; a chosen label stays in view."""
    labels = offered = label_summary(user)
    together = co_labels(user, wanted)
    if together is not None:
        offered = [item for item in labels if item[0] in wanted.labels] + sorted(
            ((name, together[name]) for name, _ in labels if name not in wanted.labels and together.get(name)),
            key=lambda item: (-item[1], item[0]))
    top = list(offered[:TOP_LABELS])
    top += [item for item in offered[TOP_LABELS:] if item[0] in wanted.labels]
    return FilterBar(labels, top, [item for item in offered if item not in top], count(user, wanted, count_up_to))


def labels_of(runs: list[Run]) -> dict[int, list[tuple[str, int]]]:
    """{run id: [(label, count), ...]} for a page of current runs, most boxes first (kept counts)."""
    chips: dict[int, list[tuple[str, int]]] = {r.id: [] for r in runs}
    if chips:
        rows = db.session.execute(sa.select(RunLabel.run_id, RunLabel.label, RunLabel.count)
                                  .where(RunLabel.run_id.in_(list(chips)))).all()
        for run_id, label, count_ in rows:
            chips[run_id].append((label, count_))
    for labels in chips.values():
        labels.sort(key=lambda c: (-c[1], c[0]))
    return chips
