"""Repositories: queries and writes over an `AsyncSession` the caller owns (they never commit)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.models import (
    Answer,
    Assignment,
    AuditLog,
    Base,
    Flag,
    FlagEvent,
    ModuleVersion,
    Outbox,
    ProcessedUpdate,
    Pupil,
    Run,
    School,
    SchoolClass,
    Staff,
    TranscriptLine,
    utcnow,
)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud in class
JOIN_CODE_LENGTH = 8
STAFF_CODE_PREFIX = "st_"
QUEUED = "leerbot.outbox_queued"  # session.info key: this transaction queued for the sender


class StoreError(Exception):
    """A request the store refuses, with one line for the operator or the form."""


def new_code(length: int = JOIN_CODE_LENGTH) -> str:
    """A random code from an alphabet without look-alike characters."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def is_join_code(text: str) -> bool:
    """True when `text` has the shape of a class join code."""
    return len(text) == JOIN_CODE_LENGTH and all(c in CODE_ALPHABET for c in text)


# ---------------------------------------------------------------- schools, staff, classes


async def add_school(session: AsyncSession, *, name: str, region: str = "BE") -> School:
    """Add a school; names are unique."""
    name = name.strip()
    if not name:
        raise StoreError("a school needs a name")
    if await school_by_name(session, name) is not None:
        raise StoreError(f"school {name!r} already exists")
    school = School(name=name, region=region.upper())
    session.add(school)
    await session.flush()
    return school


async def school_by_name(session: AsyncSession, name: str) -> School | None:
    """The school with this name, if any."""
    return (await session.scalars(select(School).where(School.name == name))).first()


async def add_staff(
    session: AsyncSession,
    *,
    school: School,
    email: str,
    name: str,
    role: str,
    password_hash: str | None,
) -> Staff:
    """Add a staff account (email unique, role teacher|counsellor|admin)."""
    email = email.strip().lower()
    if role not in {"teacher", "counsellor", "admin"}:
        raise StoreError(f"unknown role {role!r}: use teacher, counsellor or admin")
    if "@" not in email or "." not in email.rsplit("@", 1)[-1]:
        raise StoreError(f"not an e-mail address: {email!r}")
    if await staff_by_email(session, email) is not None:
        raise StoreError(f"a staff account with e-mail {email} already exists")
    staff = Staff(
        school_id=school.id, email=email, name=name.strip(), role=role, password_hash=password_hash
    )
    session.add(staff)
    await session.flush()
    return staff


async def staff_by_email(session: AsyncSession, email: str) -> Staff | None:
    """The staff account with this e-mail (case-insensitive)."""
    stmt = select(Staff).where(Staff.email == email.strip().lower())
    return (await session.scalars(stmt)).first()


async def staff_telegram_ids(session: AsyncSession) -> set[int]:
    """Telegram user ids of active staff with a linked account."""
    stmt = select(Staff.telegram_user_id).where(Staff.active, Staff.telegram_user_id.is_not(None))
    return {int(user_id) for user_id in (await session.scalars(stmt)).all() if user_id is not None}


async def staff_by_telegram(session: AsyncSession, telegram_user_id: int) -> Staff | None:
    """The active staff account linked to this Telegram user."""
    stmt = select(Staff).where(Staff.telegram_user_id == telegram_user_id, Staff.active)
    return (await session.scalars(stmt)).first()


async def new_staff_link_code(
    session: AsyncSession, staff: Staff, *, now: datetime, valid: timedelta = timedelta(hours=24)
) -> str:
    """A one-time code the staff member sends to the bot to link Telegram."""
    code = STAFF_CODE_PREFIX + new_code(10)
    staff.link_code = code
    staff.link_code_expires = now + valid
    await session.flush()
    return code


async def link_staff(
    session: AsyncSession, *, code: str, telegram_user_id: int, now: datetime
) -> Staff | None:
    """Link a Telegram user to the staff account of a valid code (the code is used up)."""
    staff = (await session.scalars(select(Staff).where(Staff.link_code == code))).first()
    if staff is None or staff.link_code_expires is None or staff.link_code_expires < now:
        return None
    other = await staff_by_telegram(session, telegram_user_id)
    if other is not None and other.id != staff.id:
        other.telegram_user_id = None
        await session.flush()
    staff.telegram_user_id = telegram_user_id
    staff.link_code = None
    staff.link_code_expires = None
    await session.flush()
    return staff


