"""A PTB Application on a fresh database per test (both backends), with helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.ptb import BotRig, bot_rig


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[BotRig]:
    async with bot_rig(database_url) as started:
        yield started
