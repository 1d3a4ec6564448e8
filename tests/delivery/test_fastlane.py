"""The fast lane: the bot process sends a pressed button's edit itself, through the outbox.

The rig's own sender is stopped, so whatever arrives at the sandbox without `rig.drain()` came
from the worker's fast lane.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from telegram import Update
from telegram.ext import Application

from bot.fastlane import MAX_CHATS, FastLane
from store import repo
from store.models import Outbox, ProcessedUpdate, Pupil
from tests.delivery.support import queue
from tests.delivery.test_updates import MODULE_BUTTON, second_worker, start_module
from tests.support import updates
from tests.support.ptb import BotRig, bot_rig

OPTION = "Buiten zijn"


@asynccontextmanager
async def worker_with_lane(rig: BotRig) -> AsyncIterator[tuple[Application, FastLane]]:  # type: ignore[type-arg]
    """A worker next to an external sender: its conversation has a fast lane."""
    async with second_worker(rig) as app:
        lane = app.bot_data["runtime"].conversation.fast_lane
        assert isinstance(lane, FastLane)
        yield app, lane


async def option_update(rig: BotRig, user_id: int) -> dict[str, Any]:
    """A callback update ticking OPTION on the question the sandbox shows the pupil."""
    async with rig.runtime.sessions() as session:
        stmt = select(Outbox).where(Outbox.chat_id == user_id, Outbox.status == "sent")
        rows = (await session.scalars(stmt.order_by(Outbox.id.desc()))).all()
    row = next(r for r in rows if (r.payload.get("reply_markup") or {}).get("inline_keyboard"))
    keyboard = row.payload["reply_markup"]["inline_keyboard"]
    data = next(b["callback_data"] for line in keyboard for b in line if b["text"] == OPTION)
    assert row.message_id is not None
    return updates.callback(
        update_id=rig.next_update(), user_id=user_id, data=data, message_id=row.message_id
    )


async def press_option(rig: BotRig, app: Application, user_id: int) -> None:  # type: ignore[type-arg]
    """The pupil ticks OPTION on the question the sandbox shows them (sent by the sender)."""
    update = await option_update(rig, user_id)
    await app.process_update(Update.de_json(update, app.bot))


async def state_of(rig: BotRig, user_id: int) -> dict[str, Any]:
    async with rig.runtime.sessions() as session:
        stmt = select(Pupil.state).where(Pupil.telegram_user_id == user_id)
        return (await session.scalars(stmt)).one()


@contextmanager
def statements(app: Application) -> Iterator[list[str]]:  # type: ignore[type-arg]
    """The SQL statements the worker's engine sends while the block runs."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))  # (conn, cursor, statement, …)

    engine = app.bot_data["runtime"].engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def settled(lane: FastLane) -> None:
    """Wait until the lane's sends are done and recorded."""
    for _ in range(200):
        if not lane.in_flight:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the fast lane did not finish")


async def rows_of(rig: BotRig, chat_id: int, after: int) -> list[Outbox]:
    async with rig.runtime.sessions() as session:
        stmt = select(Outbox).where(Outbox.chat_id == chat_id, Outbox.id > after)
        return list((await session.scalars(stmt.order_by(Outbox.id))).all())


