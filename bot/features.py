"""What a bot process runs besides the handlers: sender, NLU client, flags, staff chat."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bot.flags import flag_hook
from bot.sender import Sender
from bot.staff import StaffChat

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.app import Runtime

log = logging.getLogger("leerbot.features")


async def install_features(runtime: Runtime, app: Application) -> None:  # type: ignore[type-arg]  # PTB generics
    """Start the sender and hook the product's features into the conversation service."""
    settings = runtime.settings
    conversation = runtime.conversation
    conversation.event_hooks.append(flag_hook)
    sender = Sender(sessions=runtime.sessions, bot=app.bot, global_rate=settings.send_rate_global,
                    chat_rate=settings.send_rate_chat,
                    skip_locked=settings.database_url.startswith("postgresql"))
    runtime.extras["sender"] = sender
    conversation.on_commit = sender.wake
    runtime.tasks.append(asyncio.create_task(sender.run(), name="leerbot-sender"))
    runtime.extras["staff"] = StaffChat(runtime)
    _install_nlu(runtime)


def _install_nlu(runtime: Runtime) -> None:
    try:
        from nlu.client import RasaClient
    except ImportError:  # the NLU package is optional in a bare checkout
        return
    client: Any = RasaClient(runtime.settings.rasa_url, timeout=runtime.settings.rasa_timeout)
    runtime.extras["rasa"] = client
    runtime.conversation.parse = client.parse
