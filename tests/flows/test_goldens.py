"""Golden transcripts: what a pupil sees, message by message, for every module (style.md §5).

Rewrite them after an intended change with `pytest tests/flows --update-goldens`, then review
the diff like code: every changed line is something a pupil will read differently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.flows.golden import catalog, dump_golden, replay

GOLDENS = Path(__file__).resolve().parent / "goldens"
CASES = sorted(GOLDENS.glob("**/*.yaml"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(path: Path, request: pytest.FixtureRequest) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert case["module"] == path.parent.name, f"{path}: module and folder differ"
    actual = replay(case)
    if request.config.getoption("--update-goldens"):
        path.write_text(dump_golden(case | {"expect": actual}), encoding="utf-8")
        return
    assert "expect" in case, f"{path}: no expect yet; run pytest with --update-goldens"
    for index, (got, want) in enumerate(zip(actual, case["expect"], strict=False), start=1):
        assert got == want, (
            f"{path}: input {index} ({got['input']}) differs; "
            "rerun with --update-goldens if intended"
        )
    assert len(actual) == len(case["expect"]), f"{path}: inputs and expect differ in length"


def test_every_module_has_at_least_two_golden_cases() -> None:
    per_module = {p.parent.name for p in CASES}
    counts = {m: sum(1 for p in CASES if p.parent.name == m) for m in per_module}
    missing = {m: counts.get(m, 0) for m in catalog().modules if counts.get(m, 0) < 2}
    assert missing == {}, "modules with fewer than 2 golden transcripts"


def test_golden_files_stay_readable() -> None:
    for path in CASES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\\[uU][0-9a-fA-F]{4}", text), f"{path}: escaped unicode"
        assert not text.lstrip().startswith("{"), f"{path}: flow style"
