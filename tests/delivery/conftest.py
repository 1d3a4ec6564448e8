"""Fixtures for delivery tests: a fresh sandbox per test (faults and limits are server-wide)."""

from __future__ import annotations

from collections.abc import AsyncIterator

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


@pytest.fixture
async def tg_bot(sandbox_url: str) -> AsyncIterator[telegram.Bot]:
    """A PTB Bot on the sandbox, as the sender uses it."""
    request = HTTPXRequest(connection_pool_size=32, read_timeout=5, connect_timeout=2)
    bot = telegram.Bot(TOKEN, base_url=f"{sandbox_url}/bot",
                       base_file_url=f"{sandbox_url}/file/bot", request=request)
    async with bot:
        yield bot


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions on this test's fresh database."""
    engine = make_engine(database_url)
    yield make_sessions(engine)
    await engine.dispose()
