"""A real sandbox server (uvicorn on a free port) inside the test's event loop.

    async with running_sandbox() as (url, app):
        bot = telegram.Bot(TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")
        state = app.state.sandbox          # SandboxState, same loop: inspect it directly
        client = SandboxClient(url, app=app)   # pupils without HTTP overhead (benchmarks)

Because the server shares the test's loop, a test can read `app.state.sandbox` without locks.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette

from sandbox.server import running, serve_in_loop

__all__ = ["SandboxServer", "free_port", "running_sandbox", "serving"]

serving = serve_in_loop  # serving(app, port=0) -> base URL: any ASGI app, e.g. a webhook receiver


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (port=0 in `serving` avoids the race when possible)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running_sandbox(
    *,
    rate_limits: bool = False,
    token: str | None = None,
    bot_username: str = "leerbot_sandbox_bot",
    port: int = 0,
) -> AsyncIterator[tuple[str, Starlette]]:
    """Serve a fresh sandbox on 127.0.0.1; yields (base_url, app). Stops it on exit."""
    async with running(
        token=token, rate_limits=rate_limits, bot_username=bot_username, port=port
    ) as served:
        yield served


class SandboxServer:
    """The same as `running_sandbox`, for fixtures that prefer start()/stop()."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._context: Any = None
        self.url = ""
        self.app: Starlette | None = None

    async def start(self) -> SandboxServer:
        """Start serving; sets `url` and `app`."""
        self._context = running_sandbox(**self._options)
        self.url, self.app = await self._context.__aenter__()
        return self

    async def stop(self) -> None:
        """Stop serving."""
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = None
