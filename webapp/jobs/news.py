"""News of finished runs: the pipeline `tell`s once a run's result (done or failed) is committed,
and whoever waits for runs (an API upload's `?wait=true`, a signed-in tab's event stream) hears it
at once instead of reading the database in a loop.

Within a process (the thread executor: detection runs where the request waits) the news goes on
the app's `board`, a condition variable (one per app: one per process, but tests make many).
Across processes (Celery workers detect, the web tier waits) it is published on a Redis channel
of the broker; each web process that waits has one thread listening to it (`listen`), which puts
what it hears on its own board.

News is a wake-up, never the record: a waiter reads the runs' rows when woken, and again at least
every `CHECK_SECONDS` whatever it heard (news published while Redis is down, or told by another
gunicorn worker in thread mode, is not heard)."""
import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional

from flask import Flask, current_app

logger = logging.getLogger(__name__)

CHANNEL = "spotter:runs-finished"
CHECK_SECONDS = 1.0  # the longest a waiter goes without reading the rows, news or not
KEPT = 4096  # news items a board remembers (a stream that fell further behind reads the rows)


@dataclass(frozen=True)
class Finished:
    """One run finished: whose, which, and how."""
    user_id: int
    run_id: int
    public_id: str
    status: str


class Board:
    """This process's news: every item numbered in order, the latest KEPT of them kept."""

    def __init__(self):
        self._changed = threading.Condition()
        self._items: deque[tuple[int, Finished]] = deque(maxlen=KEPT)
        self._last = 0

    @property
    def last(self) -> int:
        """The number of the latest item (0: none yet); wait for ones after it."""
        with self._changed:
            return self._last

    def post(self, items: list[Finished]) -> None:
        if not items:
            return
        with self._changed:
            for item in items:
                self._last += 1
                self._items.append((self._last, item))
            self._changed.notify_all()

    def wait(self, after: int, timeout: float) -> bool:
        """Block until an item numbered past `after` is posted (True), or `timeout` runs out."""
        with self._changed:
            return self._changed.wait_for(lambda: self._last > after, timeout)

    def since(self, after: int, user_id: Optional[int] = None) -> tuple[int, list[Finished]]:
        """(the latest number, the items past `after`, of this user's runs only when given)."""
        with self._changed:
            items = [item for number, item in self._items
                     if number > after and (user_id is None or item.user_id == user_id)]
            return self._last, items


def board(app: Optional[Flask] = None) -> Board:
    """The app's board (the current app's by default)."""
    app = app or current_app
    found = app.extensions.get("news_board")
    if found is None:
        with _boards_lock:
            found = app.extensions.setdefault("news_board", Board())
    return found


_boards_lock = threading.Lock()


def tell(items: list[Finished]) -> None:
    """Once their rows are committed: these runs finished. Never raises (news is a wake-up)."""
    if not items:
        return
    board().post(items)
    if _shared(current_app):
        try:
            _redis(current_app).publish(CHANNEL, json.dumps([item.__dict__ for item in items]))
        except Exception as exc:  # noqa: BLE001 - waiters read the rows anyway, within CHECK_SECONDS
            logger.debug("Could not publish the news of %d finished runs: %s", len(items), exc)


def listen(app: Flask) -> None:
    """Make sure this process hears other processes' news (a Celery-mode web process; nothing
    to do in thread mode). Cheap to call before every wait."""
    if _shared(app):
        on = board(app)  # (takes the lock itself)
        with _boards_lock:
            listener = app.extensions.setdefault("news_listener", _Listener(on))
        listener.start(app)


def _shared(app: Flask) -> bool:
    return app.config["ANALYSIS_EXECUTOR"] == "celery"


def _redis(app: Flask):
    import redis

    client = app.extensions.get("news_redis")
    if client is None:
        client = app.extensions["news_redis"] = redis.Redis.from_url(
            app.config["CELERY_BROKER_URL"], socket_connect_timeout=1, socket_timeout=1)
    return client


class _Listener:
    """One thread per process (per app) subscribed to CHANNEL, posting what it hears on the app's
    board; while Redis cannot be reached it tries again every RETRY_SECONDS (logged once per outage)."""

    RETRY_SECONDS = 2.0

    def __init__(self, on: Board):
        self._board = on
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def start(self, app: Flask) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, args=(app.config["CELERY_BROKER_URL"],),
                                                daemon=True, name="news")
                self._thread.start()

    def _listen(self, url: str) -> None:
        import redis

        down = False
        stop = threading.Event()
        while True:
            try:
                client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_keepalive=True)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                if down:
                    logger.warning("News of finished runs heard again from Redis")
                    down = False
                for message in pubsub.listen():
                    self._board.post([Finished(**item) for item in json.loads(message["data"])])
            except Exception as exc:  # noqa: BLE001 - Redis down or restarted: waiters read the rows meanwhile
                if not down:
                    logger.warning("Not hearing news of finished runs (%s): waiters read the database every "
                                   "%s s until Redis is back", exc.__class__.__name__, CHECK_SECONDS)
                    down = True
                stop.wait(self.RETRY_SECONDS)

