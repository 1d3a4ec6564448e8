"""The real PTB Application in the test's event loop, its bot pointed at a sandbox.

    async with bot_rig(database_url) as rig:
        code = await rig.seed_class()
        pupil = await rig.join(code)                  # /start, age, consent
        await rig.feed(updates.message(update_id=rig.next_update(), user_id=pupil, text="hoi"))
        assert rig.errors == []                       # nothing reached BotHandlers.on_error

Updates go through `Application.process_update` (handlers, error handler) exactly as in
polling, and the wiring is the bot's own `post_init` (features, privacy, safety). Background
tasks (sender, retention, escalation) are stopped so the database only changes through
updates; `drain()` delivers the outbox to the sandbox when a test wants that.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from telegram import Update
from telegram.ext import Application
from telegram.warnings import PTBUserWarning

from bot.app import Runtime, build_application, build_runtime
from leerbot.settings import Settings
from sandbox.driver import SandboxClient
from store import repo
from store.models import Outbox, Pupil
from tests.support import updates
from tests.support.sandbox_server import running_sandbox

TOKEN = "424242:LEERBOT-TEST-TOKEN"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # Rasa off: connects fail at once, the engine falls back


class ErrorCounter(logging.Handler):
    """Collects what BotHandlers.on_error logs ("error while handling an update")."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "leerbot.bot":
            self.records.append(record)


@dataclass
class BotRig:
    """A sandbox, the product's runtime and its PTB Application, ready for updates."""

    app: Application  # type: ignore[type-arg]
    runtime: Runtime
    client: SandboxClient
    sandbox_url: str
    counter: ErrorCounter
    update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10_000))

    @property
    def errors(self) -> list[str]:
        """Errors logged by the Application's error handler, with their exception."""
        return [
            f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
            for r in self.counter.records
        ]

    @property
    def secret(self) -> bytes:
        return self.runtime.settings.secret

    def next_update(self) -> int:
        """A fresh update_id."""
        return next(self.update_ids)

    async def feed(self, data: dict[str, Any]) -> None:
        """One update through the Application, as polling would hand it over."""
        await self.app.process_update(Update.de_json(data, self.app.bot))

    async def say(self, user_id: int, text: str, **kwargs: Any) -> None:
        """The user sends a text message in their private chat."""
        await self.feed(
            updates.message(update_id=self.next_update(), user_id=user_id, text=text, **kwargs)
        )

    async def buttons(self, chat_id: int) -> dict[str, tuple[str, int]]:
        """Label → (callback data, outbox id) of the newest queued message with buttons."""
        async with self.runtime.sessions() as session:
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(Outbox.chat_id == chat_id)
                    .order_by(Outbox.id.desc())
                    .limit(40)
                )
            ).all()
        for row in rows:
            markup = row.payload.get("reply_markup") or {}
            keyboard = markup.get("inline_keyboard") or []
            if keyboard:
                return {b["text"]: (b["callback_data"], row.id) for line in keyboard for b in line}
        return {}

    async def press(self, user_id: int, label: str) -> str:
        """Press `label` on the newest message with buttons; returns its callback data."""
        offered = await self.buttons(user_id)
        assert label in offered, f"no button {label!r}; offered: {list(offered)}"
        data, message_id = offered[label]
        await self.feed(
            updates.callback(
                update_id=self.next_update(), user_id=user_id, data=data, message_id=message_id
            )
        )
        return data

    async def texts(self, chat_id: int, *, after: int = 0) -> list[str]:
        """Texts (and captions) queued for a chat, oldest first, after outbox id `after`."""
        async with self.runtime.sessions() as session:
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(Outbox.chat_id == chat_id, Outbox.id > after)
                    .order_by(Outbox.id)
                )
            ).all()
        return [str(r.payload.get("text") or r.payload.get("caption") or "") for r in rows]

    async def last_outbox_id(self) -> int:
        """The newest outbox id (to read only what came after)."""
        async with self.runtime.sessions() as session:
            rows = (
                await session.scalars(select(Outbox.id).order_by(Outbox.id.desc()).limit(1))
            ).all()
        return rows[0] if rows else 0

    async def seed_class(
        self,
        *,
        school: str = "Sint-Jozef VTI",
        klass: str = "5A",
        module: str | None = "wie-ben-ik",
    ) -> str:
        """School, teacher, class and an assignment; returns the join code."""
        async with self.runtime.sessions.begin() as session:
            found = await repo.school_by_name(session, school)
            if found is None:
                found = await repo.add_school(session, name=school)
            email = f"leerkracht-{klass.lower()}@school.be"
            teacher = await repo.staff_by_email(session, email)
            if teacher is None:
                teacher = await repo.add_staff(
                    session,
                    school=found,
                    email=email,
                    name="An Peeters",
                    role="teacher",
                    password_hash=None,
                )
            created = await repo.add_class(session, school=found, name=klass, teacher=teacher)
            if module:
                await repo.assign(session, klass=created, module_id=module, due=None)
            return created.join_code

    async def sandbox_user(self, name: str = "Noor") -> int:
        """A sandbox user who opened the chat (so the bot may write); returns the user id.

        Their "/start" waits unread in the sandbox: tests hand updates to the Application
        themselves, so nothing polls.
        """
        pupil = await self.client.create_pupil(name)
        await pupil.send("/start")
        return pupil.user_id

    async def join(
        self,
        code: str,
        *,
        user_id: int | None = None,
        name: str = "Noor",
        age: str = "13 of ouder",
    ) -> int:
        """A new pupil joins with the code and consents; returns their user (= chat) id."""
        if user_id is None:
            user_id = await self.sandbox_user(name)
        await self.say(user_id, f"/start {code}", first_name=name)
        await self.press(user_id, age)
        await self.press(user_id, "Ja, dat is oké")
        return user_id

    async def pupil(self, user_id: int) -> Pupil | None:
        """The pupil row of a Telegram user."""
        async with self.runtime.sessions() as session:
            return (
                await session.scalars(select(Pupil).where(Pupil.telegram_user_id == user_id))
            ).first()

    async def drain(self) -> None:
        """Deliver everything queued to the sandbox."""
        with warnings.catch_warnings():
            # The sender sends by method name (do_api_request); PTB suggests its wrappers.
            warnings.simplefilter("ignore", PTBUserWarning)
            await self.runtime.extras["sender"].drain()


