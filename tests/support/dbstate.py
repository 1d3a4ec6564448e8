"""Whole-database snapshots, to show that some input changed nothing (or only what it may)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from store.models import Base

Snapshot = dict[str, list[tuple[Any, ...]]]


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


async def snapshot(engine: AsyncEngine, *, skip: Iterable[str] = ()) -> Snapshot:
    """Every row of every table (but `skip`: "table" or "table.column"), in key order."""
    skipped = set(skip)
    result: Snapshot = {}
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in skipped:
                continue
            columns = [c for c in table.columns if f"{table.name}.{c.name}" not in skipped]
            rows = await conn.execute(select(*columns).order_by(*table.primary_key.columns))
            result[table.name] = [tuple(_plain(v) for v in row) for row in rows]
    return result


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences, one line per table that changed."""
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        if old != new:
            gone = [row for row in old if row not in new]
            came = [row for row in new if row not in old]
            lines.append(f"{name}: -{gone[:3]} +{came[:3]}")
    return lines


async def dump_text(engine: AsyncEngine) -> str:
    """All data as one string, to search for text that must be gone."""
    snap = await snapshot(engine)
    return json.dumps(snap, ensure_ascii=False, default=str)
