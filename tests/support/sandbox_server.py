"""A real sandbox server (uvicorn on a free port) inside the test's event loop.

    async with running_sandbox() as (url, app):
        bot = telegram.Bot(TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")
        state = app.state.sandbox          # SandboxState, same loop: inspect it directly

Because the server shares the test's loop, a test can read `app.state.sandbox` without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from sandbox.server import create_app

START_TIMEOUT = 10.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _InLoopServer(uvicorn.Server):
    """uvicorn without signal handling: pytest keeps Ctrl-C, and stop() is explicit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(app: ASGIApp, *, port: int | None = None,
                  before_stop: Callable[[], None] | None = None) -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn on 127.0.0.1 in this loop; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=1)
    server = _InLoopServer(config)
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # re-raise why it could not start
                    raise RuntimeError(f"server on port {port} stopped during start-up")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10.0)


@asynccontextmanager
async def running_sandbox(*, rate_limits: bool = False, token: str | None = None,
                          bot_username: str = "leerbot_sandbox_bot",
                          port: int | None = None) -> AsyncIterator[tuple[str, Starlette]]:
    """Serve a fresh sandbox on 127.0.0.1; yields (base_url, app). Stops it on exit."""
    app = create_app(token=token, rate_limits=rate_limits, bot_username=bot_username)
    # Long polls in flight answer at once, so shutdown does not wait for them.
    async with serving(app, port=port, before_stop=app.state.sandbox.close_waiters) as url:
        yield url, app


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
