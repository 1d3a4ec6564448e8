"""`make bench`: run every benchmark module that is there; results in bench/results/*.json.

    python -m bench --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test
    python -m bench --only delivery,engine --quick

Each module `bench/<name>_bench.py` exposes `run(...)`; a module that is missing or fails is
reported and the others still run. bench/results/summary.json says what ran, how long it took
and whether it met its targets.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCHES = ("engine", "nlu", "dashboard", "fuzz", "delivery")
SUMMARY = ROOT / "bench" / "results" / "summary.json"


def _call(run: Any, postgres: str | None, quick: bool) -> Any:
    """Call `run` with the arguments it takes (modules differ: postgres_url, postgres, quick)."""
    params = inspect.signature(run).parameters
    kwargs: dict[str, Any] = {}
    for name in ("postgres_url", "postgres"):
        if name in params:
            kwargs[name] = postgres
            break
    if "quick" in params:
        kwargs["quick"] = quick
    return run(**kwargs)


def _verdict(result: Any) -> bool | None:
    """The module's own idea of success, if it states one."""
    if not isinstance(result, dict):
        return None
    for key in ("ok", "meets_target", "meets_targets", "passed"):
        if isinstance(result.get(key), bool):
            return bool(result[key])
    return None


def main() -> None:
    """Run the benchmarks, write the summary, exit 1 when one crashed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="postgresql+asyncpg:// URL")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHES))
    parser.add_argument("--quick", action="store_true", help="smaller runs, where supported")
    args = parser.parse_args()
    wanted = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHES)
    summary: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "postgres": bool(args.postgres),
        "benches": {},
    }
    crashed = False
    for name in wanted:
        module_name = f"bench.{name}_bench"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            print(f"== {name}: not there, skipped", flush=True)
            summary["benches"][name] = {"status": "missing"}
            continue
        run = getattr(module, "run", None)
        if run is None:
            summary["benches"][name] = {"status": "no run()"}
            continue
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            result = _call(run, args.postgres, args.quick)
        except Exception:
            crashed = True
            traceback.print_exc()
            summary["benches"][name] = {
                "status": "crashed",
                "seconds": round(time.monotonic() - started, 1),
            }
            continue
        summary["benches"][name] = {
            "status": "ran",
            "seconds": round(time.monotonic() - started, 1),
            "ok": _verdict(result),
        }
        table = getattr(module, "table", None)
        if callable(table) and isinstance(result, dict):
            print(table(result), flush=True)
    summary["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    for name, entry in summary["benches"].items():
        print(
            f"{name:<10} {entry['status']:<8} {entry.get('seconds', '')!s:>7} s   "
            f"ok={entry.get('ok')}"
        )
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
