"""The processes' runtime: the event loop (leerbot/loop.py, LEERBOT_EVENT_LOOP) and the heap."""

from __future__ import annotations

import asyncio
import gc
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvloop

from leerbot import loop
from leerbot.heap import freeze_startup_heap, freeze_survivors
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
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        freeze_startup_heap()
        assert gc.get_freeze_count() > 10_000  # the modules, PTB and SQLAlchemy at least
    finally:
        gc.unfreeze()


def test_survivors_of_a_full_collection_are_frozen_and_garbage_is_not() -> None:
    gc.unfreeze()
    gc.disable()  # only the collections below, none the allocations would start
    undo = freeze_survivors()
    try:
        kept = [[n] for n in range(1000)]  # tracked containers that outlive the collection
        cycle: list[object] = []
        cycle.append(cycle)
        gone = weakref.ref(Probe(cycle))  # unreachable, in a cycle: the collection frees it
        gc.collect(1)  # not a full collection: nothing is frozen
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert gone() is None
        assert gc.get_freeze_count() >= len(kept)
        assert gc.is_tracked(kept[0])
    finally:
        undo()
        gc.unfreeze()
        gc.enable()
    gc.collect()
    assert gc.get_freeze_count() == 0  # undone: later full collections freeze nothing


class Probe:
    """An object in a reference cycle (self.me points back at it)."""

    def __init__(self, other: object) -> None:
        self.me = self
        self.other = other
