"""Fuzzing: generated updates through the real PTB Application, on each database backend.

2,000 updates on SQLite and 1,000 more on PostgreSQL in every run; `bench/fuzz_bench.py` runs
20,000+. Hypothesis draws the updates (see tests/support/fuzz.py), the Fuzzer feeds them.
"""

from __future__ import annotations

from tests.support.fuzz import Fuzzer, FuzzWorld, generate, update_strategy
from tests.support.ptb import BotRig

FUZZ_UPDATES = {"sqlite": 2_000, "postgresql": 1_000}


async def test_generated_updates_cause_no_error_and_leave_a_consistent_database(
    rig: BotRig,
) -> None:
    backend = rig.runtime.engine.dialect.name
    wanted = FUZZ_UPDATES[backend]
    world = await FuzzWorld.build(rig)
    items = generate(update_strategy(world), wanted + wanted // 20)  # a press may find no keyboard
    report = await Fuzzer(rig).run(items)
    summary = report.as_dict()
    assert report.errors == [], "\n\n".join(report.errors[:5])
    assert report.problems == [], "\n".join(report.problems[:20])
    assert report.updates >= wanted, summary
    assert report.invalid >= wanted // 10, summary  # plenty of input that must change nothing
    assert summary["kinds"]["press"] >= wanted // 10, summary  # and plenty that moves pupils on
