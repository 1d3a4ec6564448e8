"""Crashes under load: every acknowledged answer is kept, every message arrives once, in order.

Pupils work through a module at a quick human pace while a bot process is SIGKILLed and comes
back. Afterwards the sandbox's log of Bot API calls is held against the outbox: per chat, the
sends Telegram accepted must be exactly the queued messages, in queue order.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from store.db import Sessions, make_engine, make_sessions
from store.models import Answer, Pupil
from tests.delivery.processes import Service
from tests.delivery.pupils import Walk, walk
from tests.delivery.support import assert_each_sent_once_in_order, outbox, seed_class
from tests.support.databases import PostgresFactory
from tests.support.sandbox_server import free_port
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

PUPILS = 12
THINK = (0.2, 0.5)  # seconds between a reply and the next tap: quick, but human
LOAD_BEFORE_CRASH = 3.0
# The sandbox has Telegram's limits off here; the per-chat limit would only stretch the test.
FAST_CHATS = {"LEERBOT_SEND_RATE_CHAT": "20"}


async def drained(sessions: Sessions, timeout: float = 20.0) -> None:
    """Until nothing waits in the outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await outbox(sessions)
        if all(r.status in {"sent", "dead"} for r in rows):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the outbox did not drain")


async def answers_by_pupil(sessions: Sessions) -> dict[int, set[str]]:
    """Telegram user id → the steps with a stored answer."""
    async with sessions() as s:
        rows = (await s.execute(select(Pupil.telegram_user_id, Answer.step_id)
                                .join(Answer, Answer.pupil_id == Pupil.id))).all()
    found: dict[int, set[str]] = {}
    for user_id, step in rows:
        found.setdefault(user_id, set()).add(step)
    return found


async def load(stack: Stack, code: str) -> tuple[list[asyncio.Task[Walk]], float]:
    """Start PUPILS pupils on the module; returns their tasks and the deadline."""
    pupils = await stack.client.create_pupils(PUPILS)
    until = time.monotonic() + 60.0
    tasks = [asyncio.create_task(walk(p, code, until=until, think=THINK)) for p in pupils]
    await asyncio.sleep(LOAD_BEFORE_CRASH)
    return tasks, until


async def check(stack: Stack, sessions: Sessions, walks: list[Walk]) -> None:
    """Nothing acknowledged is lost, nothing is sent twice or out of order."""
    unfinished = [(w.pupil.name, w.highest_question(), w.errors[-2:]) for w in walks
                  if not w.finished]
    assert unfinished == []
    await drained(sessions)
    assert_each_sent_once_in_order(await stack.client.log(), await outbox(sessions))
    stored = await answers_by_pupil(sessions)
    for record in walks:
        missing = set(record.acknowledged_steps()) - stored.get(record.pupil.user_id, set())
        assert missing == set(), f"{record.pupil.name}: acknowledged but not stored: {missing}"


async def test_a_killed_bot_loses_no_answer_and_sends_each_message_once(
        sqlite_url: str) -> None:
    """Polling, the default: the sender runs inside the bot process and dies with it."""
    engine = make_engine(sqlite_url)
    sessions = make_sessions(engine)
    try:
        async with running_stack(sqlite_url, start_bot=False, extra_env=FAST_CHATS) as stack:
            code = await seed_class(sessions)
            bot = await Service.start(stack.env(), "bot", ready="Application started")
            tasks, _ = await load(stack, code)
            progress = sum(t.done() for t in tasks)
            await bot.stop(kill=True)
            bot = await Service.start(stack.env(), "bot", ready="Application started")
            walks = await asyncio.gather(*tasks)
            assert progress < PUPILS  # the crash came in the middle of the work
            await check(stack, sessions, walks)
            assert sum(w.actions for w in walks) >= PUPILS * 12
            await bot.stop()
    finally:
        await engine.dispose()


async def test_a_killed_webhook_worker_loses_no_answer_and_sends_each_message_once(
        postgres_factory: PostgresFactory) -> None:
    """Two webhook workers on PostgreSQL and one `leerbot sender`; one worker is SIGKILLed."""
    url = await postgres_factory.new_async()
    engine = make_engine(url)
    sessions = make_sessions(engine)
    port = free_port()
    env = {**FAST_CHATS, "LEERBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
           "LEERBOT_WEBHOOK_LISTEN": f"127.0.0.1:{port}"}
    try:
        async with running_stack(url, start_bot=False, extra_env=env) as stack:
            code = await seed_class(sessions)
            sender = await Service.start(stack.env(), "sender", "--listen", "",
                                         ready="sender started")
            bot = await Service.start(stack.env(), "bot", "--webhook", "--workers", "2",
                                      ready="webhook worker ready", count=2)
            tasks, _ = await load(stack, code)
            victim = bot.workers()[0]
            victim.kill()
            # uvicorn starts a new worker; meanwhile Telegram retries on the other one.
            await bot.wait_for("webhook worker ready", count=3)
            walks = await asyncio.gather(*tasks)
            await check(stack, sessions, walks)
            assert victim.pid not in [w.pid for w in bot.workers()]
            posts = (await stack.client.stats())["webhook_posts"]
            assert posts >= sum(w.actions for w in walks)
            await bot.stop()
            await sender.stop()
    finally:
        await engine.dispose()
