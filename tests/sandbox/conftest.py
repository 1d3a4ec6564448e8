"""One sandbox server per session; each test talks to it as its own bot (its own token)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import telegram
from starlette.applications import Starlette

from sandbox.driver import SandboxClient
from sandbox.state import SandboxState
from tests.support.sandbox_server import running_sandbox

_tokens = itertools.count(1)


@pytest.fixture(scope="session")
async def sandbox() -> AsyncIterator[tuple[str, Starlette]]:
    async with running_sandbox() as served:
        yield served


@pytest.fixture
def url(sandbox: tuple[str, Starlette]) -> str:
    return sandbox[0]


@pytest.fixture
def state(sandbox: tuple[str, Starlette]) -> SandboxState:
    sandbox_state: SandboxState = sandbox[1].state.sandbox
    return sandbox_state


@pytest.fixture
def token() -> str:
    """A fresh bot per test: its chats, queue and counters are its own."""
    return f"{5_000_000 + next(_tokens)}:SANDBOX-test_token"


@pytest.fixture
async def client(url: str, token: str) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(url, token=token) as sandbox_client:
        yield sandbox_client
        # Rate limits and faults are server-wide: leave them as the next test expects.
        await sandbox_client.config(rate_limits=False, faults=[])


@pytest.fixture
async def bot(url: str, token: str) -> AsyncIterator[telegram.Bot]:
    tg_bot = telegram.Bot(token, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")
    async with tg_bot:
        yield tg_bot