async def add_class(
    session: AsyncSession, *, school: School, name: str, teacher: Staff | None
) -> SchoolClass:
    """Add a class with a fresh join code; class names are unique per school."""
    name = name.strip()
    if not name:
        raise StoreError("a class needs a name")
    exists = await session.scalar(
        select(SchoolClass.id).where(SchoolClass.school_id == school.id, SchoolClass.name == name)
    )
    if exists is not None:
        raise StoreError(f"class {name!r} already exists in {school.name}")
    for _ in range(10):
        code = new_code()
        taken = await session.scalar(select(SchoolClass.id).where(SchoolClass.join_code == code))
        if taken is None:
            break
    klass = SchoolClass(
        school_id=school.id, name=name, teacher_id=teacher.id if teacher else None, join_code=code
    )
    session.add(klass)
    await session.flush()
    return klass


async def classes_by_name(
    session: AsyncSession, name: str, school_id: int | None = None
) -> Sequence[SchoolClass]:
    """Classes with this name (in one school when given)."""
    stmt = select(SchoolClass).where(SchoolClass.name == name.strip())
    if school_id is not None:
        stmt = stmt.where(SchoolClass.school_id == school_id)
    return (await session.scalars(stmt)).all()


async def class_by_code(session: AsyncSession, code: str) -> SchoolClass | None:
    """The class with this join code."""
    stmt = select(SchoolClass).where(SchoolClass.join_code == code.upper())
    return (await session.scalars(stmt)).first()


async def assign(
    session: AsyncSession,
    *,
    klass: SchoolClass,
    module_id: str,
    due: date | None,
    staff_id: int | None = None,
) -> tuple[Assignment, bool]:
    """Assign a module to a class (again: update the due date); True when it is new."""
    stmt = select(Assignment).where(
        Assignment.class_id == klass.id, Assignment.module_id == module_id
    )
    existing = (await session.scalars(stmt)).first()
    if existing is not None:
        existing.due = due
        await session.flush()
        return existing, False
    assignment = Assignment(class_id=klass.id, module_id=module_id, due=due, created_by=staff_id)
    session.add(assignment)
    await session.flush()
    return assignment, True


@dataclass(frozen=True)
class ClassContext:
    """What a pupil's conversation needs of their class, read in one query."""

    name: str
    region: str
    assignments: tuple[tuple[str, date | None], ...]  # (module, due), oldest first


# Statements that run on every update are built once, with bound parameters: building a
# statement and working out its cache key cost more CPU than the database took to run it.
_CLASS_CONTEXT = (
    select(SchoolClass.name, School.region, Assignment.module_id, Assignment.due)
    .join(School, School.id == SchoolClass.school_id)
    .outerjoin(Assignment, Assignment.class_id == SchoolClass.id)
    .where(SchoolClass.id == bindparam("class_id"))
    .order_by(Assignment.id)
)


async def class_context(session: AsyncSession, class_id: int) -> ClassContext | None:
    """The class's name, its school's region and its assignments (one round trip per update)."""
    rows = (await session.execute(_CLASS_CONTEXT, {"class_id": class_id})).all()
    if not rows:
        return None
    return ClassContext(
        name=rows[0].name,
        region=rows[0].region or "BE",
        assignments=tuple((r.module_id, r.due) for r in rows if r.module_id is not None),
    )


async def pupils_in_class(session: AsyncSession, class_id: int) -> Sequence[Pupil]:
    """Active pupils of a class who gave consent."""
    stmt = (
        select(Pupil)
        .where(Pupil.class_id == class_id, Pupil.active, Pupil.consent_at.is_not(None))
        .order_by(Pupil.id)
    )
    return (await session.scalars(stmt)).all()


# ---------------------------------------------------------------- pupils and runs


def _pseudonym() -> str:
    return "L-" + new_code(6)


_PUPIL_FOR_UPDATE = (
    select(Pupil).where(Pupil.telegram_user_id == bindparam("user_id")).with_for_update()
)


