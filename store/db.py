"""Engine and session factory; `upgrade()` runs the Alembic migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

Sessions = async_sessionmaker[AsyncSession]

# Execution option of the engines behind `make_sessions(..., read_only=True)`.
READ_ONLY = "leerbot_read_only"


def make_engine(
    url: str, *, pool_size: int = 10, pre_ping: bool = True, max_overflow: int | None = None
) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so bot and dashboard can share it.

    On PostgreSQL the pool keeps `pool_size` connections and opens up to `max_overflow`
    (default: as many again) more for a burst, closed again on return. `pre_ping` tests each
    connection as it leaves the pool (three round trips with asyncpg: BEGIN, a query,
    ROLLBACK). The bot and the sender, whose transactions are the hot path, turn it off and
    try a transaction again when its connection turns out to be dead (`lost_connection`);
    the pool then replaces every connection older than that.
    """
    if url.startswith("sqlite"):
        # One connection per process: every transaction takes SQLite's write lock (BEGIN
        # IMMEDIATE below), so a second connection in the same process could only wait for it
        # in SQLite's busy handler, which sleeps 1-100 ms per try. Waiting for the pool instead
        # hands the connection over at once (twice the updates per second in bench/).
        in_memory = make_url(url).database in (None, "", ":memory:")  # one StaticPool anyway
        pool: dict[str, Any] = {} if in_memory else {"pool_size": 1, "max_overflow": 0}
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, hide_parameters=True, **pool
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            # Take control of transactions: pysqlite's implicit BEGIN would start read
            # transactions that fail to upgrade to a write under contention (SQLITE_BUSY).
            conn.isolation_level = None  # the aiosqlite adapter exposes it like sqlite3

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # A read-only unit (make_sessions(read_only=True)) reads beside a writer (WAL)
            # and takes no write lock: another process's writes never wait for it.
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

        return engine
    # hide_parameters: a failed statement's values (a pupil's answer) never reach a log line.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=pre_ping,
        hide_parameters=True,
    )


def lost_connection(exc: BaseException) -> bool:
    """True for an error that only says the database connection was gone (try again)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def make_sessions(engine: AsyncEngine, *, read_only: bool = False) -> Sessions:
    """One session per unit of work; objects stay readable after commit.

    `read_only`: units that only read. On SQLite they begin DEFERRED instead of IMMEDIATE, so
    they do not take the database's one write lock: a process that polls (the sender looking
    for due messages) then never makes the bot's writes wait in SQLite's busy handler, which
    sleeps up to 100 ms a try. Such a unit must not write (it could fail with SQLITE_BUSY).
    """
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)


def engine_of(sessions: Sessions) -> AsyncEngine | None:
    """The engine a session factory from `make_sessions` is bound to."""
    bind = sessions.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


def notify_on_commit(
    sessions: Sessions,
    *,
    channel: str,
    model: type[Any],
    when: Callable[[Any], bool] = lambda _row: True,
) -> None:
    """PostgreSQL: every transaction that adds a `model` row sends NOTIFY `channel` at commit.

    Another process (the sender) LISTENs and wakes at once instead of polling the table.
    Rows for which `when` says False (already claimed) wake nobody.
    """
    sync_maker = sessionmaker()
    sessions.configure(sync_session_class=sync_maker)
    key = f"notify:{channel}"

    def _added(session: Session) -> bool:
        return any(isinstance(obj, model) and when(obj) for obj in session.new)

    @event.listens_for(sync_maker, "after_flush")
    def _remember(session: Session, _context: Any) -> None:
        if _added(session):  # after_flush still lists what this flush inserted
            session.info[key] = True

    @event.listens_for(sync_maker, "before_commit")
    def _notify(session: Session) -> None:
        if session.info.pop(key, False) or _added(session):
            session.execute(text(f"NOTIFY {channel}"))

    @event.listens_for(sync_maker, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(key, None)


async def listen(
    engine: AsyncEngine, channel: str, callback: Callable[[], None]
) -> AsyncConnection:
    """PostgreSQL: call `callback` on every NOTIFY `channel`; close the returned connection."""
    conn = await engine.connect()
    raw = await conn.get_raw_connection()
    await raw.driver_connection.add_listener(  # type: ignore[union-attr]  # asyncpg
        channel, lambda *_args: callback()
    )
    return conn


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at our migrations and the given database."""
    from alembic.config import Config  # imported when used: most commands never migrate

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the schema (blocking; call from a thread inside an event loop)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    """`upgrade` from async code, in a worker thread (Alembic's env runs its own loop)."""
    await asyncio.to_thread(upgrade, url)
