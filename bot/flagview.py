"""Flags as plain rows for the CLI and exports (pseudonyms only, no pupil text)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import repo
from store.models import School, SchoolClass, Staff

URGENCY = {"crisis": "urgent", "zorg": "high", "aandacht": "normal", "contactvraag": "normal"}


def urgency(kind: str, urgent: bool) -> str:
    """urgent | high | normal: a crisis or a request marked urgent first (content-brief §5)."""
    return "urgent" if urgent or kind == "crisis" else URGENCY.get(kind, "normal")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def flag_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """All flags, open and closed, newest first, as JSON-ready dicts."""
    classes = {c.id: c.name for c in (await session.scalars(select(SchoolClass))).all()}
    schools = {s.id: s.name for s in (await session.scalars(select(School))).all()}
    staff = {s.id: s.name for s in (await session.scalars(select(Staff))).all()}
    rows = []
    for flag in await repo.flags_newest_first(session):
        rows.append(
            {
                "id": flag.id,
                "type": flag.kind,
                "reason": flag.reason,
                "category": flag.category,
                "urgency": urgency(flag.kind, flag.urgent),
                "state": flag.state,
                "target": flag.target,
                "pupil": flag.pupil_pseudonym,
                "class": classes.get(flag.class_id or -1),
                "school": schools.get(flag.school_id or -1),
                "assigned_to": staff.get(flag.assigned_staff_id or -1),
                "created_at": flag.created_at.isoformat(),
                "updated_at": _iso(flag.updated_at),
                "acknowledged_at": _iso(flag.acknowledged_at),
                "escalated_at": _iso(flag.escalated_at),
                "closed_at": _iso(flag.closed_at),
                "notified_at": _iso(flag.notified_at),
                "delivery_failed": flag.delivery_failed,
            }
        )
    return rows