async def pupil_for_update(session: AsyncSession, telegram_user_id: int) -> Pupil | None:
    """The pupil row, locked for this transaction on PostgreSQL (per-pupil ordering)."""
    return (await session.scalars(_PUPIL_FOR_UPDATE, {"user_id": telegram_user_id})).first()


async def create_pupil(
    session: AsyncSession, *, telegram_user_id: int, chat_id: int, first_name: str
) -> Pupil:
    """A new pupil row with a unique pseudonym (used in logs and staff views)."""
    pupil = Pupil(
        telegram_user_id=telegram_user_id,
        chat_id=chat_id,
        first_name=first_name[:100],
        pseudonym=_pseudonym(),
        state={},
    )
    session.add(pupil)
    await session.flush()
    return pupil


_RUNS_FOR_PUPIL = select(Run).where(Run.pupil_id == bindparam("pupil_id")).order_by(Run.id)


async def runs_for_pupil(session: AsyncSession, pupil_id: int) -> Sequence[Run]:
    """All runs of a pupil, oldest first."""
    return (await session.scalars(_RUNS_FOR_PUPIL, {"pupil_id": pupil_id})).all()


async def latest_run(session: AsyncSession, pupil_id: int, module_id: str) -> Run | None:
    """The newest run of a pupil on a module."""
    stmt = (
        select(Run)
        .where(Run.pupil_id == pupil_id, Run.module_id == module_id)
        .order_by(Run.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def save_answer(
    session: AsyncSession,
    *,
    run: Run,
    step_id: str,
    value: Any,
    display: str,
    private: bool,
    now: datetime,
) -> None:
    """Store or replace the answer to one step of a run."""
    stmt = select(Answer).where(Answer.run_id == run.id, Answer.step_id == step_id)
    answer = (await session.scalars(stmt)).first()
    if answer is None:
        session.add(
            Answer(
                run_id=run.id,
                pupil_id=run.pupil_id,
                module_id=run.module_id,
                step_id=step_id,
                value={"v": value},
                display=display,
                private=private,
                created_at=now,
            )
        )
    else:
        answer.value = {"v": value}
        answer.display = display
        answer.private = private
        answer.created_at = now


async def answers_for_pupil(session: AsyncSession, pupil_id: int) -> Sequence[Answer]:
    """All answers of a pupil, in the order given."""
    stmt = select(Answer).where(Answer.pupil_id == pupil_id).order_by(Answer.id)
    return (await session.scalars(stmt)).all()


async def add_transcript(
    session: AsyncSession,
    *,
    pupil_id: int,
    direction: str,
    text: str,
    now: datetime,
    private: bool = False,
) -> TranscriptLine:
    """Append one line to a pupil's transcript."""
    line = TranscriptLine(
        pupil_id=pupil_id, direction=direction, text=text[:4096], private=private, created_at=now
    )
    session.add(line)
    return line


async def recent_transcript(
    session: AsyncSession, pupil_id: int, limit: int = 20
) -> list[TranscriptLine]:
    """The last `limit` transcript lines of a pupil, oldest first."""
    stmt = (
        select(TranscriptLine)
        .where(TranscriptLine.pupil_id == pupil_id)
        .order_by(TranscriptLine.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.scalars(stmt)).all()))


# ---------------------------------------------------------------- updates, outbox, versions


def insert_for(dialect: str) -> Any:
    """The dialect's INSERT construct, which knows ON CONFLICT (PostgreSQL or SQLite)."""
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def claim_statement(dialect: str) -> Any:
    """INSERT the update id unless it is there, RETURNING it (nothing for a redelivery)."""
    insert = insert_for(dialect)
    columns = ProcessedUpdate.__table__.c
    return (
        insert(ProcessedUpdate)
        .values(
            update_id=bindparam("update_id", type_=columns.update_id.type),
            processed_at=bindparam("now", type_=columns.processed_at.type),
        )
        .on_conflict_do_nothing(index_elements=[ProcessedUpdate.update_id])
        .returning(ProcessedUpdate.update_id)
    )


_CLAIM_UPDATE = {name: claim_statement(name) for name in ("postgresql", "sqlite")}


async def claim_update(session: AsyncSession, update_id: int, *, now: datetime) -> bool:
    """Record an update id; False when it was processed before (a redelivery)."""
    # One statement instead of read, savepoint, insert, release: this runs for every update.
    stmt = _CLAIM_UPDATE[session.get_bind().dialect.name]
    return (await session.execute(stmt, {"update_id": update_id, "now": now})).scalar() is not None


async def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    method: str,
    payload: dict[str, Any],
    priority: int = 0,
    pupil_id: int | None = None,
    staff_id: int | None = None,
    flag_id: int | None = None,
    now: datetime,
    claimed_by: str | None = None,
) -> Outbox:
    """Queue one Bot API call; the sender delivers it after this transaction commits.

    With `claimed_by` the row is claimed from the start (the bot's fast lane sends it);
    otherwise `session.info[QUEUED]` tells the caller to wake the sender after the commit.
    """
    row = Outbox(
        chat_id=chat_id,
        method=method,
        payload=payload,
        priority=priority,
        pupil_id=pupil_id,
        staff_id=staff_id,
        flag_id=flag_id,
        created_at=now,
    )
    if claimed_by is not None:
        row.status, row.claimed_by, row.claimed_at = "sending", claimed_by, now
    else:
        session.info[QUEUED] = True
    session.add(row)
    return row


