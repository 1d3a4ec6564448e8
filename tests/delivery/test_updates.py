"""Inbound updates: a redelivered update has no second effect; one pupil's updates never
interleave, not even in two worker processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import Application

from bot.app import build_application, build_runtime
from flows.types import PupilState
from store.models import Answer, Outbox, ProcessedUpdate, Pupil, Run
from tests.support import updates
from tests.support.databases import PostgresFactory
from tests.support.ptb import BotRig, bot_rig

MODULE_BUTTON = "🆕 Wie ben ik?"


@asynccontextmanager
async def second_worker(rig: BotRig) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """Another bot process on the same database: its own runtime, locks and PTB Application."""
    runtime = build_runtime(rig.runtime.settings)
    runtime.extras["sender_mode"] = "external"  # only the database is shared, as in workers
    app = build_application(runtime, webhook=True)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    for task in runtime.tasks:  # escalation and retention ticks would only add noise
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    runtime.tasks.clear()
    try:
        yield app
    finally:
        await app.shutdown()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)


async def counts(rig: BotRig, user_id: int) -> dict[str, Any]:
    """What one pupil's updates changed: rows per table and the run's place."""
    async with rig.runtime.sessions() as s:
        pupil = (await s.scalars(select(Pupil).where(Pupil.telegram_user_id == user_id))).one()
        state = PupilState.load(pupil.state)
        return {
            "answers": await s.scalar(
                select(func.count()).select_from(Answer).where(Answer.pupil_id == pupil.id)
            ),
            "outbox": await s.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.chat_id == user_id)
            ),
            "updates": await s.scalar(select(func.count()).select_from(ProcessedUpdate)),
            "step": state.run.step if state.run else None,
            "selection": list(state.run.selection) if state.run else [],
            "runs": [
                (r.module_id, r.position)
                for r in (await s.scalars(select(Run).where(Run.pupil_id == pupil.id))).all()
            ],
        }


async def start_module(rig: BotRig) -> int:
    """A pupil who joined, consented and is at question 1 (a multi-choice)."""
    code = await rig.seed_class()
    user_id = await rig.join(code)
    await rig.press(user_id, MODULE_BUTTON)
    return user_id


def press(
    rig: BotRig, user_id: int, offered: dict[str, tuple[str, int]], label: str
) -> dict[str, Any]:
    """A callback update for `label` on the message that offered it (a fresh update id)."""
    data, message_id = offered[label]
    return updates.callback(
        update_id=rig.next_update(), user_id=user_id, data=data, message_id=message_id
    )


async def test_a_redelivered_update_has_one_effect(database_url: str) -> None:
    async with bot_rig(database_url) as rig:
        user_id = await start_module(rig)
        offered = await rig.buttons(user_id)
        toggle = press(rig, user_id, offered, "Met mijn handen werken")
        before = await counts(rig, user_id)
        await rig.feed(toggle)
        once = await counts(rig, user_id)
        # Telegram sends it again (a lost 200), twice at once and once more later.
        await asyncio.gather(rig.feed(toggle), rig.feed(toggle))
        await rig.feed(toggle)
        again = await counts(rig, user_id)
        assert once["selection"] == ["Met mijn handen werken"]  # a second toggle would undo it
        assert once["outbox"] == before["outbox"] + 1
        assert again == once

        done = press(rig, user_id, await rig.buttons(user_id), "Klaar ✅")
        await asyncio.gather(rig.feed(done), rig.feed(done))
        await rig.feed(done)
        after = await counts(rig, user_id)
        assert after["answers"] == 1
        assert after["step"] == "sterk"
        assert after["outbox"] == once["outbox"] + 1  # "Vraag 2 van 5", once
        assert rig.errors == []


async def test_two_fast_presses_of_one_pupil_both_count(database_url: str) -> None:
    """Two toggles at the same moment, each handled by another worker: none is lost."""
    async with bot_rig(database_url) as rig, second_worker(rig) as other:
        user_id = await start_module(rig)
        offered = await rig.buttons(user_id)
        first = Update.de_json(press(rig, user_id, offered, "Met mijn handen werken"), rig.app.bot)
        second = Update.de_json(press(rig, user_id, offered, "Buiten zijn"), other.bot)
        await asyncio.gather(rig.app.process_update(first), other.process_update(second))
        state = await counts(rig, user_id)
        assert sorted(state["selection"]) == ["Buiten zijn", "Met mijn handen werken"]
        assert rig.errors == []


async def test_a_double_tap_on_done_moves_the_pupil_on_once(database_url: str) -> None:
    async with bot_rig(database_url) as rig, second_worker(rig) as other:
        user_id = await start_module(rig)
        await rig.press(user_id, "Met mijn handen werken")
        offered = await rig.buttons(user_id)
        taps = [
            Update.de_json(press(rig, user_id, offered, "Klaar ✅"), bot)
            for bot in (rig.app.bot, other.bot)
        ]
        before = await counts(rig, user_id)
        mark = await rig.last_outbox_id()
        await asyncio.gather(rig.app.process_update(taps[0]), other.process_update(taps[1]))
        after = await counts(rig, user_id)
        assert after["answers"] == 1
        assert after["step"] == "sterk"
        assert [pos for _, pos in after["runs"]] == [pos + 1 for _, pos in before["runs"]]
        # The second tap finds question 2: its old button is expired and the question repeats.
        firsts = [t.split("\n")[0] for t in await rig.texts(user_id, after=mark)]
        expired = "Die knop is niet meer geldig. Hier is de vraag van nu."
        assert firsts == ["Vraag 2 van 5", expired, "Vraag 2 van 5"]
        assert rig.errors == []


async def test_an_update_survives_connections_the_database_dropped(
    postgres_factory: PostgresFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL restarted under a running bot: its pooled connections are dead. The bot does
    not test each one before use (three round trips per transaction); the update that meets a
    dead one runs again on a fresh connection."""
    url = await postgres_factory.new_async()
    async with bot_rig(url) as rig:
        user_id = await start_module(rig)
        toggle = press(rig, user_id, await rig.buttons(user_id), "Met mijn handen werken")
        killed = await _pg_fetchval(
            url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert killed >= 1  # the bot's pooled connections
        with caplog.at_level(logging.WARNING, logger="leerbot.conversation"):
            await rig.feed(toggle)
        assert rig.errors == []
        assert "database connection lost" in caplog.text
        assert (await counts(rig, user_id))["selection"] == ["Met mijn handen werken"]


async def _pg_fetchval(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()
