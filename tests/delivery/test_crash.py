"""Crashes under load: every acknowledged answer is kept, every message arrives once, in order.

Pupils work through a module at a quick human pace while a process is SIGKILLed and comes
back. Afterwards the sandbox's log of Bot API calls is held against the outbox: per chat, the
sends Telegram accepted must be exactly the queued messages, in queue order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from store.db import Sessions, make_engine, make_sessions
from store.models import Answer, Pupil
from tests.delivery.processes import Service
from tests.delivery.pupils import Walk, walk
from tests.delivery.support import (
    assert_each_sent_once_in_order,
    assert_sent_in_order_at_least_once,
    outbox,
    seed_class,
)
from tests.support.databases import PostgresFactory
from tests.support.sandbox_server import free_port
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

PUPILS = 12
THINK = (0.1, 0.3)  # seconds between a reply and the next tap: quick, but human
BEFORE_S = 2.5  # load before the crash
AFTER_S = 5.0  # load after the crashed process is back
# The sandbox has Telegram's limits off here; ours would only stretch the test (they have
# their own tests in test_sender.py).
FAST = {"LEERBOT_SEND_RATE_CHAT": "20", "LEERBOT_SEND_RATE_GLOBAL": "300"}


@dataclass
class Load:
    """Pupils at work, and the switch that ends their work."""

    stack: Stack
    sessions: Sessions
    tasks: list[asyncio.Task[Walk]]
    stop: asyncio.Event

    async def finish(self, after_s: float = AFTER_S) -> list[Walk]:
        """Keep the load on `after_s` more seconds, then let every pupil finish its action."""
        await asyncio.sleep(after_s)
        self.stop.set()
        return list(await asyncio.gather(*self.tasks))


@asynccontextmanager
async def product(database_url: str, env: dict[str, str]) -> AsyncIterator[tuple[Stack, Sessions]]:
    """Sandbox and database with a class to join (the processes are the test's business)."""
    engine = make_engine(database_url)
    try:
        async with running_stack(
            database_url, start_bot=False, extra_env={**FAST, **env}
        ) as stack:
            yield stack, make_sessions(engine)
    finally:
        await engine.dispose()


async def start_load(stack: Stack, sessions: Sessions) -> Load:
    """PUPILS pupils join and work; returns once they are well under way."""
    code = await seed_class(sessions)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(walk(p, code, stop=stop, think=THINK))
        for p in await stack.client.create_pupils(PUPILS)
    ]
    await asyncio.sleep(BEFORE_S)
    return Load(stack, sessions, tasks, stop)


async def drained(sessions: Sessions, timeout: float = 20.0) -> None:
    """Until nothing waits in the outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.status in {"sent", "dead"} for r in await outbox(sessions)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the outbox did not drain")


async def answers_by_pupil(sessions: Sessions) -> dict[int, set[str]]:
    """Telegram user id → the steps with a stored answer."""
    async with sessions() as s:
        rows = (
            await s.execute(
                select(Pupil.telegram_user_id, Answer.step_id).join(
                    Answer, Answer.pupil_id == Pupil.id
                )
            )
        ).all()
    found: dict[int, set[str]] = {}
    for user_id, step in rows:
        found.setdefault(user_id, set()).add(step)
    return found


async def check_answers(sessions: Sessions, walks: list[Walk]) -> None:
    """Every answer the bot acknowledged (by asking the next question) is stored."""
    assert sum(w.actions for w in walks) >= PUPILS * 8  # the pupils really worked
    stored = await answers_by_pupil(sessions)
    for record in walks:
        missing = set(record.acknowledged_steps()) - stored.get(record.pupil.user_id, set())
        assert missing == set(), f"{record.pupil.name}: acknowledged but not stored: {missing}"


async def test_a_killed_bot_loses_no_answer_and_sends_each_message_once(sqlite_url: str) -> None:
    """Polling, the default: the bot process dies; its sender child finishes what it sends."""
    async with product(sqlite_url, {}) as (stack, sessions):
        bot = await Service.start(stack.env(), "bot", ready="Application started")
        await bot.wait_for("sender started")
        load = await start_load(stack, sessions)
        await bot.stop(kill=True)
        bot = await Service.start(stack.env(), "bot", ready="Application started")
        walks = await load.finish()
        await drained(sessions)
        assert_each_sent_once_in_order(await stack.client.log(), await outbox(sessions))
        await check_answers(sessions, walks)
        await bot.stop()


async def test_a_killed_sender_sends_again_at_most_what_was_in_flight(sqlite_url: str) -> None:
    """The sending process itself dies: at-least-once, in order, and the bot starts a new one."""
    async with product(sqlite_url, {}) as (stack, sessions):
        bot = await Service.start(stack.env(), "bot", ready="Application started")
        await bot.wait_for("sender started")
        load = await start_load(stack, sessions)
        (child,) = bot.children()
        child.kill()
        await bot.wait_for("sender started", count=2)
        walks = await load.finish()
        await drained(sessions)
        again = assert_sent_in_order_at_least_once(
            await stack.client.log(), await outbox(sessions)
        )
        # Only a call Telegram answered as the process died can go out twice, and a chat has
        # one call in flight at a time: at most one repeated message per chat.
        assert set(again.values()) <= {1}
        await check_answers(sessions, walks)
        await bot.stop()


async def test_a_killed_webhook_worker_loses_no_answer_and_sends_each_message_once(
    postgres_factory: PostgresFactory,
) -> None:
    """Two webhook workers on PostgreSQL and one `leerbot sender`; one worker is SIGKILLed."""
    url = await postgres_factory.new_async()
    port = free_port()
    env = {
        "LEERBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "LEERBOT_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
    }
    async with product(url, env) as (stack, sessions):
        sender, bot = await asyncio.gather(
            Service.start(stack.env(), "sender", "--listen", "", ready="sender started"),
            Service.start(
                stack.env(),
                "bot",
                "--webhook",
                "--workers",
                "2",
                ready="webhook worker ready",
                count=2,
            ),
        )
        load = await start_load(stack, sessions)
        victim = bot.workers()[0]
        victim.kill()
        # uvicorn starts a new worker; meanwhile Telegram retries on the other one.
        await bot.wait_for("webhook worker ready", count=3)
        walks = await load.finish()
        await drained(sessions)
        assert_each_sent_once_in_order(await stack.client.log(), await outbox(sessions))
        await check_answers(sessions, walks)
        assert victim.pid not in [w.pid for w in bot.workers()]
        await bot.stop()
        await sender.stop()