async def outbox_quiet(
    session: AsyncSession, chat_id: int, *, now: datetime, lane: str | None = None
) -> bool:
    """May a reply for this chat skip the sender (the bot's fast lane, named `lane`)?

    Not while anything of the chat waits or is being sent by someone else, nor while the
    sender works through due notices or broadcasts (priority above 0), whose rate it keeps.
    """
    params = {"chat_id": chat_id, "now": now, "lane": lane or ""}
    if any(isinstance(obj, Outbox) for obj in session.new):
        return not await session.scalar(_OUTBOX_BUSY, params)  # they count: flush them first
    # Only outbox rows matter here: without autoflush the pupil's pending changes go out in
    # one UPDATE at commit instead of two (state now, last_seen_at later).
    with session.no_autoflush:
        return not await session.scalar(_OUTBOX_BUSY, params)


def outbox_busy() -> Any:
    """SELECT whether a reply for `chat_id` must leave the fast lane to the sender."""
    due = or_(Outbox.not_before.is_(None), Outbox.not_before <= bindparam("now"))
    # A claim of the asking lane is its own; "" (no lane) is nobody's owner name.
    sending = and_(
        Outbox.status == "sending", Outbox.claimed_by.is_distinct_from(bindparam("lane"))
    )
    return select(
        or_(
            exists().where(
                Outbox.chat_id == bindparam("chat_id"),
                or_(Outbox.status == "pending", sending),
            ),
            exists().where(Outbox.status == "pending", Outbox.priority > 0, due),
        )
    )


_OUTBOX_BUSY = outbox_busy()


