"""Outbox claims: one chat's messages go one at a time and in order, whoever sends them."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from store import repo
from store.db import Sessions, make_engine, make_sessions
from store.models import Outbox
from tests.delivery.support import outbox, queue

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def texts(rows: list[Outbox]) -> list[str]:
    return [str(r.payload["text"]) for r in rows]


async def test_a_claim_takes_the_oldest_message_of_each_idle_chat(
    sessions: Sessions, database_url: str
) -> None:
    await queue(sessions, 1, ["1a", "1b", "1c"])
    await queue(sessions, 2, ["2a", "2b"])
    await queue(sessions, 3, ["3a"], priority=9)
    skip = database_url.startswith("postgresql")
    async with sessions.begin() as s:
        first = await repo.claim_outbox(s, owner="a", now=NOW, limit=10, skip_locked=skip)
        again = await repo.claim_outbox(s, owner="b", now=NOW, limit=10, skip_locked=skip)
    assert texts(first) == ["1a", "2a", "3a"]
    assert again == []  # every chat has a message being sent
    async with sessions.begin() as s:
        await repo.finish_outbox(s, first[0].id, status="sent", now=NOW, message_id=7)
        rest = await repo.claim_followers(s, owner="a", now=NOW, chat_ids=[1], limit=10)
    assert texts(rest) == ["1b", "1c"]


async def test_followers_come_along_up_to_a_message_that_must_wait(sessions: Sessions) -> None:
    await queue(sessions, 1, ["first", "second", "later", "last"])
    rows = await outbox(sessions)
    async with sessions.begin() as s:
        await s.execute(
            update(Outbox)
            .where(Outbox.id == rows[2].id)
            .values(not_before=NOW + timedelta(seconds=30))
        )
        head = await repo.claim_outbox(s, owner="a", now=NOW, limit=10)
        behind = await repo.claim_followers(s, owner="a", now=NOW, chat_ids=[1], limit=10)
    assert (texts(head), texts(behind)) == (["first"], ["second"])


async def test_urgent_claims_leave_broadcasts_waiting(sessions: Sessions) -> None:
    await queue(sessions, 1, ["notice"], priority=9)
    await queue(sessions, 2, ["reply"], priority=0)
    async with sessions.begin() as s:
        urgent = await repo.claim_outbox(s, owner="a", now=NOW, limit=10, max_priority=3)
    assert texts(urgent) == ["reply"]


async def test_a_message_waiting_to_retry_holds_back_the_rest_of_its_chat(
    sessions: Sessions,
) -> None:
    await queue(sessions, 1, ["first", "second"])
    rows = await outbox(sessions)
    async with sessions.begin() as s:
        await s.execute(
            update(Outbox)
            .where(Outbox.id == rows[0].id)
            .values(not_before=NOW + timedelta(seconds=30))
        )
        assert await repo.claim_outbox(s, owner="a", now=NOW, limit=10) == []
        later = await repo.claim_outbox(s, owner="a", now=NOW + timedelta(seconds=31), limit=10)
    assert texts(later) == ["first"]


async def test_claims_of_a_dead_sender_go_back_to_the_queue(sessions: Sessions) -> None:
    await queue(sessions, 1, ["a"])
    await queue(sessions, 2, ["b"])
    await queue(sessions, 3, ["c"])
    async with sessions.begin() as s:
        await repo.claim_outbox(s, owner="dead", now=NOW, limit=1)
        await repo.claim_outbox(s, owner="silent", now=NOW - timedelta(minutes=5), limit=1)
        await repo.claim_outbox(s, owner="alive", now=NOW - timedelta(minutes=5), limit=1)
        recovered = await repo.recover_outbox(
            s, stale_before=NOW - timedelta(seconds=30), dead_owners=["dead"], alive_owner="alive"
        )
    assert recovered == 2
    rows = await outbox(sessions)
    assert [(r.status, r.claimed_by) for r in rows] == [
        ("pending", None),
        ("pending", None),
        ("sending", "alive"),
    ]


async def test_concurrent_senders_never_share_a_message_or_a_chat(database_url: str) -> None:
    """Four senders with their own connections claim and finish as fast as they can."""
    engines = [make_engine(database_url) for _ in range(4)]
    makers = [make_sessions(e) for e in engines]
    try:
        chats = list(range(1, 21))
        for chat in chats:
            await queue(makers[0], chat, [f"{chat}:{i}" for i in range(8)])
        finished: list[tuple[int, int]] = []  # (chat, row id) in finishing order
        skip = database_url.startswith("postgresql")

        async def work(owner: str, sessions: Sessions) -> None:
            idle = 0
            while idle < 5:
                now = datetime.now(UTC)
                async with sessions.begin() as s:
                    rows = await repo.claim_outbox(
                        s, owner=owner, now=now, limit=3, skip_locked=skip
                    )
                idle = 0 if rows else idle + 1
                for row in rows:
                    # A random "send" time: two holders of one chat would finish out of order.
                    await asyncio.sleep(random.uniform(0, 0.003))
                    finished.append((row.chat_id, row.id))
                    async with sessions.begin() as s:
                        await repo.finish_outbox(s, row.id, status="sent", now=now)
                await asyncio.sleep(0.001)

        await asyncio.gather(*(work(f"s{i}", m) for i, m in enumerate(makers)))
        rows = await outbox(makers[0])
        assert {r.status for r in rows} == {"sent"}
        assert sorted(i for _, i in finished) == [r.id for r in rows]  # each once
        for chat in chats:
            order = [i for c, i in finished if c == chat]
            assert order == sorted(order), f"chat {chat} out of order"
    finally:
        for engine in engines:
            await engine.dispose()
