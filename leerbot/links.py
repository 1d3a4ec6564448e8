"""Deep links into the bot (`https://t.me/<bot>?start=<code>`), shared by the CLI and dashboard."""

from __future__ import annotations

from typing import Any

import httpx

from leerbot.settings import Settings

DEFAULT_BOT_USERNAME = "leerbot_sandbox_bot"
GETME_TIMEOUT = 2.0


def deep_link(username: str, code: str) -> str:
    """https://t.me/<bot>?start=<code>"""
    return f"https://t.me/{username.lstrip('@')}?start={code}"


def _getme_url(cfg: Settings) -> str:
    return f"{cfg.telegram_api_url}{cfg.token}/getMe"


def _username(payload: Any) -> str:
    return str(payload["result"]["username"])


def bot_username(cfg: Settings) -> str:
    """The bot's username: configured, else asked with getMe, else a default (blocking)."""
    if cfg.bot_username:
        return cfg.bot_username.lstrip("@")
    try:
        return _username(httpx.get(_getme_url(cfg), timeout=GETME_TIMEOUT).json())
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return DEFAULT_BOT_USERNAME


async def bot_username_async(cfg: Settings) -> str:
    """`bot_username` for async code (the dashboard resolves it once at start-up)."""
    if cfg.bot_username:
        return cfg.bot_username.lstrip("@")
    try:
        async with httpx.AsyncClient(timeout=GETME_TIMEOUT) as client:
            return _username((await client.get(_getme_url(cfg))).json())
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return DEFAULT_BOT_USERNAME
