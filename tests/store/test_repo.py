"""Repositories on SQLite and PostgreSQL: the rules the CLI and bot rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from store import repo
from store.db import Sessions, make_engine, make_sessions
from store.models import Outbox, ProcessedUpdate, Pupil

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine: AsyncEngine = make_engine(database_url)
    yield make_sessions(engine)
    await engine.dispose()


async def test_class_gets_unique_readable_join_code(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        school = await repo.add_school(s, name="GO! Atheneum")
        teacher = await repo.add_staff(
            s, school=school, email="An@School.be", name="An", role="teacher", password_hash=None
        )
        a = await repo.add_class(s, school=school, name="5A", teacher=teacher)
        b = await repo.add_class(s, school=school, name="5B", teacher=teacher)
    assert a.join_code != b.join_code
    assert repo.is_join_code(a.join_code)
    assert not set(a.join_code) & set("01IO")
    async with sessions() as s:
        assert (await repo.class_by_code(s, a.join_code.lower())).name == "5A"
        assert (await repo.staff_by_email(s, "an@school.be")).email == "an@school.be"


async def test_duplicate_class_and_staff_are_refused_with_one_line(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        school = await repo.add_school(s, name="VTI")
        await repo.add_class(s, school=school, name="6TSO", teacher=None)
        with pytest.raises(repo.StoreError, match="class '6TSO' already exists in VTI"):
            await repo.add_class(s, school=school, name="6TSO", teacher=None)
        await repo.add_staff(
            s, school=school, email="x@vti.be", name="X", role="admin", password_hash=None
        )
        with pytest.raises(repo.StoreError, match="already exists"):
            await repo.add_staff(
                s, school=school, email="X@vti.be", name="X2", role="admin", password_hash=None
            )
        with pytest.raises(repo.StoreError, match="unknown role 'boss'"):
            await repo.add_staff(
                s, school=school, email="y@vti.be", name="Y", role="boss", password_hash=None
            )


async def test_an_update_is_claimed_once(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        assert await repo.claim_update(s, 1001, now=NOW) is True
    async with sessions.begin() as s:
        assert await repo.claim_update(s, 1001, now=NOW) is False
        assert await repo.claim_update(s, 1002, now=NOW) is True
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ProcessedUpdate)) == 2


async def test_outbox_is_ordered_by_priority_then_age_and_respects_not_before(
    sessions: Sessions,
) -> None:
    async with sessions.begin() as s:
        for i, prio in enumerate([9, 0, 9, 0]):
            await repo.enqueue(
                s,
                chat_id=10 + i,
                method="sendMessage",
                payload={"text": str(i)},
                priority=prio,
                now=NOW,
            )
        later = await repo.enqueue(
            s, chat_id=99, method="sendMessage", payload={"text": "x"}, now=NOW
        )
        later.not_before = NOW + timedelta(seconds=30)
    async with sessions() as s:
        rows = await repo.pending_outbox(s, now=NOW)
        assert [r.payload["text"] for r in rows] == ["1", "3", "0", "2"]
        rows = await repo.pending_outbox(s, now=NOW + timedelta(minutes=1))
        assert "x" in [r.payload["text"] for r in rows]


async def test_blocked_chat_drops_its_pending_messages(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        pupil = await repo.create_pupil(s, telegram_user_id=5, chat_id=5, first_name="Sam")
        await repo.enqueue(
            s, chat_id=5, method="sendMessage", payload={}, pupil_id=pupil.id, now=NOW
        )
        await repo.enqueue(s, chat_id=6, method="sendMessage", payload={}, now=NOW)
    async with sessions.begin() as s:
        await repo.mark_chat_blocked(s, 5)
    async with sessions() as s:
        assert (await s.get(Pupil, pupil.id)).blocked is True
        rows = (await s.execute(select(Outbox.chat_id, Outbox.status))).all()
        statuses = dict(rows)
        assert statuses == {5: "dead", 6: "pending"}


async def test_staff_link_code_is_single_use_and_expires(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        school = await repo.add_school(s, name="KTA")
        staff = await repo.add_staff(
            s, school=school, email="c@kta.be", name="Sara", role="counsellor", password_hash=None
        )
        code = await repo.new_staff_link_code(s, staff, now=NOW)
    async with sessions.begin() as s:
        assert (
            await repo.link_staff(s, code=code, telegram_user_id=77, now=NOW + timedelta(days=2))
            is None
        )
        assert (await repo.link_staff(s, code=code, telegram_user_id=77, now=NOW)).name == "Sara"
        assert await repo.link_staff(s, code=code, telegram_user_id=78, now=NOW) is None
