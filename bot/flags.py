"""Flags from engine events: one open flag per pupil and kind, with the transcript around it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from flows.types import Event, FlagRaised
from store import repo
from store.models import Flag, Pupil, SchoolClass

log = logging.getLogger("leerbot.flags")
CONTEXT_LINES = 20


async def context_lines(session: AsyncSession, pupil_id: int) -> list[dict[str, str]]:
    """The last transcript lines a counsellor may see (never lines marked private)."""
    lines = await repo.recent_transcript(session, pupil_id, limit=CONTEXT_LINES * 2)
    visible = [line for line in lines if not line.private][-CONTEXT_LINES:]
    return [{"at": line.created_at.isoformat(), "dir": line.direction, "text": line.text}
            for line in visible]


async def raise_flag(session: AsyncSession, pupil: Pupil, event: FlagRaised,
                     now: datetime) -> tuple[Flag, bool]:
    """Create the flag, or update the pupil's open flag of the same kind; True when new."""
    klass = await session.get(SchoolClass, pupil.class_id) if pupil.class_id else None
    existing = await repo.open_flag(session, pupil_id=pupil.id, kind=event.level,
                                    target=event.target if event.level == "contactvraag" else None)
    evidence = list(event.evidence)
    if existing is not None:
        old = list(existing.evidence.get("items", []))
        existing.evidence = {"items": old + [e for e in evidence if e not in old]}
        existing.urgent = existing.urgent or event.urgent
        if event.about:
            existing.about = event.about
        existing.context = {"lines": await context_lines(session, pupil.id)}
        existing.updated_at = now
        await repo.add_flag_event(session, flag=existing, action="updated", staff_id=None,
                                  note=event.reason, now=now)
        return existing, False
    flag = Flag(school_id=klass.school_id if klass else None, pupil_id=pupil.id,
                pupil_pseudonym=pupil.pseudonym, class_id=klass.id if klass else None,
                kind=event.level, reason=event.reason, category=event.category,
                evidence={"items": evidence}, target=event.target, urgent=event.urgent,
                about=event.about, module_id=event.module, state="open",
                context={"lines": await context_lines(session, pupil.id)},
                created_at=now, updated_at=now)
    session.add(flag)
    await session.flush()
    await repo.add_flag_event(session, flag=flag, action="opened", staff_id=None,
                              note=event.reason, now=now)
    log.info("flag %s (%s) opened for %s", flag.id, flag.kind, pupil.pseudonym)
    return flag, True


async def flag_hook(session: AsyncSession, pupil: Pupil, event: Event, now: datetime) -> None:
    """Conversation event hook: turn FlagRaised into a flag row."""
    if isinstance(event, FlagRaised):
        await raise_flag(session, pupil, event, now)
