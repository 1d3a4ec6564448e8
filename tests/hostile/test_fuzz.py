"""Fuzzing: 2,000 generated updates through the real PTB Application, per database backend."""

from __future__ import annotations

from tests.support.fuzz import Fuzzer, FuzzWorld, generate, update_strategy
from tests.support.ptb import BotRig

FUZZ_UPDATES = 2_000


async def test_generated_updates_cause_no_error_and_leave_a_consistent_database(
        rig: BotRig) -> None:
    world = await FuzzWorld.build(rig)
    items = generate(update_strategy(world), FUZZ_UPDATES + 100)  # some presses find no keyboard
    report = await Fuzzer(rig).run(items)
    summary = report.as_dict()
    assert report.errors == [], "\n\n".join(report.errors[:5])
    assert report.problems == [], "\n".join(report.problems[:20])
    assert report.updates >= FUZZ_UPDATES, summary
    assert report.invalid >= FUZZ_UPDATES // 5, summary  # plenty of input that must change nothing
    assert summary["kinds"]["press"] >= 300, summary  # and plenty that moves pupils along
