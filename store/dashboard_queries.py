"""Reads and small writes for the staff dashboard (the caller owns the transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    Answer,
    Assignment,
    AuditLog,
    Flag,
    FlagEvent,
    Pupil,
    Run,
    SchoolClass,
    Staff,
)

FLAG_RANK = {"crisis": 0, "zorg": 1, "aandacht": 2, "contactvraag": 3}
OPEN_STATES = ("open", "acknowledged", "in_conversation")


@dataclass(frozen=True, slots=True)
class ClassRow:
    """A class with its counts, for lists of classes."""

    id: int
    name: str
    join_code: str
    teacher_id: int | None
    pupils: int
    assignments: int


@dataclass(frozen=True, slots=True)
class PupilRow:
    """A pupil as staff lists show them (never their chat ids or state)."""

    id: int
    first_name: str
    pseudonym: str
    class_id: int | None
    last_seen_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunRow:
    """Where a pupil stands in one run of a module."""

    id: int
    pupil_id: int
    module_id: str
    status: str
    position: int
    total: int
    share: str | None
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """A non-private answer of a finished run, with the share choice of that run."""

    pupil_id: int
    run_id: int
    module_id: str
    step_id: str
    value: Any
    display: str
    share: str | None


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of the counsellors' flag queue."""

    id: int
    kind: str
    reason: str
    category: str | None
    state: str
    urgent: bool
    pupil_pseudonym: str
    class_name: str | None
    created_at: datetime
    updated_at: datetime
    delivery_failed: bool


