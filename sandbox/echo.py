"""A bare python-telegram-bot echo bot: the smallest real bot to try the sandbox with, and the
baseline the Leerbot benchmark is compared to.

Text → "Echo: <text>" with two buttons; a press → the callback is answered and the message is
edited (or, with `press_reply="new"`, a new message with the buttons is sent).

    python -m sandbox.echo --api-url http://127.0.0.1:8081/bot --token 123:ECHO
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any, Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

AGAIN = "Nog eens"
DONE = "Klaar"
BURST = "drie berichten"  # a text that makes the bot answer with three messages

PressReply = Literal["edit", "new"]
EchoApplication = Application[Any, Any, Any, Any, Any, Any]


def _buttons() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(AGAIN, callback_data="again"),
                InlineKeyboardButton(DONE, callback_data="done"),
            ]
        ]
    )


def build_echo_application(
    *, api_url: str, token: str, press_reply: PressReply = "edit", concurrent_updates: int = 256
) -> EchoApplication:
    """An Application polling the Bot API at `api_url` (`http://HOST:PORT/bot` form)."""
    presses = itertools.count(1)  # makes every edit differ, or Telegram says "not modified"
    file_url = api_url.removesuffix("/bot") + "/file/bot"

    async def on_text(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        if message.text == BURST:
            for number in (1, 2):
                await message.reply_text(f"Bericht {number}")
            await message.reply_text("Bericht 3", reply_markup=_buttons())
            return
        await message.reply_text(f"Echo: {message.text}", reply_markup=_buttons())

    async def on_press(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        await query.answer("Gedrukt")
        text = f"Gekozen: {query.data} ({next(presses)})"
        if press_reply == "edit":
            await query.edit_message_text(text, reply_markup=_buttons())
        elif query.message is not None:
            await query.get_bot().send_message(
                query.message.chat.id, text, reply_markup=_buttons()
            )

    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(api_url)
        .base_file_url(file_url)
        .concurrent_updates(concurrent_updates)
        .connection_pool_size(8)
        .get_updates_read_timeout(30)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, on_text))
    app.add_handler(CallbackQueryHandler(on_press))
    return app


async def start_echo(app: EchoApplication) -> None:
    """Initialise, start and begin polling (returns once polling runs)."""
    await app.initialize()
    await app.start()
    if app.updater is not None:
        await app.updater.start_polling(poll_interval=0.0, timeout=10)


async def stop_echo(app: EchoApplication) -> None:
    """Stop polling and shut the Application down."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()


def main(argv: list[str] | None = None) -> None:
    """Run the echo bot until SIGINT/SIGTERM (its own process, as a real bot would be)."""
    parser = argparse.ArgumentParser(description="Echo bot for the Leerbot sandbox")
    parser.add_argument(
        "--api-url", required=True, help="Bot API base URL, e.g. http://127.0.0.1:8081/bot"
    )
    parser.add_argument("--token", required=True)
    parser.add_argument("--press-reply", choices=["edit", "new"], default="edit")
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the event loop (uvloop, as `leerbot bot` runs by default)",
    )
    args = parser.parse_args(argv)
    app = build_echo_application(
        api_url=args.api_url, token=args.token, press_reply=args.press_reply
    )
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop(uvloop.new_event_loop())  # run_polling runs the current loop
    app.run_polling(poll_interval=0.0, timeout=10)


if __name__ == "__main__":
    main()
