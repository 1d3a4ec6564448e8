"""Statements on the driver connection (store/lean.py): what they write, the ORM reads back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from store import repo
from store.db import Sessions, make_engine, make_sessions
from store.lean import OutcomeStatements, finish_outcomes, lean_transaction
from store.models import Outbox


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(database_url)
    yield make_sessions(engine)
    await engine.dispose()


async def _claimed_rows(sessions: Sessions, count: int, now: datetime) -> list[int]:
    async with sessions.begin() as session:
        rows = [
            await repo.enqueue(
                session,
                chat_id=42,
                method="editMessageText",
                payload={"text": f"vraag {i}"},
                now=now,
                claimed_by="bot:1:lane",
            )
            for i in range(count)
        ]
        await session.flush()
        return [row.id for row in rows]


async def test_outcomes_of_both_shapes_in_one_transaction(sessions: Sessions) -> None:
    now = datetime.now(UTC).replace(microsecond=123456)
    sent, unchanged = await _claimed_rows(sessions, 2, now)
    engine = sessions.kw["bind"]
    statements = OutcomeStatements(engine.dialect)
    later = now + timedelta(seconds=1)
    await finish_outcomes(
        engine,
        statements,
        [
            {"id": sent, "status": "sent", "claimed_by": None, "claimed_at": None,
             "sent_at": later, "message_id": 77},
            {"id": unchanged, "status": "sent", "claimed_by": None, "claimed_at": None,
             "sent_at": later, "last_error": "Bad Request: message is not modified"},
        ],
    )  # fmt: skip
    async with sessions() as session:
        first = await session.get(Outbox, sent)
        second = await session.get(Outbox, unchanged)
    assert first is not None
    assert second is not None
    assert (first.status, first.claimed_by, first.message_id, first.last_error) == (
        "sent", None, 77, None,
    )  # fmt: skip
    assert first.sent_at == later  # a timezone-aware datetime, to the microsecond
    assert first.claimed_at is None
    assert (second.status, second.message_id, second.last_error) == (
        "sent", None, "Bad Request: message is not modified",
    )  # fmt: skip
    assert len(statements._by_columns) == 2  # one statement per set of columns, kept


async def test_a_failing_block_rolls_back(sessions: Sessions) -> None:
    now = datetime.now(UTC)
    (row_id,) = await _claimed_rows(sessions, 1, now)
    engine = sessions.kw["bind"]
    statements = OutcomeStatements(engine.dialect)
    update = statements.for_columns(("status",))

    async def change_then_fail() -> None:
        async with lean_transaction(engine) as tx:
            await tx.many(update, [{"row_id": row_id, "new_status": "dead"}])
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await change_then_fail()
    async with sessions() as session:
        row = await session.get(Outbox, row_id)
    assert row is not None
    assert row.status == "sending"


def test_the_bot_keeps_enough_postgresql_connections_for_a_burst() -> None:
    from bot.app import BOT_OVERFLOW, BOT_POOL, build_runtime
    from leerbot.settings import Settings

    runtime = build_runtime(
        Settings(database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/nowhere")
    )
    pool = runtime.engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (BOT_POOL, BOT_OVERFLOW)  # type: ignore[attr-defined]
    assert BOT_POOL >= 20  # a getUpdates answer of dozens of presses stays on kept connections
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/nowhere", pool_size=3)
    assert engine.sync_engine.pool._max_overflow == 3  # type: ignore[attr-defined]
