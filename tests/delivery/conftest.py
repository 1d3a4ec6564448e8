"""Fixtures for delivery tests: a fresh sandbox per test (faults and limits are server-wide)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import telegram
from telegram.request import HTTPXRequest

from sandbox.driver import SandboxClient
from store.db import Sessions, make_engine, make_sessions
from tests.support.sandbox_server import running_sandbox

TOKEN = "424242:LEERBOT-TEST-TOKEN"


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    """A sandbox Bot API of its own for this test."""
    async with running_sandbox() as (url, _app):
        yield url


@pytest.fixture
async def client(sandbox_url: str) -> AsyncIterator[SandboxClient]:
    """The sandbox's control API (pupils, faults, the call log)."""
    async with SandboxClient(sandbox_url) as sandbox_client:
        yield sandbox_client


class TimedRequest(HTTPXRequest):
    """PTB's HTTP client, noting when each Bot API call left and when its answer came back."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[tuple[str, float, float, int]] = []  # method, start, end, status

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        start = time.monotonic()
        status = 0
        try:
            status, body = await super().do_request(url, method, *args, **kwargs)
        finally:
            self.calls.append((url.rsplit("/", 1)[-1], start, time.monotonic(), status))
        return status, body


@pytest.fixture
async def tg_bot(sandbox_url: str) -> AsyncIterator[telegram.Bot]:
    """A PTB Bot on the sandbox, as the sender uses it (`bot.request.calls` has timings)."""
    request = TimedRequest(connection_pool_size=32, read_timeout=5, connect_timeout=2)
    bot = telegram.Bot(
        TOKEN,
        base_url=f"{sandbox_url}/bot",
        base_file_url=f"{sandbox_url}/file/bot",
        request=request,
    )
    async with bot:
        yield bot


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions on this test's fresh database."""
    engine = make_engine(database_url)
    yield make_sessions(engine)
    await engine.dispose()


@pytest.fixture
async def sqlite_sessions(sqlite_url: str) -> AsyncIterator[Sessions]:
    """Sessions on a fresh SQLite database, for sender behaviour that no backend changes."""
    engine = make_engine(sqlite_url)
    yield make_sessions(engine)
    await engine.dispose()
