"""Statements compiled once and run on the database driver itself, for the bot's hottest path.

A pressed button that only redraws its question is the most frequent update by far. Through
the ORM its transaction (record the update, lock the pupil, check the outbox, queue the edit,
store the state) cost about 4 ms of CPU in SQLAlchemy's session, unit of work and async
adaptation on the benchmark machine; the same statements on the asyncpg connection cost about
0.5 ms. This module keeps SQLAlchemy for everything it is good at here — the statements are
SQLAlchemy Core, compiled by the engine's own dialect, and every value goes through the
column type's own bind and result processing, so what is stored is byte for byte what the ORM
stores — and skips only the execution machinery. The connection comes from the engine's pool,
so on SQLite it is the same single connection everything else waits for.

Used by `bot/conversation.py` (`Conversation._quick_press`); everything else uses the ORM.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from store.models import Outbox, Pupil
from store.repo import claim_statement, outbox_busy

__all__ = [
    "LeanStatement",
    "LeanTransaction",
    "OutcomeStatements",
    "PressStatements",
    "finish_outcomes",
    "lean_transaction",
]

Processor = Callable[[Any], Any] | None


class LeanStatement:
    """A Core statement compiled for one dialect, with its bind and result processors."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self._compiled = compiled
        order = compiled.positiontup
        if order is None:
            raise ValueError(f"{dialect.name} does not use positional parameters")
        self._order: tuple[str, ...] = tuple(order)
        binds = compiled.binds
        self._bind: tuple[Processor, ...] = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order
        )
        # Values fixed in the statement (a literal `status == "sending"`), by name.
        self._fixed = {name: binds[name].value for name in order if not binds[name].required}
        columns: Sequence[Any] = (
            getattr(statement, "selected_columns", None)
            or getattr(statement, "_returning", None)
            or ()
        )
        self._result: tuple[Processor, ...] = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )

    def args(self, values: dict[str, Any]) -> list[Any]:
        """The driver's positional arguments for these named values."""
        args = []
        for name, process in zip(self._order, self._bind, strict=True):
            value = values[name] if name in values else self._fixed[name]
            args.append(process(value) if process is not None else value)
        return args

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        """A result row as the ORM would see it (JSON parsed, datetimes typed)."""
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self._result, raw, strict=True)
        )


class LeanTransaction:
    """One transaction on the driver connection (asyncpg or aiosqlite)."""

    def __init__(self, driver: Any, dialect: str) -> None:
        self.driver = driver
        self.dialect = dialect

    async def fetch(
        self, statement: LeanStatement, values: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run it; the processed result rows (none for a statement without RETURNING)."""
        args = statement.args(values)
        if self.dialect == "postgresql":
            records = await self.driver.fetch(statement.sql, *args)
        else:  # one hop to aiosqlite's thread, not three (execute, fetch, close)
            records = await self.driver.execute_fetchall(statement.sql, args)
        return [statement.row(r) for r in records]

    async def many(self, statement: LeanStatement, rows: Sequence[dict[str, Any]]) -> None:
        """Run it once per row of values (a statement without RETURNING)."""
        args = [statement.args(values) for values in rows]
        await self.driver.executemany(statement.sql, args)


@asynccontextmanager
async def lean_transaction(engine: AsyncEngine) -> AsyncIterator[LeanTransaction]:
    """A pooled connection in a transaction of its own: committed at the end of the block,
    rolled back when it raises (on SQLite BEGIN IMMEDIATE, as the engine's own)."""
    dialect = engine.dialect.name
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if dialect == "postgresql":
            transaction = driver.transaction()
            await transaction.start()
            try:
                yield LeanTransaction(driver, dialect)
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()
        else:
            await driver.execute("BEGIN IMMEDIATE")
            try:
                yield LeanTransaction(driver, dialect)
            except BaseException:
                await driver.execute("ROLLBACK")
                raise
            await driver.execute("COMMIT")


class PressStatements:
    """The statements of a pressed button that only redraws its question, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        pupil = Pupil.__table__.c
        outbox = Outbox.__table__.c
        self.dialect = dialect.name
        self.claim = LeanStatement(claim_statement(dialect.name), dialect)
        locked = select(
            pupil.id, pupil.chat_id, pupil.first_name, pupil.state, pupil.active, pupil.blocked
        ).where(pupil.telegram_user_id == bindparam("user_id", type_=pupil.telegram_user_id.type))
        if dialect.name == "postgresql":
            locked = locked.with_for_update()  # SQLite: BEGIN IMMEDIATE holds the write lock
        self.pupil = LeanStatement(locked, dialect)
        self.busy = LeanStatement(outbox_busy(), dialect)
        queued = (
            "chat_id",
            "pupil_id",
            "priority",
            "method",
            "payload",
            "status",
            "attempts",
            "claimed_by",
            "claimed_at",
            "created_at",
        )
        # Every column that has a default is given: no ORM is here to fill them in.
        self.queue = LeanStatement(
            insert(Outbox)
            .values({name: bindparam(name, type_=outbox[name].type) for name in queued})
            .returning(outbox.id),
            dialect,
        )
        saved = ("state", "lang", "reminders_off", "last_seen_at")
        self.save = LeanStatement(
            update(Pupil)
            .where(pupil.id == bindparam("pupil_id", type_=pupil.id.type))
            .values({name: bindparam(f"new_{name}", type_=pupil[name].type) for name in saved}),
            dialect,
        )


class OutcomeStatements:
    """`UPDATE outbox SET … WHERE id = …` for each set of columns an outcome sets."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._by_columns: dict[tuple[str, ...], LeanStatement] = {}

    def for_columns(self, columns: tuple[str, ...]) -> LeanStatement:
        """The statement that sets these columns (sorted names, without "id")."""
        statement = self._by_columns.get(columns)
        if statement is None:
            outbox = Outbox.__table__.c
            statement = self._by_columns[columns] = LeanStatement(
                update(Outbox)
                .where(outbox.id == bindparam("row_id", type_=outbox.id.type))
                .values(
                    {name: bindparam(f"new_{name}", type_=outbox[name].type) for name in columns}
                ),
                self.dialect,
            )
        return statement


async def finish_outcomes(
    engine: AsyncEngine, statements: OutcomeStatements, outcomes: Sequence[dict[str, Any]]
) -> None:
    """Record sent messages' outcomes ("id" and the columns to set) in one transaction."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        columns = tuple(sorted(name for name in outcome if name != "id"))
        values = {f"new_{name}": outcome[name] for name in columns}
        values["row_id"] = outcome["id"]
        groups.setdefault(columns, []).append(values)
    async with lean_transaction(engine) as tx:
        for columns, rows in groups.items():
            await tx.many(statements.for_columns(columns), rows)