async def pending_outbox(
    session: AsyncSession, *, now: datetime, limit: int = 200, skip_locked: bool = False
) -> Sequence[Outbox]:
    """Pending rows, most urgent first, oldest first; claimed with SKIP LOCKED on PostgreSQL."""
    stmt = (
        select(Outbox)
        .where(
            Outbox.status == "pending", (Outbox.not_before.is_(None)) | (Outbox.not_before <= now)
        )
        .order_by(Outbox.priority, Outbox.id)
        .limit(limit)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return (await session.scalars(stmt)).all()


async def oldest_due_message(session: AsyncSession, *, now: datetime) -> datetime | None:
    """When the oldest pending message that may be sent now was queued (None: none waits)."""
    due = (Outbox.not_before.is_(None)) | (Outbox.not_before <= now)
    return await session.scalar(
        select(func.min(Outbox.created_at)).where(Outbox.status == "pending", due)
    )


async def outbox_backlog(session: AsyncSession) -> int:
    """How many messages wait to be sent (queued or being sent right now)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.status.in_(("pending", "sending")))
        )
        or 0
    )


async def outbox_counts(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Messages per state that still matter to a sender: pending, due now, sending."""
    due = (Outbox.not_before.is_(None)) | (Outbox.not_before <= now)
    row = (
        await session.execute(
            select(
                func.count().filter(Outbox.status == "pending"),
                func.count().filter(and_(Outbox.status == "pending", due)),
                func.count().filter(Outbox.status == "sending"),
            ).where(Outbox.status.in_(("pending", "sending")))
        )
    ).one()
    return {"pending": int(row[0]), "due": int(row[1]), "sending": int(row[2])}


# Made once: building an alias copies every column, and a stable alias keeps the compiled
# statement in SQLAlchemy's cache (the sender claims many times a second).
_CAND = aliased(Outbox, name="cand")
_OTHER = aliased(Outbox, name="other")


async def claim_outbox(
    session: AsyncSession,
    *,
    owner: str,
    now: datetime,
    limit: int,
    max_priority: int | None = None,
    skip_locked: bool = False,
) -> list[Outbox]:
    """Mark the oldest due message of up to `limit` idle chats `sending` for one sender.

    Per-chat order holds across processes: a message is claimable only while no message of
    its chat is `sending` and nothing older of its chat waits, and on PostgreSQL a row another
    sender is claiming right now is skipped (`FOR UPDATE SKIP LOCKED`). Most urgent first.
    """
    cand, other = _CAND, _OTHER
    due = or_(cand.not_before.is_(None), cand.not_before <= now)
    held = exists().where(
        other.chat_id == cand.chat_id,
        or_(other.status == "sending", and_(other.id < cand.id, other.status == "pending")),
    )
    heads = (
        select(cand.id)
        .where(cand.status == "pending", due, ~held)
        .order_by(cand.priority, cand.id)
        .limit(limit)
    )
    if max_priority is not None:
        heads = heads.where(cand.priority <= max_priority)
    if skip_locked:
        heads = heads.with_for_update(skip_locked=True)
    return await _claim(session, heads, owner=owner, now=now)


async def outbox_due(session: AsyncSession, *, now: datetime) -> bool:
    """True when some message waits that is due: what `claim_outbox` could take, and more."""
    due = or_(Outbox.not_before.is_(None), Outbox.not_before <= now)
    stmt = select(Outbox.id).where(Outbox.status == "pending", due).limit(1)
    return (await session.scalar(stmt)) is not None


async def stale_claims(session: AsyncSession, *, stale_before: datetime, alive_owner: str) -> bool:
    """True when `recover_outbox` (without dead owners) would take some claim back."""
    stale = _stale(stale_before, alive_owner)
    stmt = select(Outbox.id).where(Outbox.status == "sending", stale).limit(1)
    return (await session.scalar(stmt)) is not None


async def claim_followers(
    session: AsyncSession, *, owner: str, now: datetime, chat_ids: Sequence[int], limit: int
) -> list[Outbox]:
    """The due messages right behind the ones this sender holds in `chat_ids`, in order.

    Call it in the transaction that claimed those chats' first messages (or while holding
    nothing of them): nobody else can claim in a chat whose first message is `sending`.
    """
    if not chat_ids:
        return []
    cand, other = _CAND, _OTHER
    due = or_(cand.not_before.is_(None), cand.not_before <= now)
    waiting = exists().where(
        other.chat_id == cand.chat_id,
        other.id < cand.id,
        other.status == "pending",
        other.not_before > now,
    )
    rows = (
        select(cand.id)
        .where(cand.chat_id.in_(list(chat_ids)), cand.status == "pending", due, ~waiting)
        .order_by(cand.id)
        .limit(limit)
    )
    return await _claim(session, rows, owner=owner, now=now)


async def _claim(session: AsyncSession, ids: Any, *, owner: str, now: datetime) -> list[Outbox]:
    stmt = (
        update(Outbox)
        .where(Outbox.id.in_(ids.scalar_subquery()))
        .values(status="sending", claimed_by=owner, claimed_at=now)
        .returning(Outbox)
        .execution_options(synchronize_session=False)
    )
    rows = list((await session.scalars(stmt)).all())
    rows.sort(key=lambda r: r.id)
    return rows


async def finish_outbox(
    session: AsyncSession,
    row_id: int,
    *,
    status: str,
    now: datetime,
    message_id: int | None = None,
    error: str | None = None,
    attempts: int | None = None,
    not_before: datetime | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record what happened to a claimed message (sent, dead, or pending again)."""
    values: dict[str, Any] = {"status": status}
    if status != "sending":
        values.update(claimed_by=None, claimed_at=None)
    if status == "sent":
        values.update(sent_at=now, message_id=message_id)
    if error is not None:
        values["last_error"] = error[:300]
    if attempts is not None:
        values["attempts"] = attempts
    if not_before is not None:
        values["not_before"] = not_before
    if payload is not None:
        values["payload"] = payload
    await session.execute(update(Outbox).where(Outbox.id == row_id).values(**values))


async def finish_many(session: AsyncSession, outcomes: Sequence[dict[str, Any]]) -> None:
    """Record several outcomes at once: dicts with "id" and the columns to set."""
    if outcomes:
        await session.execute(update(Outbox), list(outcomes))


async def refresh_claims(session: AsyncSession, *, owner: str, now: datetime) -> None:
    """A living sender says so: its claims stay fresh and are not taken over."""
    await session.execute(
        update(Outbox)
        .where(Outbox.status == "sending", Outbox.claimed_by == owner)
        .values(claimed_at=now)
    )


async def release_claims(
    session: AsyncSession, *, owner: str, row_ids: Sequence[int] | None = None
) -> int:
    """Put messages a sender claimed but did not send back in the queue."""
    stmt = update(Outbox).where(Outbox.status == "sending", Outbox.claimed_by == owner)
    if row_ids is not None:
        stmt = stmt.where(Outbox.id.in_(list(row_ids)))
    result = await session.execute(stmt.values(status="pending", claimed_by=None, claimed_at=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of UPDATE


async def sending_owners(session: AsyncSession) -> list[str]:
    """The senders that hold claimed messages right now."""
    stmt = select(Outbox.claimed_by).where(Outbox.status == "sending").distinct()
    return [owner for owner in (await session.scalars(stmt)).all() if owner]


def _stale(stale_before: datetime, alive_owner: str | None) -> Any:
    """Claimed before `stale_before`, by another sender than `alive_owner`."""
    stale = Outbox.claimed_at < stale_before
    if alive_owner is not None:  # the caller itself: alive, whatever its clock says
        stale = and_(stale, Outbox.claimed_by != alive_owner)
    return stale


async def recover_outbox(
    session: AsyncSession,
    *,
    stale_before: datetime,
    dead_owners: Sequence[str] = (),
    alive_owner: str | None = None,
) -> int:
    """Claims of crashed senders (known dead, or silent since `stale_before`) back to pending."""
    stale = _stale(stale_before, alive_owner)
    if dead_owners:
        stale = or_(stale, Outbox.claimed_by.in_(list(dead_owners)))
    result = await session.execute(
        update(Outbox)
        .where(Outbox.status == "sending", stale)
        .values(status="pending", claimed_by=None, claimed_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of UPDATE


async def mark_chat_blocked(
    session: AsyncSession, chat_id: int, now: datetime | None = None
) -> None:
    """A pupil blocked the bot: mark them and drop what still waits for them.

    A dropped staff reply (an outbox row with a flag) is recorded on its flag, so the staff
    member sees that the pupil never got it.
    """
    await session.execute(update(Pupil).where(Pupil.chat_id == chat_id).values(blocked=True))
    # One statement drops the rows and names their flags: with a separate SELECT first, a
    # staff reply committed in between would be dropped without its flag saying so.
    dropped = await session.scalars(
        update(Outbox)
        .where(Outbox.chat_id == chat_id, Outbox.status.in_(("pending", "sending")))
        .values(status="dead", last_error="blocked by the user", claimed_by=None, claimed_at=None)
        .returning(Outbox.flag_id)
        .execution_options(synchronize_session=False)
    )
    for flag_id in sorted({i for i in dropped.all() if i is not None}):
        await session.execute(
            update(Flag)
            .where(Flag.id == flag_id)
            .values(delivery_failed=True, updated_at=now or utcnow())
        )
        session.add(
            FlagEvent(
                flag_id=flag_id,
                action="delivery_failed",
                note="blocked by the user",
                created_at=now or utcnow(),
            )
        )


async def store_module_versions(
    session: AsyncSession, bodies: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """Keep every module version so runs pinned to it can continue after an edit."""
    known = {
        tuple(row)
        for row in (
            await session.execute(select(ModuleVersion.module_id, ModuleVersion.version))
        ).all()
    }
    insert = insert_for(session.get_bind().dialect.name)
    for (module_id, version), body in bodies.items():
        if (module_id, version) not in known:
            # Several workers start at once on a fresh database: the first one stores it.
            await session.execute(
                insert(ModuleVersion)
                .values(module_id=module_id, version=version, body=body, created_at=utcnow())
                .on_conflict_do_nothing(
                    index_elements=[ModuleVersion.module_id, ModuleVersion.version]
                )
            )


async def module_versions(session: AsyncSession) -> Sequence[ModuleVersion]:
    """All stored module versions."""
    return (await session.scalars(select(ModuleVersion))).all()


# ---------------------------------------------------------------- flags and audit


async def open_flag(
    session: AsyncSession, *, pupil_id: int, kind: str, target: str | None
) -> Flag | None:
    """The pupil's open (not closed) flag of this kind and target, if any."""
    stmt = select(Flag).where(Flag.pupil_id == pupil_id, Flag.kind == kind, Flag.state != "closed")
    if target is not None:
        stmt = stmt.where(Flag.target == target)
    return (await session.scalars(stmt.order_by(Flag.id.desc()))).first()


async def add_flag_event(
    session: AsyncSession,
    *,
    flag: Flag,
    action: str,
    staff_id: int | None,
    note: str = "",
    now: datetime,
) -> None:
    """Record who did what with a flag."""
    session.add(
        FlagEvent(flag_id=flag.id, staff_id=staff_id, action=action, note=note, created_at=now)
    )


async def audit(
    session: AsyncSession,
    *,
    staff: Staff | None,
    action: str,
    target: str,
    now: datetime | None = None,
) -> None:
    """Write one audit line (every staff read of a flag or transcript)."""
    session.add(
        AuditLog(
            school_id=staff.school_id if staff else None,
            staff_id=staff.id if staff else None,
            action=action,
            target=target,
            created_at=now or utcnow(),
        )
    )


async def flags_newest_first(session: AsyncSession) -> Sequence[Flag]:
    """All flags, newest first (for `leerbot flags list`)."""
    return (
        await session.scalars(select(Flag).order_by(Flag.created_at.desc(), Flag.id.desc()))
    ).all()


ERASED = "[gewist]"  # what is left where an erased pupil's own words were


def _pupil_linked() -> list[Any]:
    """Mapped classes with a pupil_id column (except Flag), children before parents."""
    order = {table: i for i, table in enumerate(Base.metadata.sorted_tables)}
    classes = [
        m.class_
        for m in Base.registry.mappers
        if "pupil_id" in m.local_table.c and m.class_ is not Flag
    ]
    return sorted(classes, key=lambda cls: order[cls.__table__], reverse=True)


async def erase_pupil_rows(session: AsyncSession, pupil: Pupil) -> None:
    """Erase a pupil (/vergeetmij, retention): every row tied to them goes, flags stay.

    The school must be able to account for its care, so a flag keeps its kind, dates, class,
    pseudonym and staff notes; the pupil's own words (evidence, contact question, transcript
    context) become "[gewist]". Staff notices about those flags that were already sent go
    (they may quote the pupil); pending ones still go out, as a crisis notice must.
    """
    flags = (await session.scalars(select(Flag).where(Flag.pupil_id == pupil.id))).all()
    for flag in flags:
        flag.pupil_id = None
        flag.context = {"lines": []}
        flag.evidence = {"items": [ERASED for _ in flag.evidence.get("items", [])]}
        if flag.about:
            flag.about = ERASED
    if flags:
        await session.execute(
            delete(Outbox).where(
                Outbox.flag_id.in_([f.id for f in flags]), Outbox.status != "pending"
            )
        )
    for cls in _pupil_linked():  # answer, transcript, run, outbox, reminder, and any new table
        await session.execute(delete(cls).where(cls.pupil_id == pupil.id))
    await session.delete(pupil)
    await session.flush()