@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of a flag's history."""

    action: str
    note: str
    staff_name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One line of the audit log."""

    id: int
    action: str
    target: str
    staff_name: str | None
    created_at: datetime


def _values(row: Any) -> tuple[Any, ...]:
    """A result row as a plain tuple (for rows wider than SQLAlchemy's typed tuples)."""
    return tuple(row)


# ---------------------------------------------------------------- staff


async def staff_by_id(session: AsyncSession, staff_id: int) -> Staff | None:
    """The staff account with this id."""
    return await session.get(Staff, staff_id)


async def staff_of_school(session: AsyncSession, school_id: int) -> Sequence[Staff]:
    """All staff accounts of one school, by name."""
    stmt = select(Staff).where(Staff.school_id == school_id).order_by(Staff.name, Staff.id)
    return (await session.scalars(stmt)).all()


async def set_password_hash(session: AsyncSession, staff: Staff, password_hash: str) -> None:
    """Store a new password hash (this ends every other session of the account)."""
    staff.password_hash = password_hash
    await session.flush()


async def set_staff_active(session: AsyncSession, staff: Staff, *, active: bool) -> None:
    """Activate or deactivate a staff account; a deactivated account loses its Telegram link."""
    staff.active = active
    if not active:
        staff.telegram_user_id = None
        staff.link_code = None
        staff.link_code_expires = None
    await session.flush()


# ---------------------------------------------------------------- classes and pupils


def _class_rows_stmt() -> Any:
    pupils = (
        select(func.count(Pupil.id))
        .where(Pupil.class_id == SchoolClass.id, Pupil.active, Pupil.consent_at.is_not(None))
        .correlate(SchoolClass)
        .scalar_subquery()
    )
    assignments = (
        select(func.count(Assignment.id))
        .where(Assignment.class_id == SchoolClass.id)
        .correlate(SchoolClass)
        .scalar_subquery()
    )
    return select(
        SchoolClass.id,
        SchoolClass.name,
        SchoolClass.join_code,
        SchoolClass.teacher_id,
        pupils,
        assignments,
    ).order_by(SchoolClass.name)


async def classes_of_teacher(session: AsyncSession, teacher_id: int) -> list[ClassRow]:
    """The classes a teacher owns, by name, with pupil and assignment counts."""
    stmt = _class_rows_stmt().where(SchoolClass.teacher_id == teacher_id)
    return [ClassRow(*_values(row)) for row in (await session.execute(stmt)).all()]


async def classes_of_school(session: AsyncSession, school_id: int) -> list[ClassRow]:
    """All classes of a school, by name, with pupil and assignment counts."""
    stmt = _class_rows_stmt().where(SchoolClass.school_id == school_id)
    return [ClassRow(*_values(row)) for row in (await session.execute(stmt)).all()]


async def class_by_id(session: AsyncSession, class_id: int) -> SchoolClass | None:
    """The class with this id."""
    return await session.get(SchoolClass, class_id)


async def class_name_taken(session: AsyncSession, *, school_id: int, name: str) -> bool:
    """True when the school already has a class with this name."""
    stmt = select(SchoolClass.id).where(
        SchoolClass.school_id == school_id, SchoolClass.name == name.strip()
    )
    return await session.scalar(stmt) is not None


async def pupils_of_classes(session: AsyncSession, class_ids: Sequence[int]) -> list[PupilRow]:
    """Active pupils with consent in these classes, in the order they joined."""
    if not class_ids:
        return []
    stmt = (
        select(
            Pupil.id,
            Pupil.first_name,
            Pupil.pseudonym,
            Pupil.class_id,
            Pupil.last_seen_at,
            Pupil.created_at,
        )
        .where(Pupil.class_id.in_(class_ids), Pupil.active, Pupil.consent_at.is_not(None))
        .order_by(Pupil.id)
    )
    return [PupilRow(*row) for row in (await session.execute(stmt)).all()]


async def pupil_row(session: AsyncSession, pupil_id: int) -> PupilRow | None:
    """One active pupil with consent, as staff lists show them."""
    stmt = select(
        Pupil.id,
        Pupil.first_name,
        Pupil.pseudonym,
        Pupil.class_id,
        Pupil.last_seen_at,
        Pupil.created_at,
    ).where(Pupil.id == pupil_id, Pupil.active, Pupil.consent_at.is_not(None))
    row = (await session.execute(stmt)).first()
    return PupilRow(*row) if row is not None else None


async def assignments_of_class(session: AsyncSession, class_id: int) -> Sequence[Assignment]:
    """The modules assigned to a class, oldest first."""
    stmt = select(Assignment).where(Assignment.class_id == class_id).order_by(Assignment.id)
    return (await session.scalars(stmt)).all()


async def runs_of_pupils(
    session: AsyncSession, pupil_ids: Sequence[int], module_ids: Sequence[str] | None = None
) -> list[RunRow]:
    """Every run of these pupils (on these modules when given), oldest first."""
    if not pupil_ids:
        return []
    stmt = (
        select(
            Run.id,
            Run.pupil_id,
            Run.module_id,
            Run.status,
            Run.position,
            Run.total,
            Run.share,
            Run.updated_at,
            Run.finished_at,
        )
        .where(Run.pupil_id.in_(pupil_ids))
        .order_by(Run.id)
    )
    if module_ids is not None:
        stmt = stmt.where(Run.module_id.in_(module_ids))
    return [RunRow(*row) for row in (await session.execute(stmt)).all()]


async def shared_answers(
    session: AsyncSession, *, pupil_ids: Sequence[int], module_ids: Sequence[str]
) -> list[AnswerRow]:
    """Non-private answers of finished runs the pupil shared (alles or samenvatting).

    Private answers never leave the database here; which steps a `samenvatting` share shows
    is decided by the caller, who knows the module.
    """
    if not pupil_ids or not module_ids:
        return []
    stmt = (
        select(
            Answer.pupil_id,
            Answer.run_id,
            Answer.module_id,
            Answer.step_id,
            Answer.value,
            Answer.display,
            Run.share,
        )
        .join(Run, Run.id == Answer.run_id)
        .where(
            Answer.pupil_id.in_(pupil_ids),
            Answer.module_id.in_(module_ids),
            Answer.private.is_(False),
            Run.status == "done",
            Run.share.in_(("alles", "samenvatting")),
        )
        .order_by(Answer.run_id, Answer.id)
    )
    found = []
    for row in (await session.execute(stmt)).all():
        pupil_id, run_id, module_id, step_id, value, display, share = _values(row)
        found.append(
            AnswerRow(pupil_id, run_id, module_id, step_id, (value or {}).get("v"), display, share)
        )
    return found


# ---------------------------------------------------------------- flags


async def flag_queue(
    session: AsyncSession, *, school_id: int, closed: bool = False, limit: int = 1000
) -> list[QueueRow]:
    """Flags of one school: open ones crisis > zorg > aandacht > contactvraag, oldest first;
    closed ones newest first."""
    rank = case(FLAG_RANK, value=Flag.kind, else_=len(FLAG_RANK))
    stmt = (
        select(
            Flag.id,
            Flag.kind,
            Flag.reason,
            Flag.category,
            Flag.state,
            Flag.urgent,
            Flag.pupil_pseudonym,
            SchoolClass.name,
            Flag.created_at,
            Flag.updated_at,
            Flag.delivery_failed,
        )
        .outerjoin(SchoolClass, SchoolClass.id == Flag.class_id)
        .where(Flag.school_id == school_id)
    )
    if closed:
        stmt = stmt.where(Flag.state == "closed").order_by(Flag.closed_at.desc(), Flag.id.desc())
    else:
        stmt = stmt.where(Flag.state.in_(OPEN_STATES)).order_by(rank, Flag.created_at, Flag.id)
    return [QueueRow(*row) for row in (await session.execute(stmt.limit(limit))).all()]


async def contact_requests_for_teacher(
    session: AsyncSession, *, teacher_id: int, school_id: int, limit: int = 200
) -> list[QueueRow]:
    """Contact requests pupils addressed to this teacher (own classes), open ones first."""
    is_open = case((Flag.state == "closed", 1), else_=0)
    stmt = (
        select(
            Flag.id,
            Flag.kind,
            Flag.reason,
            Flag.category,
            Flag.state,
            Flag.urgent,
            Flag.pupil_pseudonym,
            SchoolClass.name,
            Flag.created_at,
            Flag.updated_at,
            Flag.delivery_failed,
        )
        .join(SchoolClass, SchoolClass.id == Flag.class_id)
        .where(
            Flag.school_id == school_id,
            SchoolClass.teacher_id == teacher_id,
            Flag.kind == "contactvraag",
            Flag.target == "leerkracht",
        )
        .order_by(is_open, Flag.created_at, Flag.id)
        .limit(limit)
    )
    return [QueueRow(*row) for row in (await session.execute(stmt)).all()]


async def queue_stamp(session: AsyncSession, *, school_id: int) -> str:
    """A short fingerprint of the school's open queue: it changes when the queue changes."""
    stmt = select(func.count(Flag.id), func.max(Flag.updated_at), func.max(Flag.id)).where(
        Flag.school_id == school_id, Flag.state.in_(OPEN_STATES)
    )
    count, latest, top = (await session.execute(stmt)).one()
    stamp = latest.isoformat() if isinstance(latest, datetime) else str(latest)
    return f"{count}-{top}-{stamp}"


async def flag_events(session: AsyncSession, flag_id: int) -> list[EventRow]:
    """A flag's history, oldest first, with the names of the staff who acted."""
    stmt = (
        select(FlagEvent.action, FlagEvent.note, Staff.name, FlagEvent.created_at)
        .outerjoin(Staff, Staff.id == FlagEvent.staff_id)
        .where(FlagEvent.flag_id == flag_id)
        .order_by(FlagEvent.id)
    )
    return [EventRow(*row) for row in (await session.execute(stmt)).all()]


async def open_flag_ids_by_pupil(
    session: AsyncSession, pupil_ids: Sequence[int]
) -> dict[int, int]:
    """For counsellors: the newest open flag id per pupil."""
    if not pupil_ids:
        return {}
    stmt = (
        select(Flag.pupil_id, func.max(Flag.id))
        .where(Flag.pupil_id.in_(pupil_ids), Flag.state.in_(OPEN_STATES))
        .group_by(Flag.pupil_id)
    )
    return {
        int(pid): int(fid) for pid, fid in (await session.execute(stmt)).all() if pid is not None
    }


# ---------------------------------------------------------------- audit


async def audit_page(
    session: AsyncSession, *, school_id: int, before_id: int | None = None, limit: int = 100
) -> list[AuditRow]:
    """The school's audit log, newest first, `limit` lines older than `before_id`."""
    stmt = (
        select(AuditLog.id, AuditLog.action, AuditLog.target, Staff.name, AuditLog.created_at)
        .outerjoin(Staff, Staff.id == AuditLog.staff_id)
        .where(AuditLog.school_id == school_id)
    )
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    stmt = stmt.order_by(AuditLog.id.desc()).limit(limit)
    return [AuditRow(*row) for row in (await session.execute(stmt)).all()]