async def edits_seen(rig: BotRig, chat_id: int) -> list[dict[str, object]]:
    return [
        e
        for e in await rig.client.log(method="editMessageText")
        if e["chat_id"] == chat_id and e["outcome"] == "ok"
    ]


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "orm"])
async def test_a_pressed_option_is_redrawn_by_the_bot_itself(
    database_url: str, quick: bool
) -> None:
    async with bot_rig(database_url) as rig, worker_with_lane(rig) as (app, lane):
        conversation = app.bot_data["runtime"].conversation
        conversation.quick_presses = quick
        user_id = await start_module(rig)
        await rig.drain()  # the question reaches the pupil through the sender
        mark = await rig.last_outbox_id()
        before = len(await edits_seen(rig, user_id))
        with statements(app) as seen:
            await press_option(rig, app, user_id)
        updates_of_pupil = [s for s in seen if s.startswith("UPDATE pupil ")]
        if quick:
            # On the driver connection (store/lean.py): nothing through the ORM's engine.
            assert updates_of_pupil == [], seen
            assert not any(s.startswith("INSERT INTO outbox") for s in seen), seen
        else:
            # The pupil's new state and last_seen_at go out in one UPDATE: the lane's look at
            # the outbox does not flush the pupil half-way.
            assert len(updates_of_pupil) == 1, seen
        await settled(lane)
        rows = await rows_of(rig, user_id, mark)
        assert [(r.method, r.status, r.claimed_by) for r in rows] == [
            ("editMessageText", "sent", None)
        ]
        assert rows[0].message_id is not None
        assert rows[0].sent_at is not None
        edits = await edits_seen(rig, user_id)
        assert len(edits) == before + 1  # sent once, with no sender running
        assert (lane.sent, lane.handed_back) == (1, 0)


async def test_a_chat_with_messages_waiting_keeps_the_normal_way(database_url: str) -> None:
    async with bot_rig(database_url) as rig, worker_with_lane(rig) as (app, lane):
        user_id = await start_module(rig)
        await rig.drain()
        await queue(rig.runtime.sessions, user_id, ["Een bericht van je leerkracht"])
        mark = await rig.last_outbox_id()
        await press_option(rig, app, user_id)
        await settled(lane)
        rows = await rows_of(rig, user_id, mark)
        assert [(r.method, r.status) for r in rows] == [("editMessageText", "pending")]
        assert lane.sent == 0
        counted = lane.metrics.registry.get_sample_value
        assert counted("leerbot_quick_presses_total", {"outcome": "declined"}) == 1
        await rig.drain()  # the sender: the waiting message first, then the edit
        log = [
            str(e["method"]).lower()  # the log keeps the name as called
            for e in await rig.client.log()
            if e["chat_id"] == user_id and e["outcome"] == "ok"
        ]
        assert log[-2:] == ["sendmessage", "editmessagetext"]


async def test_a_refused_edit_is_handed_back_to_the_sender(database_url: str) -> None:
    async with bot_rig(database_url) as rig, worker_with_lane(rig) as (app, lane):
        user_id = await start_module(rig)
        await rig.drain()
        mark = await rig.last_outbox_id()
        woken: list[bool] = []
        lane.wake = lambda: woken.append(True)
        await rig.client.config(faults=[{"status": 502, "count": 1}])
        await press_option(rig, app, user_id)
        await settled(lane)
        rows = await rows_of(rig, user_id, mark)
        assert [(r.status, r.claimed_by) for r in rows] == [("pending", None)]
        assert (lane.sent, lane.handed_back, woken) == (0, 1, [True])
        await rig.drain()
        rows = await rows_of(rig, user_id, mark)
        assert [r.status for r in rows] == ["sent"]
        assert len(await edits_seen(rig, user_id)) == 1


async def test_a_stopping_bot_hands_back_what_it_holds(database_url: str) -> None:
    async with bot_rig(database_url) as rig:
        user_id = await start_module(rig)
        now = datetime.now(UTC)
        lane = FastLane(
            sessions=rig.runtime.sessions, bot=rig.app.bot, global_rate=30, chat_rate=1
        )
        async with rig.runtime.sessions.begin() as session:
            row = await repo.enqueue(
                session,
                chat_id=user_id,
                method="editMessageText",
                payload={"chat_id": user_id, "message_id": 1, "text": "x"},
                now=now,
                claimed_by=lane.owner,
            )
            assert repo.QUEUED not in session.info  # a claimed row wakes no sender
        await lane.stop()
        async with rig.runtime.sessions() as session:
            stored = await session.get(Outbox, row.id)
            assert stored is not None
            assert (stored.status, stored.claimed_by) == ("pending", None)


