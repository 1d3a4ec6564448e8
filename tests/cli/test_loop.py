"""The processes' runtime: the event loop (leerbot/loop.py, LEERBOT_EVENT_LOOP) and the heap."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvloop

from leerbot import loop
from leerbot.settings import Settings


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default() -> None:
    assert Settings().event_loop == "uvloop"
    assert loop.run(_loop_type()) is uvloop.Loop
    assert loop.uvicorn_loop() == "uvloop"


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEERBOT_EVENT_LOOP", "asyncio")
    name = Settings().event_loop
    assert name == "asyncio"
    assert not issubclass(loop.run(_loop_type(), name), uvloop.Loop)
    assert loop.uvicorn_loop(name) == "asyncio"


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEERBOT_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings()


def test_new_loop_becomes_the_current_one() -> None:
    def check() -> bool:
        created = loop.new_loop()
        try:
            # what PTB's run_polling picks up
            return isinstance(created, uvloop.Loop) and asyncio.get_event_loop() is created
        finally:
            asyncio.set_event_loop(None)
            created.close()

    # In a thread of its own: the test session's loop stays this thread's current one.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(check).result()


def test_the_startup_heap_is_kept_out_of_collections() -> None:
    from bot.app import freeze_startup_heap

    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        freeze_startup_heap()
        assert gc.get_freeze_count() > 10_000  # the modules, PTB and SQLAlchemy at least
    finally:
        gc.unfreeze()
