"""python-telegram-bot wiring: Update → Incoming → Conversation; the sender runs alongside."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import BotCommand, Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.conversation import Conversation, Incoming
from bot.http import bot_request
from bot.sender import HTTP_POOL
from content.loader import Catalog, load_catalog
from content.models import Module
from leerbot.heap import freeze_startup_heap
from leerbot.settings import Settings
from store import repo
from store.db import Sessions, make_engine, make_sessions

log = logging.getLogger("leerbot.bot")

# PostgreSQL connections of a bot process. A burst of updates (one getUpdates answer holds
# dozens) once overflowed a pool of 10 and the overflow was closed on return and opened again
# in the next burst (TLS, codecs): at 100 presses/s p99 was 254-294 ms against 121-194 ms
# with 24 kept (A/B). Two webhook workers, the sender and the dashboard stay within
# PostgreSQL's default 100 connections.
BOT_POOL = 24
BOT_OVERFLOW = 4

COMMANDS = [
    ("menu", "Toon je opdrachten"),
    ("verder", "Ga verder waar je was"),
    ("pauze", "Zet je opdracht even stil"),
    ("mijnantwoorden", "Lees wat je vertelde"),
    ("praten", "Ik wil met iemand praten"),
    ("hulplijnen", "Telefoonnummers voor hulp"),
    ("privacy", "Wat bewaart Leerbot?"),
    ("mijngegevens", "Krijg al je gegevens in een bestand"),
    ("vergeetmij", "Wis alles over jou"),
    ("help", "Hoe werkt Leerbot?"),
]
MEDIA_KINDS = (
    "sticker",
    "voice",
    "photo",
    "video",
    "video_note",
    "audio",
    "document",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "animation",
    "game",
)


@dataclass
class Runtime:
    """Everything one bot process shares: database, content, conversation service, sender."""

    settings: Settings
    engine: AsyncEngine
    sessions: Sessions
    catalog: Catalog
    conversation: Conversation
    extras: dict[str, Any] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def load_runtime_catalog(sessions: Sessions, catalog: Catalog) -> None:
    """Store the current module versions and load older ones that runs may be pinned to."""
    async with sessions.begin() as session:
        await repo.store_module_versions(
            session,
            {
                (m.id, m.version): m.model_dump(mode="json", by_alias=True)
                for m in catalog.modules.values()
            },
        )
        for row in await repo.module_versions(session):
            if (row.module_id, row.version) not in catalog.versions:
                with contextlib.suppress(ValueError):
                    catalog.add(Module.model_validate(row.body), current=False)


def clean(text: str | None) -> str:
    """Pupil text as we store it: NUL removed (PostgreSQL text and JSONB cannot hold it)."""
    return (text or "").replace("\x00", "")


def incoming_from_update(update: Update) -> Incoming | None:
    """Reduce a Telegram update to an Incoming event; None for what pupils can't send us."""
    if update.callback_query is not None:
        query = update.callback_query
        message = query.message
        if message is None or query.from_user is None:
            return None
        return Incoming(
            update_id=update.update_id,
            user_id=query.from_user.id,
            chat_id=message.chat.id,
            kind="callback",
            first_name=clean(query.from_user.first_name),
            callback_data=query.data or "",
            message_id=message.message_id,
        )
    message = update.message
    if message is None or message.from_user is None:
        return None
    user = message.from_user
    base = {
        "update_id": update.update_id,
        "user_id": user.id,
        "chat_id": message.chat.id,
        "first_name": clean(user.first_name),
    }
    if message.text is not None:
        text = clean(message.text)
        if text.startswith("/"):
            head, _, args = text[1:].partition(" ")
            command = head.split("@", 1)[0]
            return Incoming(kind="command", command=command, args=args.strip(), text=text, **base)  # type: ignore[arg-type]  # base holds Incoming fields
        return Incoming(kind="text", text=text, **base)  # type: ignore[arg-type]  # same
    kind = next((k for k in MEDIA_KINDS if getattr(message, k, None)), "other")
    return Incoming(kind="media", text=clean(message.caption), media_kind=kind, **base)  # type: ignore[arg-type]  # same


