"""Fixtures for the safety tests: a seeded school per test, on every database backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.safety.world import World, build_world


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    world = await build_world(database_url)
    yield world
    await world.engine.dispose()
