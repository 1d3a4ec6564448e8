"""Garbage-collector settings for long-running processes with big, long-lived heaps.

CPython's full collection walks every tracked object; in a process that holds much (the
catalog and the libraries of the bot; the emulator's timeline of every chat; the benchmark
driver's thousand pupils) that is a pause of 100-200 ms, long enough to be the slowest reply
of a minute. `gc.freeze()` moves objects out of the collector's reach: reference counting
still frees them, only cycles among them are no longer looked for.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

__all__ = ["freeze_startup_heap", "freeze_survivors"]


def freeze_startup_heap() -> None:
    """Keep what start-up built (modules, content, libraries) out of garbage collection.

    Frozen objects are never walked again (they live as long as the process anyway).
    """
    gc.collect()
    gc.freeze()


def freeze_survivors() -> Callable[[], None]:
    """After every full collection, freeze what survived it; returns the undo.

    What outlived a full collection is almost always kept for good (a chat's messages); the
    next full collection then walks only what came since, so its pause stays short however
    much the process holds. The price: a reference cycle formed among frozen objects is not
    freed. Meant for the sandbox emulator and benchmark drivers, whose data is acyclic.
    """

    def after_full(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()

    gc.callbacks.append(after_full)
    return lambda: gc.callbacks.remove(after_full)
