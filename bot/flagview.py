"""Flags as plain rows for the CLI and exports (pseudonyms only, no pupil text)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import repo
from store.models import SchoolClass

URGENCY = {"crisis": "urgent", "zorg": "high", "aandacht": "normal", "contactvraag": "normal"}


async def flag_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """All flags, newest first, as JSON-ready dicts."""
    classes = {c.id: c.name for c in (await session.scalars(select(SchoolClass))).all()}
    rows = []
    for flag in await repo.flags_newest_first(session):
        urgency = "urgent" if flag.urgent or flag.kind == "crisis" else URGENCY.get(flag.kind,
                                                                                  "normal")
        rows.append({
            "id": flag.id, "type": flag.kind, "reason": flag.reason, "category": flag.category,
            "urgency": urgency, "state": flag.state, "target": flag.target,
            "pupil": flag.pupil_pseudonym, "class": classes.get(flag.class_id or -1),
            "created_at": flag.created_at.isoformat(),
            "acknowledged_at": flag.acknowledged_at.isoformat() if flag.acknowledged_at else None,
            "closed_at": flag.closed_at.isoformat() if flag.closed_at else None,
            "delivery_failed": flag.delivery_failed,
        })
    return rows
