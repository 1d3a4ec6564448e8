"""The engine benchmark's scripted pupil really works through modules (so its figure means it)."""

from __future__ import annotations

from bench.engine_bench import measure, script
from tests.flows.golden import catalog


def test_the_scripted_pupil_finishes_every_module_in_the_bench() -> None:
    result = measure(script(1_500, catalog()), catalog())
    assert result["steps"] == 1_500
    assert result["modules_finished"] >= len(catalog().modules)
    assert result["messages"] > result["steps"]
