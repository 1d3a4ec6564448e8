"""Staff ↔ pupil on a flag: who may see it, acknowledge, reply through the bot, close.

The dashboard and the staff Telegram chat both call these. None of them commits: the caller
owns the transaction, so the flag change, the audit row and the pupil's message (an outbox
row) are written together or not at all.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation import Conversation
from bot.flags import raise_flag
from content.loader import Catalog, Texts, load_texts
from flows.types import FlagRaised, PupilState
from store import repo
from store.models import Flag, FlagEvent, Pupil, SchoolClass, Staff, TranscriptLine

log = logging.getLogger("leerbot.relay")

MAX_REPLY = 2000
SEES_ALL = frozenset({"counsellor", "admin"})


class RelayError(Exception):
    """A refused staff action; str(exc) is one short Dutch line for the staff member."""


class FlagNotFound(RelayError):
    """No such flag for this staff member (other school, or a role that may not see it)."""


@functools.cache
def _texts() -> Texts:
    # Loaded once per process; install_safety warms it at start-up so no request reads YAML.
    return load_texts()


def t(key: str, **values: object) -> str:
    """A staff-facing text (content/texts/staff.yaml)."""
    return _texts().get(key, "nl", **values)


def first_name(staff: Staff) -> str:
    """How the pupil sees a staff member: the first name only."""
    return staff.name.split()[0] if staff.name.strip() else staff.name


# ---------------------------------------------------------------- access


async def may_see(session: AsyncSession, staff: Staff, flag: Flag) -> bool:
    """Counsellors and admins see their school's flags; a teacher only contact requests to them.

    Teachers never see other flags (content-brief §5): school staff cannot keep things from
    the direction, so care signals stay with the counsellor role.
    """
    if not staff.active or flag.school_id is None or flag.school_id != staff.school_id:
        return False
    if staff.role in SEES_ALL:
        return True
    if staff.role != "teacher" or flag.kind != "contactvraag" or flag.target != "leerkracht":
        return False
    klass = await session.get(SchoolClass, flag.class_id) if flag.class_id else None
    return klass is not None and klass.teacher_id == staff.id


async def _flag(session: AsyncSession, flag_id: int, staff: Staff, *, lock: bool = False) -> Flag:
    flag = await session.get(Flag, flag_id, with_for_update=lock or None)
    if flag is None or not await may_see(session, staff, flag):
        raise FlagNotFound(t("relay.not_found"))
    return flag


async def _audit(
    session: AsyncSession, staff: Staff, action: str, flag: Flag, now: datetime
) -> None:
    await repo.audit(session, staff=staff, action=action, target=f"flag:{flag.id}", now=now)


async def flag_for_staff(
    session: AsyncSession, *, flag_id: int, staff: Staff, now: datetime
) -> Flag:
    """The flag if this staff member may see it (FlagNotFound otherwise); audits the read."""
    flag = await _flag(session, flag_id, staff)
    await _audit(session, staff, "flag.view", flag, now)
    return flag


# ---------------------------------------------------------------- actions


async def acknowledge(session: AsyncSession, *, flag_id: int, staff: Staff, now: datetime) -> Flag:
    """ "Ik neem dit op": the flag is seen; acknowledging again changes nothing."""
    flag = await _flag(session, flag_id, staff, lock=True)
    await _audit(session, staff, "flag.acknowledge", flag, now)
    if flag.state == "closed":
        raise RelayError(t("relay.already_closed"))
    if flag.state == "open":
        flag.state = "acknowledged"
        flag.acknowledged_at = now
        flag.assigned_staff_id = flag.assigned_staff_id or staff.id
        flag.updated_at = now
        await repo.add_flag_event(
            session, flag=flag, action="acknowledged", staff_id=staff.id, now=now
        )
    return flag


def _conversation(catalog: Catalog, secret: bytes, now: datetime) -> Conversation:
    # Only `system_in` is used, inside the caller's session; the session factory stays unused.
    return Conversation(
        sessions=async_sessionmaker(), catalog=catalog, secret=secret, clock=lambda: now
    )


async def _pupil(session: AsyncSession, flag: Flag) -> Pupil:
    pupil = await session.get(Pupil, flag.pupil_id) if flag.pupil_id else None
    if pupil is None or not pupil.active:
        raise RelayError(t("relay.pupil_gone"))
    return pupil


async def reply(
    session: AsyncSession,
    *,
    flag_id: int,
    staff: Staff,
    text: str,
    now: datetime,
    catalog: Catalog,
    secret: bytes,
) -> Flag:
    """Send the pupil a message; the first reply opens the conversation (in_conversation)."""
    text = text.strip()
    if not text:
        raise RelayError(t("relay.empty_reply"))
    if len(text) > MAX_REPLY:
        raise RelayError(t("relay.too_long", n=MAX_REPLY))
    flag = await _flag(session, flag_id, staff, lock=True)
    await _audit(session, staff, "flag.reply", flag, now)
    if flag.state == "closed":
        raise RelayError(t("relay.closed"))
    pupil = await _pupil(session, flag)
    state = PupilState.load(pupil.state)
    handover = state.handover
    opening = not (
        state.mode == "handover"
        and handover is not None
        and handover.flag_id == flag.id
        and flag.assigned_staff_id == staff.id
    )
    conversation = _conversation(catalog, secret, now)
    if opening:
        # (Re)open: a new conversation, another staff member taking over, or a pupil who
        # went back to the menu; from now on their messages go to this staff member.
        await conversation.system_in(
            session,
            pupil_id=pupil.id,
            command="handover_open",
            data={"flag_id": flag.id, "staff_name": first_name(staff), "role": staff.role},
            flag_id=flag.id,
        )
    result = await conversation.system_in(
        session,
        pupil_id=pupil.id,
        command="handover_message",
        data={"text": text, "first": opening},
        priority=0,
        flag_id=flag.id,
    )
    if result is not None and result.outbound:
        await _mark_staff_line(session, pupil.id, result.outbound[0].text)
    if flag.state != "in_conversation":
        flag.state = "in_conversation"
        flag.acknowledged_at = flag.acknowledged_at or now
    flag.assigned_staff_id = staff.id
    flag.updated_at = now
    await repo.add_flag_event(
        session, flag=flag, action="replied", staff_id=staff.id, note=text, now=now
    )
    return flag


async def _mark_staff_line(session: AsyncSession, pupil_id: int, text: str) -> None:
    """The conversation writes every message as "out"; this one a person wrote."""
    stmt = (
        select(TranscriptLine)
        .where(
            TranscriptLine.pupil_id == pupil_id,
            TranscriptLine.direction == "out",
            TranscriptLine.text == text[:4096],
        )
        .order_by(TranscriptLine.id.desc())
        .limit(1)
    )
    line = (await session.scalars(stmt)).first()
    if line is not None:
        line.direction = "staff"


async def close(
    session: AsyncSession,
    *,
    flag_id: int,
    staff: Staff,
    note: str,
    now: datetime,
    catalog: Catalog,
    secret: bytes,
) -> Flag:
    """Close the flag with a note; a pupil in this conversation goes back to the menu."""
    note = note.strip()
    if not note:
        raise RelayError(t("relay.empty_note"))
    flag = await _flag(session, flag_id, staff, lock=True)
    await _audit(session, staff, "flag.close", flag, now)
    if flag.state == "closed":
        raise RelayError(t("relay.already_closed"))
    flag.state = "closed"
    flag.closed_at = now
    flag.close_note = note
    flag.assigned_staff_id = flag.assigned_staff_id or staff.id
    flag.updated_at = now
    await repo.add_flag_event(
        session, flag=flag, action="closed", staff_id=staff.id, note=note, now=now
    )
    pupil = await session.get(Pupil, flag.pupil_id) if flag.pupil_id else None
    if pupil is not None and pupil.active:
        state = PupilState.load(pupil.state)
        if state.handover is not None and state.handover.flag_id == flag.id:
            await _conversation(catalog, secret, now).system_in(
                session, pupil_id=pupil.id, command="handover_close", data={}, flag_id=flag.id
            )
    return flag


async def open_contact_flag(
    session: AsyncSession, *, pupil_id: int, staff: Staff, reason: str, now: datetime
) -> Flag:
    """A staff member asks the counsellors to contact a pupil of their school."""
    pupil = await session.get(Pupil, pupil_id)
    klass = await session.get(SchoolClass, pupil.class_id) if pupil and pupil.class_id else None
    if (
        pupil is None
        or not pupil.active
        or klass is None
        or not staff.active
        or klass.school_id != staff.school_id
    ):
        raise FlagNotFound(t("relay.pupil_not_found"))
    event = FlagRaised(
        level="contactvraag", reason=reason.strip()[:60] or "contact", target="begeleider"
    )
    flag, _new = await raise_flag(session, pupil, event, now, staff=staff)
    await _audit(session, staff, "flag.contact", flag, now)
    # The bot process notifies the counsellors (it holds the Telegram settings): it picks up
    # every flag without `notified_at` within seconds.
    return flag


# ---------------------------------------------------------------- the conversation


async def handover_started(session: AsyncSession, flag: Flag) -> datetime | None:
    """When staff first wrote to the pupil on this flag (None: no conversation yet)."""
    started: datetime | None = await session.scalar(
        select(func.min(FlagEvent.created_at)).where(
            FlagEvent.flag_id == flag.id, FlagEvent.action == "replied"
        )
    )
    return started


async def pupil_messages(
    session: AsyncSession, *, flag: Flag, limit: int = 50
) -> list[dict[str, Any]]:
    """The conversation since the handover started, oldest first (dir: in | staff | out).

    Only lines from the handover to the close: what the pupil did with the bot before or
    after is not part of this flag (the context holds the lines around the signal).
    """
    if flag.pupil_id is None:
        return []
    started = await handover_started(session, flag)
    if started is None:
        return []
    stmt = select(TranscriptLine).where(
        TranscriptLine.pupil_id == flag.pupil_id,
        TranscriptLine.created_at >= started,
        TranscriptLine.private.is_(False),
    )
    if flag.closed_at is not None:
        stmt = stmt.where(TranscriptLine.created_at <= flag.closed_at)
    lines = (await session.scalars(stmt.order_by(TranscriptLine.id.desc()).limit(limit))).all()
    return [
        {"at": line.created_at.isoformat(), "dir": line.direction, "text": line.text}
        for line in reversed(lines)
    ]


async def forward_to_staff(
    session: AsyncSession,
    *,
    pupil: Pupil,
    flag_id: int,
    text: str,
    now: datetime,
    alert: bool = False,
) -> bool:
    """A pupil's message in an open conversation → the staff member's Telegram chat.

    This is the one place pupil text goes to staff Telegram: the staff member is in this
    conversation with the pupil. False when nobody linked is there to receive it (the
    dashboard still shows it from the transcript).
    """
    flag = await session.get(Flag, flag_id)
    if flag is None or flag.state == "closed" or flag.pupil_id != pupil.id:
        return False
    flag.updated_at = now
    await repo.add_flag_event(session, flag=flag, action="pupil_message", staff_id=None, now=now)
    staff = await session.get(Staff, flag.assigned_staff_id) if flag.assigned_staff_id else None
    if staff is None or not staff.active or staff.telegram_user_id is None:
        return False
    key = "notify.pupil_message_alert" if alert else "notify.pupil_message"
    body = t(key, id=flag.id, pupil=pupil.pseudonym, text=text)
    await repo.enqueue(
        session,
        chat_id=staff.telegram_user_id,
        method="sendMessage",
        payload={"chat_id": staff.telegram_user_id, "text": body[:4096]},
        priority=1,
        staff_id=staff.id,
        now=now,
    )
    return True
