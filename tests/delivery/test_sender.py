"""The outbox sender against the sandbox Bot API: order, limits, 429, 5xx, blocked pupils."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import telegram
from sqlalchemy import event, select

from bot.sender import HOST, Sender
from sandbox.driver import SandboxClient, SimulatedPupil
from store import repo
from store.db import Sessions, make_engine, make_sessions
from store.models import Flag, FlagEvent, Pupil
from tests.delivery.support import assert_each_sent_once_in_order, outbox, queue

FAST = {"global_rate": 500.0, "chat_rate": 100.0, "chat_burst": 100.0}


def sender_for(sessions: Sessions, bot: telegram.Bot, **options: object) -> Sender:
    """A sender as a bot process builds it (SKIP LOCKED on PostgreSQL)."""
    engine = sessions.kw["bind"]
    options = {"skip_locked": engine.dialect.name == "postgresql", "engine": engine, **options}
    return Sender(sessions=sessions, bot=bot, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def running(sender: Sender) -> AsyncIterator[Sender]:
    """The sender's loop in the background, stopped cleanly at the end."""
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        await sender.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_until_sent(sessions: Sessions, count: int, timeout: float = 20.0) -> None:
    """Until `count` outbox rows are sent or dead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await outbox(sessions)
        if sum(r.status in {"sent", "dead"} for r in rows) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"not delivered in {timeout} s: "
        f"{[(r.id, r.status, r.last_error) for r in rows if r.status != 'sent']}"
    )


async def pupils(client: SandboxClient, count: int) -> list[SimulatedPupil]:
    """Pupils who opened a chat with the bot (Telegram refuses to let a bot write first)."""
    created = await client.create_pupils(count)
    await asyncio.gather(*(p.send("/start") for p in created))
    return created


async def test_every_message_reaches_its_chat_once_and_in_order(
    sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    chats = [p.chat_id for p in await pupils(client, 12)]
    for chat in chats:
        await queue(sessions, chat, [f"bericht {i}" for i in range(5)])
    await sender_for(sessions, tg_bot, **FAST).drain()
    assert_each_sent_once_in_order(await client.log(), await outbox(sessions))


async def test_two_senders_deliver_each_message_once_and_in_order(
    database_url: str, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    engines = [make_engine(database_url) for _ in range(2)]
    makers = [make_sessions(e) for e in engines]
    try:
        chats = [p.chat_id for p in await pupils(client, 20)]
        # Small windows (4 messages claimed at a time), a rate neither can drain the queue
        # with alone and quick polling make both senders take turns.
        options = {
            "global_rate": 60.0,
            "chat_rate": 100.0,
            "chat_burst": 100.0,
            "window_s": 0.001,
            "idle_poll_s": 0.05,
        }
        async with (
            running(sender_for(makers[0], tg_bot, **options)) as one,
            running(sender_for(makers[1], tg_bot, **options)) as two,
        ):
            for round_ in range(4):  # messages keep coming while both send
                for chat in chats:
                    await queue(makers[0], chat, [f"{round_}.{i}" for i in range(2)])
                one.wake()
                two.wake()
                await asyncio.sleep(0.05)
            await wait_until_sent(makers[0], len(chats) * 8)
        assert one.stats.sent > 0
        assert two.stats.sent > 0
        assert_each_sent_once_in_order(await client.log(), await outbox(makers[0]))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_reply_overtakes_a_broadcast_in_progress(
    sqlite_sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    crowd = [p.chat_id for p in await pupils(client, 61)]
    asker, crowd = crowd[0], crowd[1:]
    for chat in crowd:
        await queue(sqlite_sessions, chat, ["Nieuwe opdracht!"], priority=9)
    async with running(sender_for(sqlite_sessions, tg_bot, global_rate=20.0)) as sender:
        await wait_until_sent(sqlite_sessions, 10)
        await queue(sqlite_sessions, asker, ["Antwoord op je knop"], priority=0)
        sender.wake()
        await wait_until_sent(sqlite_sessions, 61)
    sends = [e for e in await client.log() if e["method"].lower() == "sendmessage"]
    position = next(i for i, e in enumerate(sends) if e["chat_id"] == asker)
    # At 20/s the broadcast needs 3 s; the reply went out within about a second of sending.
    assert position < 40, f"the reply was message {position + 1} of {len(sends)}"


async def test_rate_limits_keep_telegram_from_answering_429(
    sqlite_sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    await client.config(rate_limits=True)
    chats = [p.chat_id for p in await pupils(client, 41)]
    await queue(sqlite_sessions, chats[0], [f"deel {i}" for i in range(6)])
    for chat in chats[1:]:
        await queue(sqlite_sessions, chat, ["Nieuwe opdracht!"], priority=9)
    await sender_for(sqlite_sessions, tg_bot).drain(limit_s=20)
    log = await client.log()
    start = log[0]["time"]
    refused = [
        (round(e["time"] - start, 3), e["chat_id"], e.get("description"))
        for e in log
        if e["outcome"] == "429"
    ]
    chat0 = [round(e["time"] - start, 3) for e in log if e["chat_id"] == chats[0]]
    assert refused == [], f"first chat's calls at {chat0}"
    busy = [
        e["time"] for e in log if e["chat_id"] == chats[0] and e["method"].lower() == "sendmessage"
    ]
    assert len(busy) == 6
    assert busy[5] - busy[2] >= 2.5  # a burst of 3, then about one a second
    assert_each_sent_once_in_order(log, await outbox(sqlite_sessions))


async def test_429_pauses_every_send_for_retry_after(
    sqlite_sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    chats = [p.chat_id for p in await pupils(client, 10)]
    for chat in chats:
        await queue(sqlite_sessions, chat, [f"bericht {i}" for i in range(3)])
    await client.config(faults=[{"status": 429, "retry_after": 2, "count": 1}])
    sender = sender_for(sqlite_sessions, tg_bot, **FAST)
    await sender.drain(limit_s=15)
    log = await client.log()
    assert [e["outcome"] for e in log].count("429") == 1
    assert sender.stats.retry_after == 1
    calls = tg_bot.request.calls  # type: ignore[attr-defined]  # TimedRequest
    told = next(end for _, _, end, status in calls if status == 429)
    started_in_window = [
        round(start - told, 3) for _, start, _, _ in calls if told < start < told + 2.0
    ]
    assert started_in_window == []
    assert max(start for _, start, _, _ in calls) >= told + 2.0
    # On the sandbox's side: after the 429 only calls that were already on their way arrived.
    in_flight = sum(1 for _, start, end, _ in calls if start < told < end)
    refused_at = next(e["time"] for e in log if e["outcome"] == "429")
    arrived = [e for e in log if refused_at < e["time"] < refused_at + 1.9]
    assert len(arrived) <= in_flight
    assert_each_sent_once_in_order(log, await outbox(sqlite_sessions))


async def test_bad_gateway_backs_off_then_everything_arrives_in_order(
    sqlite_sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    chats = [p.chat_id for p in await pupils(client, 5)]
    for chat in chats:
        await queue(sqlite_sessions, chat, [f"bericht {i}" for i in range(3)])
    await client.config(faults=[{"status": 502, "seconds": 2.5}])
    started = time.monotonic()
    await sender_for(sqlite_sessions, tg_bot, **FAST).drain(limit_s=20)
    assert time.monotonic() - started >= 2.0
    log = await client.log()
    failed = [e["time"] for e in log if e["outcome"] == "502"]
    # Without backoff five chats would hammer the API hundreds of times in 2.5 s.
    assert 1 <= len(failed) <= 15
    first_tries = sorted({round(t, 1) for t in failed})
    gaps = [b - a for a, b in itertools.pairwise(first_tries)]
    assert gaps == sorted(gaps) or len(gaps) < 3, f"retries not backing off: {gaps}"
    assert_each_sent_once_in_order(log, await outbox(sqlite_sessions))


async def test_a_pupil_who_blocks_the_bot_is_marked_and_skipped(
    sqlite_sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    gone, other = await pupils(client, 2)
    async with sqlite_sessions.begin() as s:
        for p in (gone, other):
            await repo.create_pupil(
                s, telegram_user_id=p.user_id, chat_id=p.chat_id, first_name=p.name
            )
    await gone.block()
    await queue(sqlite_sessions, gone.chat_id, ["een", "twee", "drie"])
    await queue(sqlite_sessions, other.chat_id, ["hallo"])
    sender = sender_for(sqlite_sessions, tg_bot, **FAST)
    await sender.drain()
    log = await client.log()
    tries = [e["outcome"] for e in log if e["chat_id"] == gone.chat_id]
    assert tries == ["403"]
    assert [e["outcome"] for e in log if e["chat_id"] == other.chat_id] == ["ok"]
    rows = await outbox(sqlite_sessions)
    assert [r.status for r in rows if r.chat_id == gone.chat_id] == ["dead"] * 3
    async with sqlite_sessions() as s:
        blocked = {p.telegram_user_id: p.blocked for p in (await s.scalars(select(Pupil))).all()}
    assert blocked == {gone.user_id: True, other.user_id: False}


async def test_messages_claimed_by_a_dead_sender_are_sent_at_once(
    sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    (pupil,) = await pupils(client, 1)
    await queue(sessions, pupil.chat_id, ["een", "twee"])
    async with sessions.begin() as s:  # a sender on this host, process 99999999, long gone
        await repo.claim_outbox(s, owner=f"{HOST}:99999999:dead", now=datetime.now(UTC), limit=5)
    started = time.monotonic()
    async with running(sender_for(sessions, tg_bot, **FAST)) as sender:
        await wait_until_sent(sessions, 2, timeout=5)
    assert time.monotonic() - started < 2.0  # not the 30 s a silent foreign claim waits
    assert sender.stats.recovered == 1
    assert_each_sent_once_in_order(await client.log(), await outbox(sessions))


async def test_a_staff_reply_the_blocked_pupil_never_got_shows_on_its_flag_once(
    sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    """The sender hears the 403: pupil marked, the reply dead, its flag says so (one event)."""
    (gone,) = await pupils(client, 1)
    async with sessions.begin() as s:
        pupil = await repo.create_pupil(
            s, telegram_user_id=gone.user_id, chat_id=gone.chat_id, first_name=gone.name
        )
        flag = Flag(pupil_id=pupil.id, pupil_pseudonym="p1", kind="crisis", reason="test")
        s.add(flag)
        await s.flush()
        await repo.enqueue(
            s,
            chat_id=gone.chat_id,
            method="sendMessage",
            payload={"chat_id": gone.chat_id, "text": "Hoi, ik ben Sara."},
            priority=3,
            pupil_id=pupil.id,
            flag_id=flag.id,
            now=datetime.now(UTC),
        )
    await gone.block()
    await sender_for(sessions, tg_bot, **FAST).drain()
    async with sessions() as s:
        stored = await s.get(Flag, flag.id)
        assert stored is not None
        assert stored.delivery_failed is True
        events = (
            await s.scalars(select(FlagEvent.action).where(FlagEvent.flag_id == flag.id))
        ).all()
        assert list(events) == ["delivery_failed"]
        assert (await s.get(Pupil, pupil.id)).blocked is True  # type: ignore[union-attr]
    [row] = await outbox(sessions)
    assert row.status == "dead"


async def test_an_idle_sender_on_sqlite_looks_without_taking_the_write_lock(
    sqlite_sessions: Sessions, client: SandboxClient, tg_bot: telegram.Bot
) -> None:
    # The bot writes in another process: every write lock the sender takes while it has
    # nothing to do would make the bot's presses wait (store/db.py, make_sessions).
    [pupil] = await pupils(client, 1)
    sender = sender_for(sqlite_sessions, tg_bot, **FAST)
    begins: list[str] = []

    def seen(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        if sql.startswith("BEGIN"):
            begins.append(sql)

    engine = sqlite_sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            assert await sender._round() > 0  # nothing due: wait
            await sender._maintain(force=True)
        assert len(begins) == 6  # three looks for due messages, three for stale claims
        assert set(begins) == {"BEGIN DEFERRED"}
        begins.clear()
        await queue(sqlite_sessions, pupil.chat_id, ["Hallo"])
        begins.clear()
        assert await sender._round() == 0  # claimed: look again at once
        assert "BEGIN IMMEDIATE" in begins
        await sender._settle(time.monotonic() + 10)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [r.status for r in await outbox(sqlite_sessions)] == ["sent"]