class BotHandlers:
    """The PTB callbacks; thin: convert, hand over, answer the button."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update goes through here."""
        chat = update.effective_chat
        if chat is not None and chat.type != "private":
            await self._refuse_group(update)
            return
        if update.my_chat_member is not None:
            await self._member_change(update)
            return
        incoming = incoming_from_update(update)
        if incoming is None:
            log.info("ignored update %s of an unsupported type", update.update_id)
            return
        staff = self.runtime.extras.get("staff")
        if staff is not None and await staff.handle(incoming):
            if update.callback_query is not None:
                await update.callback_query.answer()
            return
        handled = await self.runtime.conversation.handle(incoming)
        if update.callback_query is not None:
            # Answering the button is a fast path outside the outbox: it only stops a spinner.
            with contextlib.suppress(Exception):
                await update.callback_query.answer(text=handled.notice or None)

    async def _refuse_group(self, update: Update) -> None:
        chat = update.effective_chat
        if chat is None or chat.type == "channel":
            return
        message = update.effective_message
        if message is None or update.edited_message is not None:
            return
        if (message.text and message.text.startswith("/")) or (
            message.new_chat_members and any(m.is_bot for m in message.new_chat_members)
        ):
            with contextlib.suppress(Exception):
                await context_bot(update).send_message(
                    chat.id, self.runtime.catalog.texts.get("staff.group_refused")
                )

    async def _member_change(self, update: Update) -> None:
        member = update.my_chat_member
        if member is None:
            return
        if member.new_chat_member.status in {"kicked", "left"}:
            async with self.runtime.sessions.begin() as session:
                await repo.mark_chat_blocked(session, member.chat.id)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log first, so we see it even if the reply fails; the pupil gets a neutral line."""
        log.error("error while handling an update", exc_info=context.error)
        if (
            isinstance(update, Update)
            and update.effective_chat is not None
            and update.effective_chat.type == "private"
        ):
            with contextlib.suppress(Exception):
                await context.bot.send_message(
                    update.effective_chat.id, self.runtime.catalog.texts.get("errors.generic")
                )


def context_bot(update: Update) -> Any:
    """The bot that received this update."""
    return update.get_bot()


def build_runtime(
    settings: Settings, *, catalog: Catalog | None = None, engine: AsyncEngine | None = None
) -> Runtime:
    """Database, content and the conversation service for one process."""
    catalog = catalog or load_catalog()
    engine = engine or make_engine(
        settings.database_url, pre_ping=False, pool_size=BOT_POOL, max_overflow=BOT_OVERFLOW
    )  # no pre-ping: see Conversation.handle
    sessions = make_sessions(engine)
    conversation = Conversation(sessions=sessions, catalog=catalog, secret=settings.secret)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        catalog=catalog,
        conversation=conversation,
    )


def build_application(runtime: Runtime, *, webhook: bool = False) -> Application:  # type: ignore[type-arg]  # PTB's generic defaults
    """The PTB Application pointed at LEERBOT_TELEGRAM_API_URL."""
    settings = runtime.settings
    from bot.features import install_features  # safety, staff, reminders, cards, sender

    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.file_url)
        .concurrent_updates(256)
        # Few connections (HTTP_POOL): more only cost CPU on every call (bot/http.py).
        .request(bot_request(settings.http_client, pool_size=HTTP_POOL, read_timeout=15))
        .get_updates_request(bot_request(settings.http_client, pool_size=2, read_timeout=35))
    )
    if webhook:
        builder = builder.updater(None)
    handlers = BotHandlers(runtime)

    async def post_init(app: Application) -> None:  # type: ignore[type-arg]  # PTB generics
        await load_runtime_catalog(runtime.sessions, runtime.catalog)
        await install_features(runtime, app)
        freeze_startup_heap()
        with contextlib.suppress(Exception):
            await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
            await app.bot.set_my_commands(
                [BotCommand(c, d) for c, d in COMMANDS], language_code="nl"
            )

    async def post_shutdown(_app: Application) -> None:  # type: ignore[type-arg]  # PTB generics
        if runtime.conversation.fast_lane is not None:
            await runtime.conversation.fast_lane.stop()
        sender = runtime.extras.get("sender")
        if sender is not None:
            await sender.stop()
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        rasa = runtime.extras.get("rasa")
        if rasa is not None:
            await rasa.aclose()
        await runtime.engine.dispose()

    app = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    app.add_handler(TypeHandler(Update, handlers.on_update))
    app.add_error_handler(handlers.on_error)
    app.bot_data["runtime"] = runtime
    return app


def run_polling(settings: Settings) -> None:
    """`leerbot bot`: poll Telegram (or the sandbox) until interrupted."""
    from bot.sender import SenderChild
    from leerbot.loop import new_loop

    new_loop(settings.event_loop)  # PTB runs on the current loop
    child = SenderChild()
    child.start()  # it starts up while we do (see bot/features.py)
    runtime = build_runtime(settings)
    runtime.extras.update(sender_mode="child", sender_child=child)
    app = build_application(runtime)
    app.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False, close_loop=False)
