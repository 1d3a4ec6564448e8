"""What a bot process runs besides the handlers: sender, NLU client, flags, staff chat."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bot.card import install_card
from bot.fastlane import FastLane
from bot.flags import flag_hook
from bot.ops import DeliveryMetrics
from bot.privacy import install_privacy
from bot.reminders import install_reminders
from bot.safety import install_safety
from bot.sender import OUTBOX_CHANNEL, SenderChild, make_sender
from bot.staff import StaffChat
from leerbot.retention import install_retention
from store.db import notify_on_commit
from store.models import Outbox

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.app import Runtime

log = logging.getLogger("leerbot.features")


async def install_features(runtime: Runtime, app: Application) -> None:  # type: ignore[type-arg]  # PTB generics
    """Start the sender and hook the product's features into the conversation service."""
    settings = runtime.settings
    conversation = runtime.conversation
    conversation.event_hooks.append(flag_hook)
    metrics = runtime.extras.setdefault("metrics", DeliveryMetrics())
    sender = make_sender(
        sessions=runtime.sessions,
        engine=runtime.engine,
        bot=app.bot,
        global_rate=settings.send_rate_global,
        chat_rate=settings.send_rate_chat,
        metrics=metrics,
    )
    runtime.extras["sender"] = sender
    conversation.on_commit = sender.wake
    if runtime.engine.dialect.name == "postgresql":
        # A sender in another process (`leerbot sender`) wakes on every queued message (not
        # on those the fast lane already holds).
        notify_on_commit(
            runtime.sessions,
            channel=OUTBOX_CHANNEL,
            model=Outbox,
            when=lambda row: row.claimed_by is None,
        )
    # Where messages are sent from: "inline" (this process; tests and embedding), "child"
    # (`leerbot bot`: a `leerbot sender` child, so a dying bot never cuts a send in half) or
    # "external" (webhook workers: `leerbot sender` runs on its own; NOTIFY wakes it).
    mode = runtime.extras.get("sender_mode", "inline")
    if mode == "inline":
        runtime.tasks.append(asyncio.create_task(sender.run(), name="leerbot-sender"))
    elif mode == "child":
        child = runtime.extras.setdefault("sender_child", SenderChild())
        if child.proc is None:
            child.start()
        conversation.on_commit = child.wake
    if mode != "inline" and settings.fast_lane:
        # The sender is another process: pressed-button edits go out from here (bot/fastlane.py).
        conversation.fast_lane = FastLane(
            sessions=runtime.sessions,
            bot=app.bot,
            global_rate=settings.send_rate_global,
            chat_rate=settings.send_rate_chat,
            wake=conversation.on_commit,
            metrics=metrics,
        )
        conversation.quick_presses = settings.quick_presses
    runtime.extras["staff"] = StaffChat(runtime)
    install_privacy(runtime)  # /mijngegevens, /vergeetmij
    install_retention(runtime, app)  # daily: old transcripts, answers, inactive pupils go
    install_card(runtime)  # the loopbaankaart PNG for "card:<module>" photos
    install_reminders(runtime, app)  # every minute: due reminders, school days only
    await install_safety(runtime, app)
    _install_nlu(runtime)
    if mode == "child":  # take no update before its answers can go out
        await child.wait_ready()
        runtime.tasks.append(asyncio.create_task(child.supervise(), name="leerbot-sender-child"))


def _install_nlu(runtime: Runtime) -> None:
    try:
        from nlu.client import RasaClient
    except ImportError:  # the NLU package is optional in a bare checkout
        return
    client: Any = RasaClient(runtime.settings.rasa_url, timeout=runtime.settings.rasa_timeout)
    runtime.extras["rasa"] = client
    runtime.conversation.parse = client.parse
