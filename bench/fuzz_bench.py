"""Fuzz bench: 20,000+ generated Telegram updates through the real PTB Application.

    python -m bench.fuzz_bench [--postgres postgresql+asyncpg://postgres@127.0.0.1/test]
                               [--updates 20000]

The same strategies and checks as tests/hostile/test_fuzz.py (tests/support/fuzz.py), ten
times as many updates, on a fresh SQLite database (or PostgreSQL when given): no update may
reach the error handler, input that must change nothing (groups, forged buttons, updates
without a message, redeliveries) changes nothing, and the database is consistent at the end.
Writes bench/results/fuzz.json with the counts; `errors` and `problems` must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from store.db import upgrade
from tests.support.fuzz import Fuzzer, FuzzWorld, generate, update_strategy
from tests.support.ptb import bot_rig

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
UPDATES = 20_000
BATCH = 2_000  # hypothesis draws this many at a time (memory stays flat)


async def _fresh_postgres(url: str) -> tuple[str, str]:
    """A new migrated database next to `url`; returns (its URL, its name)."""
    name = f"leerbot_fuzz_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(url)
    admin = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    fresh = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    await asyncio.to_thread(upgrade, fresh)
    return fresh, name


async def _drop_postgres(url: str, name: str) -> None:
    parts = urlsplit(url)
    conn = await asyncpg.connect(urlunsplit(("postgresql", parts.netloc, parts.path, "", "")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _fuzz(database_url: str, count: int) -> dict[str, Any]:
    async with bot_rig(database_url) as rig:
        world = await FuzzWorld.build(rig, pupils=16, strangers=6)
        fuzzer = Fuzzer(rig)
        totals: dict[str, Any] = {
            "updates": 0,
            "invalid": 0,
            "redelivered": 0,
            "seconds": 0.0,
            "kinds": {},
        }
        errors: list[str] = []
        problems: list[str] = []
        generated = 0
        while totals["updates"] < count:
            wanted = min(BATCH, count - totals["updates"])
            items = generate(update_strategy(world), wanted + wanted // 20)
            generated += len(items)
            report = await fuzzer.run(items)
            errors += report.errors
            problems += report.problems
            for key in ("updates", "invalid", "redelivered", "seconds"):
                totals[key] += getattr(report, key)
            for kind, n in report.kinds.items():
                totals["kinds"][kind] = totals["kinds"].get(kind, 0) + n
        return {
            **totals,
            "generated": generated,
            "errors": len(errors),
            "problems": len(problems),
            "first_errors": errors[:3],
            "first_problems": problems[:10],
        }


def run(postgres: str | None = None, updates: int = UPDATES) -> dict[str, Any]:
    """Fuzz `updates` updates; writes and returns the result (errors and problems must be 0)."""
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("leerbot").setLevel(logging.ERROR)  # rejected buttons log warnings

    async def main() -> dict[str, Any]:
        if postgres:
            url, name = await _fresh_postgres(postgres)
            try:
                return await _fuzz(url, updates)
            finally:
                await _drop_postgres(postgres, name)
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/fuzz.db"
            await asyncio.to_thread(upgrade, url)
            return await _fuzz(url, updates)

    started = time.monotonic()
    found = asyncio.run(main())
    result = {
        "backend": "postgresql" if postgres else "sqlite",
        "updates": found["updates"],
        "generated": found["generated"],
        "invalid_checked": found["invalid"],
        "redelivered": found["redelivered"],
        "errors": found["errors"],
        "problems": found["problems"],
        "updates_per_second": round(found["updates"] / found["seconds"], 1),
        "seconds": round(time.monotonic() - started, 1),
        "kinds": dict(sorted(found["kinds"].items())),
        "first_errors": found["first_errors"],
        "first_problems": found["first_problems"],
        "ok": found["errors"] == 0 and found["problems"] == 0 and found["updates"] >= updates,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def main() -> None:
    """Command line: print the result; exit 1 when anything went wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="postgresql+asyncpg:// URL")
    parser.add_argument("--updates", type=int, default=UPDATES)
    args = parser.parse_args()
    result = run(args.postgres, args.updates)
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("first_")}, indent=2))
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
