"""Flags from engine events: one open flag per pupil and kind, with the transcript around it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.types import AnswerRecorded, Event, FlagRaised
from store import repo
from store.models import Flag, Pupil, SchoolClass, Staff

log = logging.getLogger("leerbot.flags")
CONTEXT_LINES = 20
STATES = ("open", "acknowledged", "in_conversation", "closed")


class Outcome(StrEnum):
    """What a FlagRaised event did to the pupil's flags."""

    NEW = "new"
    URGENT = "urgent"  # an open flag became urgent (a contact request asked again, urgently)
    UPDATED = "updated"


# Called after a FlagRaised event created or updated a flag row.
FlagListener = Callable[
    [AsyncSession, Pupil, Flag, FlagRaised, Outcome, datetime], Awaitable[None]
]


async def context_lines(session: AsyncSession, pupil_id: int) -> list[dict[str, str]]:
    """The last transcript lines a counsellor may see (never lines marked private)."""
    lines = await repo.recent_transcript(session, pupil_id, limit=CONTEXT_LINES * 2)
    visible = [line for line in lines if not line.private][-CONTEXT_LINES:]
    return [
        {"at": line.created_at.isoformat(), "dir": line.direction, "text": line.text}
        for line in visible
    ]


async def raise_flag(
    session: AsyncSession,
    pupil: Pupil,
    event: FlagRaised,
    now: datetime,
    *,
    staff: Staff | None = None,
) -> tuple[Flag, bool]:
    """Create the flag, or update the pupil's open flag of the same kind; True when new.

    `staff` marks a flag a staff member asked for: it gets no transcript, because the pupil
    did not write anything that asked for help.
    """
    flag, outcome = await _raise(session, pupil, event, now, staff=staff)
    return flag, outcome is Outcome.NEW


async def _raise(
    session: AsyncSession, pupil: Pupil, event: FlagRaised, now: datetime, *, staff: Staff | None
) -> tuple[Flag, Outcome]:
    klass = await session.get(SchoolClass, pupil.class_id) if pupil.class_id else None
    existing = await repo.open_flag(
        session,
        pupil_id=pupil.id,
        kind=event.level,
        target=event.target if event.level == "contactvraag" else None,
    )
    evidence = list(event.evidence)
    lines = [] if staff is not None else await context_lines(session, pupil.id)
    action = "contact_opened" if staff is not None else None
    staff_id = staff.id if staff is not None else None
    if existing is not None:
        old = list(existing.evidence.get("items", []))
        existing.evidence = {"items": old + [e for e in evidence if e not in old]}
        outcome = Outcome.URGENT if event.urgent and not existing.urgent else Outcome.UPDATED
        existing.urgent = existing.urgent or event.urgent
        if event.about:
            existing.about = event.about
        if lines:
            existing.context = {"lines": lines}
        existing.updated_at = now
        await repo.add_flag_event(
            session,
            flag=existing,
            action=action or "updated",
            staff_id=staff_id,
            note=event.reason,
            now=now,
        )
        return existing, outcome
    flag = Flag(
        school_id=klass.school_id if klass else None,
        pupil_id=pupil.id,
        pupil_pseudonym=pupil.pseudonym,
        class_id=klass.id if klass else None,
        kind=event.level,
        reason=event.reason,
        category=event.category,
        evidence={"items": evidence},
        target=event.target,
        urgent=event.urgent,
        about=event.about,
        module_id=event.module,
        state="open",
        context={"lines": lines},
        created_at=now,
        updated_at=now,
    )
    session.add(flag)
    await session.flush()
    await repo.add_flag_event(
        session,
        flag=flag,
        action=action or "opened",
        staff_id=staff_id,
        note=event.reason,
        now=now,
    )
    log.info("flag %s (%s) opened for %s", flag.id, flag.kind, pupil.pseudonym)
    return flag, Outcome.NEW


async def _hide_private_answer(session: AsyncSession, pupil: Pupil, now: datetime) -> None:
    """A private answer that also raised a flag in this step leaves that flag's transcript.

    The engine raises the flag before it records the answer, so the snapshot taken then
    still holds the line; the flag keeps its category and evidence (the pupil is told so).
    """
    stmt = select(Flag).where(
        Flag.pupil_id == pupil.id, Flag.updated_at == now, Flag.state != "closed"
    )
    for flag in (await session.scalars(stmt)).all():
        if flag.context.get("lines"):
            flag.context = {"lines": await context_lines(session, pupil.id)}


class FlagHook:
    """Conversation event hook: FlagRaised → flag row, then the listeners (notifications)."""

    def __init__(self, listeners: Sequence[FlagListener] = ()) -> None:
        self.listeners: list[FlagListener] = list(listeners)

    async def __call__(
        self, session: AsyncSession, pupil: Pupil, event: Event, now: datetime
    ) -> None:
        """Handle one engine event inside the pupil's transaction."""
        if isinstance(event, FlagRaised):
            flag, outcome = await _raise(session, pupil, event, now, staff=None)
            for listener in self.listeners:
                await listener(session, pupil, flag, event, outcome, now)
        elif isinstance(event, AnswerRecorded) and event.private:
            await _hide_private_answer(session, pupil, now)


flag_hook = FlagHook()
