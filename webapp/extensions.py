"""Extension objects, created unbound (`create_app` calls `init_app` on each), the per-connection
settings of the database engine they open, and `shared_limits`: the counts services keep in the
rate limiter's storage themselves (failed sign-ins, requests per API key)."""
import logging
import threading
import time
from typing import Optional

import sqlalchemy as sa
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address)
logger = logging.getLogger(__name__)


class SharedLimits:
    """`hit`, `get_window_stats` and `clear` on the rate limiter's storage (Redis when RATELIMIT_STORAGE_URI
    names it: shared by every process). While that storage cannot be reached, the same limits are
    kept per process, in memory, and the storage is tried again every RETRY_SECONDS; the outage
    is logged once, its end once. (The limiter's own limits fall back alike:
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED.)"""

    RETRY_SECONDS = 5.0

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """A new start (an app initialised): no outage known, no counts kept here."""
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._retry_at = None  # set while the storage is down

    @property
    def degraded(self) -> bool:
        return self._retry_at is not None

    def hit(self, limit, *identifiers) -> bool:
        return self._call("hit", limit, *identifiers)

    def get_window_stats(self, limit, *identifiers):
        return self._call("get_window_stats", limit, *identifiers)

    def wait_after_hit(self, limit, *identifiers) -> Optional[int]:
        """Count one; None while within `limit`, else the whole seconds (at least 1) until its window ends."""
        if not limiter.enabled or self.hit(limit, *identifiers):
            return None
        return max(1, int(self.get_window_stats(limit, *identifiers).reset_time - time.time()))

    def clear(self, limit, *identifiers) -> None:
        self._call("clear", limit, *identifiers)

    def _call(self, method: str, limit, *identifiers):
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            return getattr(self._memory, method)(limit, *identifiers)
        try:  # on the storage itself (the limiter's own fallback is the limiter's business)
            answer = getattr(FixedWindowRateLimiter(limiter.storage), method)(limit, *identifiers)
        except Exception as exc:  # noqa: BLE001 - whatever the storage raises, the limits go on here
            with self._lock:
                if self._retry_at is None:
                    logger.warning("Rate limit storage unreachable (%s): limits are kept per process until it "
                                   "is back", exc.__class__.__name__)
                self._retry_at = time.monotonic() + self.RETRY_SECONDS
            return getattr(self._memory, method)(limit, *identifiers)
        self._back()
        return answer

    def _back(self) -> None:
        if self._retry_at is not None:
            with self._lock:
                self._retry_at = None
            logger.warning("Rate limit storage reachable again: limits are shared again")

    def storage_answers(self) -> bool:
        """Whether the limiter's storage answers now (/healthz); a success ends the outage."""
        try:
            alive = bool(limiter.storage.check())
        except Exception:  # noqa: BLE001
            alive = False
        if alive:
            self._back()
        return alive


shared_limits = SharedLimits()


@sa.event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite gets foreign keys (for ON DELETE CASCADE), WAL and a busy timeout; others nothing."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss
    cursor.close()
