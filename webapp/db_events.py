"""Per-connection database settings: SQLite gets foreign keys, WAL and a busy timeout."""
import sqlalchemy as sa
from sqlalchemy.engine import Engine

_installed = False


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss
    cursor.close()


def init_app(app) -> None:
    global _installed
    if not _installed:
        sa.event.listen(Engine, "connect", _sqlite_pragmas)
        _installed = True
