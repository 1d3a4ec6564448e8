"""Engines and session factories (store/db.py): how units of work lock an SQLite database."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from store import repo
from store.db import make_engine, make_sessions
from store.models import School


async def test_a_read_only_unit_does_not_hold_back_another_process_writing(
    sqlite_url: str,
) -> None:
    # Two engines: two processes, each with its one connection (the bot and its sender).
    reader_engine, writer_engine = make_engine(sqlite_url), make_engine(sqlite_url)
    try:
        reads, writes = make_sessions(reader_engine, read_only=True), make_sessions(writer_engine)
        async with reads() as looking:
            await looking.scalar(select(School.id))  # the unit's transaction is open now
            async with writes.begin() as session:  # would wait 30 s behind BEGIN IMMEDIATE
                await asyncio.wait_for(repo.add_school(session, name="VTI"), timeout=5)
            # It still sees the database as it was when it began (WAL snapshot).
            assert await looking.scalar(select(School.id)) is None
        async with reads() as looking:
            assert await looking.scalar(select(School.name)) == "VTI"
    finally:
        await reader_engine.dispose()
        await writer_engine.dispose()


async def test_a_unit_that_writes_takes_the_lock_when_it_begins(sqlite_url: str) -> None:
    first_engine, second_engine = make_engine(sqlite_url), make_engine(sqlite_url)
    try:
        first, second = make_sessions(first_engine), make_sessions(second_engine)
        async with first() as holding:
            await holding.scalar(select(School.id))  # BEGIN IMMEDIATE: the write lock is ours
            waiting = asyncio.create_task(_add_school(second))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # the other writer waits for it ...
            await holding.commit()
        await asyncio.wait_for(waiting, timeout=10)  # ... and goes on once it is released
    finally:
        await first_engine.dispose()
        await second_engine.dispose()


async def _add_school(sessions: object) -> None:
    async with sessions.begin() as session:  # type: ignore[attr-defined]
        await repo.add_school(session, name="KTA")
