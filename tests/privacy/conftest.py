"""A PTB Application on a fresh database per test (both backends), with helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.ptb import BotRig, bot_rig


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[BotRig]:
    async with bot_rig(database_url) as started:
        yield started


async def answer_first_steps(rig: BotRig, user_id: int, example: str) -> None:
    """Start "Wie ben ik?" and answer up to the open question with `example`."""
    await rig.press(user_id, "🆕 Wie ben ik?")
    await rig.press(user_id, "Met mijn handen werken")
    await rig.press(user_id, "Klaar ✅")
    for label in ("Handig met mijn handen", "Goed met mensen", "Ik hou vol"):
        await rig.press(user_id, label)
    await rig.press(user_id, "Klaar (3 van 3)")
    await rig.say(user_id, example)
