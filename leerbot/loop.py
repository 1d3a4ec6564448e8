"""The event loop every Leerbot process runs on: uvloop unless `LEERBOT_EVENT_LOOP=asyncio`.

uvloop (libuv, the loop under Node.js) runs the same asyncio code with the loop, its sockets
and its timers in C. The bot spends much of each update in the loop itself — two Bot API calls,
a database round trip or four, the sandbox's long poll — so this is the cheapest speed-up it
has (see README, "Delivery"). Where uvloop is missing (Windows), the standard loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LoopName", "loop_factory", "new_loop", "run", "uvicorn_loop"]

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]


def loop_factory(name: LoopName = "uvloop") -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new loop of the kind asked for (the standard one as fallback)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def new_loop(name: LoopName = "uvloop") -> asyncio.AbstractEventLoop:
    """A new loop, set as the current one (for code that asks `asyncio.get_event_loop()`)."""
    loop = loop_factory(name)()
    asyncio.set_event_loop(loop)
    return loop


def run(main: Coroutine[Any, Any, T], name: LoopName = "uvloop") -> T:
    """`asyncio.run` on the loop asked for."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def uvicorn_loop(name: LoopName = "uvloop") -> str:
    """uvicorn's name for the same loop (its `loop=` option)."""
    return "uvloop" if loop_factory(name) is not asyncio.new_event_loop else "asyncio"