def rig_settings(database_url: str, sandbox_url: str, **overrides: Any) -> Settings:
    """Settings of a bot process pointed at the sandbox."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "telegram_token": TOKEN,
        "telegram_api_url": f"{sandbox_url}/bot",
        "rasa_url": CLOSED_PORT_URL,
        "rasa_timeout": 0.2,
        "bot_username": "leerbot_test_bot",
        "send_rate_chat": 1000.0,
        "send_rate_global": 10000.0,
        **overrides,
    }
    return Settings(**values)


async def _stop_background(runtime: Runtime) -> None:
    sender = runtime.extras.get("sender")
    if sender is not None:
        await sender.stop()
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    runtime.tasks.clear()


@asynccontextmanager
async def bot_rig(database_url: str, **overrides: Any) -> AsyncIterator[BotRig]:
    """Sandbox + runtime + initialised Application (post_init ran, background stopped)."""
    async with running_sandbox() as (url, _sandbox_app):
        settings = rig_settings(database_url, url, **overrides)
        runtime = build_runtime(settings)
        app = build_application(runtime)
        counter = ErrorCounter()
        logging.getLogger("leerbot.bot").addHandler(counter)
        client = SandboxClient(url)
        await app.initialize()
        try:
            assert app.post_init is not None
            await app.post_init(app)
            await _stop_background(runtime)
            yield BotRig(app=app, runtime=runtime, client=client, sandbox_url=url, counter=counter)
        finally:
            logging.getLogger("leerbot.bot").removeHandler(counter)
            await _stop_background(runtime)
            await app.shutdown()
            if app.post_shutdown is not None:
                await app.post_shutdown(app)
            await client.aclose()
