"""Async servers for sync Playwright tests: one event loop in a background thread.

Playwright's sync API cannot run inside an event loop, while the dashboard, the sandbox and
the bot stack are async. `LoopThread` runs them in their own loop; the test calls into it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from content.loader import Catalog
from dashboard.app import create_app
from leerbot.settings import Settings
from tests.support.sandbox_server import free_port, serving

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class LoopThread:
    """An asyncio loop in a daemon thread; `run` waits for a coroutine from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-loop", daemon=True)
        self.thread.start()
        self._contexts: list[AbstractAsyncContextManager[Any]] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run `coro` in the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def enter(self, context: AbstractAsyncContextManager[T], timeout: float = 60.0) -> T:
        """Enter an async context manager in the loop; `close` exits it."""
        value = self.run(context.__aenter__(), timeout)
        self._contexts.append(context)
        return value

    def close(self) -> None:
        """Exit every context (newest first) and stop the loop."""
        while self._contexts:
            context = self._contexts.pop()
            self.run(context.__aexit__(None, None, None), 60.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def serve_dashboard(
    live: LoopThread,
    *,
    database_url: str,
    catalog: Catalog | None = None,
    bot_username: str = "leerbot_test_bot",
    poll_seconds: float = 1.0,
) -> str:
    """Start the dashboard under uvicorn on a free port; its base URL (also in its links)."""
    port = free_port()
    settings = Settings(
        database_url=database_url,
        bot_username=bot_username,
        dashboard_url=f"http://127.0.0.1:{port}",
    )

    async def build() -> Any:
        return create_app(settings, catalog=catalog, poll_seconds=poll_seconds)

    app = live.run(build())
    return live.enter(serving(app, port=port))
