"""A signed-in tab's event stream (Server-Sent Events, `GET /events`): `finished` the moment one
of the account's runs ends (done or failed), so the gallery, the detail page and the upload queue
fetch that card once instead of polling every card every second.

The stream holds a server thread while it is open, so it is open only while there is something
to wait for: the tab names the runs it shows as going (`watched`); the stream ends (`idle`) once
none of them, nor any other run of the account, has been going for IDLE_SECONDS, after
LONGEST_SECONDS in any case, and when its process stops (the tab opens a new one if it still
waits). A process serves at most EVENT_STREAMS at once; past that the answer is a 503 and the tab
polls as before.

What wakes it is `jobs.news` (this process's board; the Redis channel in Celery mode). The rows
are the record: the watched runs are read when it opens (what ended before the tab listened) and
the account's going runs every CHECK_SECONDS (news that did not reach this process)."""
import json
import threading
import time
from collections import Counter
from typing import Iterator, Optional

import sqlalchemy as sa
from flask import current_app

from webapp.errors import Refused
from webapp.extensions import db
from webapp.jobs import news
from webapp.jobs.processes import stopping
from webapp.models import Run, RunStatus

CHECK_SECONDS = 2.0  # the account's going runs read this often, news or not
IDLE_SECONDS = 3.0  # nothing going this long: the stream ends
LONGEST_SECONDS = 300.0
KEEP_ALIVE_SECONDS = 10.0  # a comment this often: proxies keep the connection, a gone tab is noticed
RETRY_MS = 2000  # how long the browser waits before opening it again after it broke
GONE = "deleted"  # the status said of a watched run that is not there (deleted meanwhile)
WATCHED_MOST = 500
PER_ACCOUNT = 2  # streams one account may hold in a process (two tabs; a third polls)
BUSY = "Too many open event streams on this server process: the page polls instead."

_open: Counter = Counter()  # streams open in this process, per account
_open_lock = threading.Lock()


def parse_watched(text: Optional[str]) -> list[str]:
    """The public ids in a `watch` query (comma-separated), at most WATCHED_MOST; junk dropped."""
    ids = [part for part in (text or "").split(",") if len(part) == 32 and part.isalnum()]
    return ids[:WATCHED_MOST]


def open_stream(user_id: int, watched: list[str]) -> "EventStream":
    """The stream's text, as an iterator the web layer sends (Refused UNAVAILABLE when this
    process serves EVENT_STREAMS already)."""
    with _open_lock:
        if sum(_open.values()) >= current_app.config["EVENT_STREAMS"] or _open[user_id] >= PER_ACCOUNT:
            raise Refused(BUSY, Refused.UNAVAILABLE, retry_after=5)
        _open[user_id] += 1
    return EventStream(user_id, _events(user_id, watched))


class EventStream:
    """The stream's events; `close()` (the server calls it when the stream ends or the tab goes,
    even before the first event) gives its place back."""

    def __init__(self, user_id: int, events: Iterator[str]):
        self._user_id, self._events, self._closed = user_id, events, False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._events)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._events.close()
        finally:
            db.session.remove()
            with _open_lock:
                _open[self._user_id] -= 1
                if not _open[self._user_id]:
                    del _open[self._user_id]


def _events(user_id: int, watched: list[str]) -> Iterator[str]:
    news.listen(current_app)
    board = news.board()
    started = time.monotonic()
    yield f"retry: {RETRY_MS}\n\n"
    heard = board.last
    going = set(_going(user_id))
    said: set[str] = set()  # each run once (the rows and the news may both tell it)
    statuses = _statuses(user_id, watched)
    for public_id in dict.fromkeys(watched):
        status = statuses.get(public_id, GONE)  # deleted (or never the account's): nothing to wait for
        if status in (RunStatus.DONE, RunStatus.FAILED, GONE):
            said.add(public_id)
            yield _finished(public_id, status)
        else:
            going.add(public_id)
    checked = spoke = idle_since = time.monotonic()
    while time.monotonic() - started < LONGEST_SECONDS and not stopping():  # a stopping process: the tab reopens
        now = time.monotonic()
        if now - checked >= CHECK_SECONDS:  # what the news did not say
            checked = now
            still = set(_going(user_id))
            ended = sorted(going - still)
            statuses = _statuses(user_id, ended)
            for public_id in ended:
                said.add(public_id)
                yield _finished(public_id, statuses.get(public_id, GONE))
            going = still
        heard, told = board.since(heard, user_id)
        for item in told:
            going.discard(item.public_id)
            if item.public_id not in said:
                said.add(item.public_id)
                yield _finished(item.public_id, item.status)
        if going:
            idle_since = now
        elif now - idle_since >= IDLE_SECONDS:
            break
        if now - spoke >= KEEP_ALIVE_SECONDS:
            spoke = now
            yield ": still here\n\n"
        board.wait(heard, max(0.01, min(CHECK_SECONDS - (now - checked), KEEP_ALIVE_SECONDS)))
    yield "event: idle\ndata: \n\n"


def _finished(public_id: str, status: str) -> str:
    return f"event: finished\ndata: {json.dumps({'id': public_id, 'status': str(status)})}\n\n"


def _going(user_id: int) -> list[str]:
    """The account's runs pending or running (the status index: cheap however many photos)."""
    db.session.rollback()  # a new transaction: what workers committed since is seen
    return list(db.session.scalars(sa.select(Run.public_id).where(
        Run.user_id == user_id, Run.status.in_(RunStatus.active()))))


def _statuses(user_id: int, public_ids: list[str]) -> dict[str, str]:
    if not public_ids:
        return {}
    db.session.rollback()
    return dict(db.session.execute(sa.select(Run.public_id, Run.status).where(
        Run.user_id == user_id, Run.public_id.in_(public_ids))).all())