@pytest.mark.parametrize(
    ("waiting", "quiet"),
    [
        ([], True),
        ([("same", "sent", 0)], True),
        ([("same", "pending", 0)], False),
        ([("same", "sending", 0)], False),
        ([("same", "sending-lane", 0)], True),  # the lane's own edit in flight: queue behind
        ([("other", "sending", 9)], True),
        ([("other", "pending", 0)], True),  # another pupil's reply: the sender's business
        ([("other", "pending", 9)], False),  # a broadcast under way: keep its rate
        ([("other", "pending-later", 9)], True),
    ],
)
async def test_outbox_quiet(
    database_url: str, waiting: list[tuple[str, str, int]], quiet: bool
) -> None:
    async with bot_rig(database_url) as rig:
        now = datetime.now(UTC)
        async with rig.runtime.sessions.begin() as session:
            for chat, status, priority in waiting:
                row = await repo.enqueue(
                    session,
                    chat_id=1 if chat == "same" else 2,
                    method="sendMessage",
                    payload={"text": "x"},
                    priority=priority,
                    now=now,
                    claimed_by="bot:1:lane" if status == "sending-lane" else None,
                )
                row.status = status.split("-")[0]
                if status == "sending":
                    row.claimed_by = "sender:2:x"
                if status == "pending-later":
                    row.not_before = datetime(2099, 1, 1, tzinfo=UTC)
        async with rig.runtime.sessions() as session:
            assert await repo.outbox_quiet(session, 1, now=now, lane="bot:1:lane") is quiet


async def test_outbox_quiet_sees_rows_this_transaction_queued(database_url: str) -> None:
    async with bot_rig(database_url) as rig:
        now = datetime.now(UTC)
        async with rig.runtime.sessions.begin() as session:
            assert await repo.outbox_quiet(session, 1, now=now, lane="bot:1:lane")
            await repo.enqueue(
                session, chat_id=1, method="sendMessage", payload={"text": "x"}, now=now
            )
            assert not await repo.outbox_quiet(session, 1, now=now, lane="bot:1:lane")


async def test_a_reply_refused_behind_an_edit_in_flight_wakes_the_sender_once_it_is_recorded(
    database_url: str,
) -> None:
    """The chat's next reply went to the sender (it waited behind the lane's edit, claimed):
    the sender may only take it once the edit is recorded, so the lane wakes it then."""
    async with bot_rig(database_url) as rig:
        user_id = await start_module(rig)
        await rig.drain()
        async with rig.runtime.sessions() as session:
            stmt = select(Outbox).where(Outbox.chat_id == user_id, Outbox.status == "sent")
            shown = (await session.scalars(stmt.order_by(Outbox.id.desc()))).first()
        assert shown is not None
        lane = FastLane(
            sessions=rig.runtime.sessions, bot=rig.app.bot, global_rate=30, chat_rate=1
        )
        wakes: list[int] = []  # rows the recorder still held at each wake
        lane.wake = lambda: wakes.append(lane.recorder.waiting)

        async def edit(text: str) -> None:
            async with rig.runtime.sessions.begin() as session:
                row = await repo.enqueue(
                    session,
                    chat_id=user_id,
                    method="editMessageText",
                    payload={"chat_id": user_id, "message_id": shown.message_id, "text": text},
                    now=datetime.now(UTC),
                    claimed_by=lane.owner,
                )
            lane.start([row])

        await edit("Eerste keer aangepast")
        await settled(lane)
        assert wakes == []  # nothing followed: the sender has nothing to do
        await edit("Tweede keer aangepast")
        lane.refused(user_id)  # while that edit is in flight
        await settled(lane)
        for _ in range(100):
            if wakes:
                break
            await asyncio.sleep(0.02)
        assert wakes == [0]  # woken once, after the edit was recorded
        assert lane.sent == 2
        await lane.stop()


