"""Reminder rows: which pupils still owe an assigned module, and which reminders are due.

Like store/repo.py, these take the caller's `AsyncSession` and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Assignment, Pupil, Reminder, Run
from store.repo import insert_for


@dataclass(frozen=True, slots=True)
class Owed:
    """An assigned module a pupil has no reminder row for yet."""

    pupil_id: int
    module_id: str
    since: datetime  # when the pupil heard of it: the later of assignment and consent


async def unscheduled(session: AsyncSession, *, limit: int = 500) -> list[Owed]:
    """Assigned modules of active, consenting pupils that have no reminder row and no done run."""
    done = exists().where(
        Run.pupil_id == Pupil.id, Run.module_id == Assignment.module_id, Run.status == "done"
    )
    has_row = exists().where(
        Reminder.pupil_id == Pupil.id, Reminder.module_id == Assignment.module_id
    )
    stmt = (
        select(Pupil.id, Assignment.module_id, Assignment.created_at, Pupil.consent_at)
        .join(Assignment, Assignment.class_id == Pupil.class_id)
        .where(Pupil.active, Pupil.consent_at.is_not(None), ~done, ~has_row)
        .order_by(Pupil.id, Assignment.id)
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    return [Owed(pupil_id=p, module_id=m, since=max(a, c) if c else a) for p, m, a, c in rows]


async def add_many(session: AsyncSession, owed: Sequence[tuple[int, str, datetime]]) -> None:
    """New reminder rows (pupil id, module id, next_at) in one statement.

    A row another worker added meanwhile stays as it is (no error, no second row).
    """
    if not owed:
        return
    values = [
        {"pupil_id": pupil_id, "module_id": module_id, "next_at": next_at, "active": True}
        for pupil_id, module_id, next_at in owed
    ]
    insert = insert_for(session.get_bind().dialect.name)
    statement = insert(Reminder).on_conflict_do_nothing(index_elements=["pupil_id", "module_id"])
    await session.execute(statement, values)


async def due_ids(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[int]:
    """Ids of active reminders whose time has come, oldest first."""
    stmt = (
        select(Reminder.id)
        .where(Reminder.active, Reminder.next_at <= now)
        .order_by(Reminder.next_at, Reminder.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def claim(session: AsyncSession, reminder_id: int, *, now: datetime) -> Reminder | None:
    """The reminder, locked, if it is still active and due (another worker may have sent it)."""
    stmt = (
        select(Reminder)
        .where(Reminder.id == reminder_id, Reminder.active, Reminder.next_at <= now)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(stmt)).first()


async def sent_between(
    session: AsyncSession, pupil_id: int, *, start: datetime, end: datetime
) -> bool:
    """True when any reminder reached this pupil in [start, end) (one a day, all modules)."""
    stmt = (
        select(func.count())
        .select_from(Reminder)
        .where(
            Reminder.pupil_id == pupil_id,
            and_(Reminder.last_sent_at >= start, Reminder.last_sent_at < end),
        )
    )
    return bool(await session.scalar(stmt))


async def still_assigned(session: AsyncSession, pupil: Pupil, module_id: str) -> bool:
    """True when the module is assigned to the pupil's class."""
    if pupil.class_id is None:
        return False
    stmt = select(
        exists().where(Assignment.class_id == pupil.class_id, Assignment.module_id == module_id)
    )
    return bool(await session.scalar(stmt))


async def for_pupil(session: AsyncSession, pupil_id: int) -> Sequence[Reminder]:
    """All reminder rows of a pupil (for tests and the data export)."""
    stmt = select(Reminder).where(Reminder.pupil_id == pupil_id).order_by(Reminder.id)
    return (await session.scalars(stmt)).all()
