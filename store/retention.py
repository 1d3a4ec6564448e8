"""Retention queries: what is older than the cutoff goes (the caller owns the transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store import repo
from store.models import Answer, Flag, Outbox, ProcessedUpdate, Pupil, Run, TranscriptLine

LOCK_KEY = 0x1EE2B07  # one retention run at a time across workers (PostgreSQL advisory lock)


async def try_lock(session: AsyncSession) -> bool:
    """Take the retention lock for this transaction; False when another worker holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite serialises writers itself
    taken = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    return bool(taken)


async def pupils_inactive_since(session: AsyncSession, cutoff: datetime) -> Sequence[Pupil]:
    """Pupils not seen since the cutoff (never seen: joined before it)."""
    seen = func.coalesce(Pupil.last_seen_at, Pupil.created_at)
    return (await session.scalars(select(Pupil).where(seen < cutoff).order_by(Pupil.id))).all()


async def stale_runs(session: AsyncSession, cutoff: datetime) -> Sequence[Run]:
    """Unfinished runs nobody touched since the cutoff (their saved state holds answers)."""
    stmt = select(Run).where(Run.updated_at < cutoff, Run.status != "done").order_by(Run.id)
    return (await session.scalars(stmt)).all()


async def delete_before(
    session: AsyncSession, cutoff: datetime, *, log_cutoff: datetime
) -> dict[str, int]:
    """Delete what is older than the cutoff; counts per kind.

    Transcript lines, answers and every outbox row older than `cutoff` go; delivery records
    (sent or dead outbox rows, processed update ids) already go after `log_cutoff`.
    """
    counts: dict[str, int] = {}
    delivered = Outbox.status.in_(("sent", "dead"))
    for name, stmt in (
        ("transcript", delete(TranscriptLine).where(TranscriptLine.created_at < cutoff)),
        ("answers", delete(Answer).where(Answer.created_at < cutoff)),
        (
            "outbox",
            delete(Outbox).where(
                (Outbox.created_at < cutoff) | (delivered & (Outbox.created_at < log_cutoff))
            ),
        ),
        (
            "processed_updates",
            delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < log_cutoff),
        ),
    ):
        result = await session.execute(stmt.execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


async def blank_closed_flags(session: AsyncSession, cutoff: datetime) -> int:
    """Closed flags older than the cutoff keep their record but lose the pupil's words."""
    stmt = select(Flag).where(Flag.state == "closed", Flag.closed_at < cutoff)
    count = 0
    for flag in (await session.scalars(stmt)).all():
        items = flag.evidence.get("items", [])
        if (
            flag.context.get("lines")
            or any(i != repo.ERASED for i in items)
            or (flag.about and flag.about != repo.ERASED)
        ):
            flag.context = {"lines": []}
            flag.evidence = {"items": [repo.ERASED for _ in items]}
            flag.about = repo.ERASED if flag.about else ""
            count += 1
    return count