async def _after_one_press(
    rig: BotRig,
    app: Application,  # type: ignore[type-arg]
    lane: FastLane,
    user_id: int,
    *,
    quick: bool,
) -> dict[str, object]:
    """Everything a ticked option leaves in the database, on one path."""
    conversation = app.bot_data["runtime"].conversation
    conversation.quick_presses = quick
    taken = conversation.quick_taken
    await rig.drain()
    mark = await rig.last_outbox_id()
    pressed_at = datetime.now(UTC)
    await press_option(rig, app, user_id)
    await settled(lane)
    assert conversation.quick_taken == taken + quick
    async with rig.runtime.sessions() as session:
        pupil = (
            await session.scalars(select(Pupil).where(Pupil.telegram_user_id == user_id))
        ).one()
        assert pupil.last_seen_at is not None
        assert pupil.last_seen_at >= pressed_at
    rows = await rows_of(rig, user_id, mark)
    keyboard = rows[0].payload.get("reply_markup", {}).get("inline_keyboard", [])
    return {
        "state": pupil.state,
        "pupil": (pupil.lang, pupil.reminders_off, pupil.blocked, pupil.chat_id == user_id),
        "outbox": [
            (r.method, r.status, r.claimed_by, r.priority, r.attempts, r.pupil_id == pupil.id)
            for r in rows
        ],
        "text": rows[0].payload["text"],
        "labels": [[b["text"] for b in line] for line in keyboard],
    }


async def test_a_quick_press_writes_what_the_orm_way_writes(database_url: str) -> None:
    async with bot_rig(database_url) as rig, worker_with_lane(rig) as (app, lane):
        code = await rig.seed_class()
        pupils = [await rig.join(code) for _ in range(2)]
        for user_id in pupils:
            await rig.press(user_id, MODULE_BUTTON)
        async with rig.runtime.sessions() as session:
            before = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
        quick = await _after_one_press(rig, app, lane, pupils[0], quick=True)
        orm = await _after_one_press(rig, app, lane, pupils[1], quick=False)
        async with rig.runtime.sessions() as session:
            after = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
    assert quick == orm
    assert quick["outbox"] == [("editMessageText", "sent", None, 0, 0, True)]
    assert quick["state"] != {}
    assert after == (before or 0) + 2  # each press recorded its update id


async def test_a_redelivered_quick_press_has_one_effect(database_url: str) -> None:
    async with bot_rig(database_url) as rig, worker_with_lane(rig) as (app, lane):
        conversation = app.bot_data["runtime"].conversation
        user_id = await start_module(rig)
        await rig.drain()
        mark = await rig.last_outbox_id()
        update = await option_update(rig, user_id)
        await app.process_update(Update.de_json(update, app.bot))
        state_once = await state_of(rig, user_id)
        await app.process_update(Update.de_json(update, app.bot))  # delivered again
        await settled(lane)
        state_twice = await state_of(rig, user_id)
        assert conversation.quick_taken == 1  # the second one was a duplicate, not a press
        counted = lane.metrics.registry.get_sample_value
        assert counted("leerbot_quick_presses_total", {"outcome": "taken"}) == 1
        assert counted("leerbot_quick_presses_total", {"outcome": "duplicate"}) == 1
        assert state_twice == state_once
        assert len(await rows_of(rig, user_id, mark)) == 1


async def test_the_lane_takes_a_burst_but_not_without_limit(database_url: str) -> None:
    async with bot_rig(database_url) as rig:
        lane = FastLane(
            sessions=rig.runtime.sessions, bot=rig.app.bot, global_rate=1000, chat_rate=1000
        )
        edit: list[tuple[str, dict[str, Any]]] = [("editMessageText", {})]
        # A burst of presses from one getUpdates answer stays in the lane…
        for chat_id in range(1, MAX_CHATS + 1):
            assert lane.admits(chat_id, edit)
            lane._chats[chat_id] = deque()  # as start() does while an edit is in flight
        assert MAX_CHATS >= 32
        # …up to a limit, beyond which the sender shares the work; a chat already in flight
        # here still queues behind its own edit.
        assert not lane.admits(MAX_CHATS + 1, edit)
        assert lane.admits(1, edit)
        assert not lane.admits(1, [("sendMessage", {})])
