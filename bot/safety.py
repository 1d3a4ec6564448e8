"""The safety net around flags: staff notifications on Telegram, escalation, pupil → staff relay.

Crisis detection itself runs in the engine (nlu.safety, in process). This module makes sure
a flag reaches a person: the school's counsellors (or the class teacher for a contact request
to them) get a Telegram message in the same transaction as the flag, and a crisis nobody
acknowledges within `settings.escalation_minutes` goes to them again and to the admins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import relay
from bot.callbacks import sign
from bot.flags import FlagHook, Outcome
from bot.staff import StaffCommands
from flows.types import Event, FlagRaised, PupilState, PupilToStaff
from leerbot.settings import Settings
from store import repo
from store.db import Sessions
from store.models import Flag, FlagEvent, Pupil, SchoolClass, Staff

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.app import Runtime
    from bot.conversation import Conversation

log = logging.getLogger("leerbot.safety")

NOTIFY_KINDS = ("crisis", "zorg", "contactvraag")  # aandacht (dropout risk) waits in the queue
ACK_PREFIX = "fa:"  # callback payload of "Ik neem dit op": fa:<flag id>
PRIORITY_URGENT = 1  # after the pupil's own replies (0), before everything else
PRIORITY_STAFF = 3


def flag_url(settings: Settings, flag_id: int) -> str:
    """The dashboard page of a flag, for notifications."""
    return f"{settings.dashboard_url}/meldingen/{flag_id}"


class SafetyNet:
    """Notifies staff about flags and escalates crises nobody picked up."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: Sessions,
        secret: bytes,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.secret = secret
        self.wake = wake
        self.clock = clock
        self.skip_locked = settings.database_url.startswith("postgresql")

    @property
    def escalation_after(self) -> timedelta:
        """How long a crisis may stay unacknowledged."""
        return timedelta(minutes=self.settings.escalation_minutes)

    @property
    def interval(self) -> float:
        """Seconds between two looks at the flags (a quarter of the escalation time, ≤ 5 s)."""
        return min(5.0, max(0.2, self.escalation_after.total_seconds() / 4))

    # ------------------------------------------------------------ recipients and messages

    async def recipients(
        self, session: AsyncSession, flag: Flag, *, admins: bool = False
    ) -> list[Staff]:
        """Who hears about this flag: the class teacher for a request to them, else counsellors.

        A school without counsellor accounts falls back to its admins: a signal must always
        reach a person (content-brief §0).
        """
        if flag.school_id is None:
            return []
        if flag.kind == "contactvraag" and flag.target == "leerkracht" and flag.class_id:
            klass = await session.get(SchoolClass, flag.class_id)
            teacher = (
                await session.get(Staff, klass.teacher_id) if klass and klass.teacher_id else None
            )
            if teacher is not None and teacher.active:
                return [teacher]
        staff = (
            await session.scalars(
                select(Staff)
                .where(
                    Staff.school_id == flag.school_id,
                    Staff.active,
                    Staff.role.in_(("counsellor", "admin")),
                )
                .order_by(Staff.id)
            )
        ).all()
        counsellors = [s for s in staff if s.role == "counsellor"]
        if admins or not counsellors:
            return list(staff)
        return counsellors

    async def _class_name(self, session: AsyncSession, flag: Flag) -> str:
        klass = await session.get(SchoolClass, flag.class_id) if flag.class_id else None
        return klass.name if klass else relay.t("notify.no_class")

    async def _text(self, session: AsyncSession, flag: Flag, key: str) -> str:
        values: dict[str, Any] = {
            "id": flag.id,
            "class_name": await self._class_name(session, flag),
            "url": flag_url(self.settings, flag.id),
            "minutes": f"{self.settings.escalation_minutes:g}",
        }
        if flag.kind == "contactvraag":
            values["target"] = relay.t(f"notify.target_{flag.target or 'begeleider'}")
            opener = await self._opener(session, flag)
            if opener is not None:
                key, values["name"] = "notify.contactvraag_staff", opener.name
        return relay.t(key, **values)

    async def _opener(self, session: AsyncSession, flag: Flag) -> Staff | None:
        """The staff member who asked for this contact request, if it was not the pupil."""
        staff_id = await session.scalar(
            select(FlagEvent.staff_id)
            .where(FlagEvent.flag_id == flag.id, FlagEvent.action == "contact_opened")
            .limit(1)
        )
        return await session.get(Staff, staff_id) if staff_id else None

    def _key(self, flag: Flag) -> str:
        if flag.kind == "contactvraag" and flag.urgent:
            return "notify.contactvraag_urgent"
        return f"notify.{flag.kind}"

    async def notify(
        self, session: AsyncSession, flag: Flag, now: datetime, *, escalated: bool = False
    ) -> int:
        """Queue a notification to every linked recipient; returns how many were queued.

        Never any pupil text: kind, urgency, class and the link. Staff without a linked
        Telegram account get nothing here; the flag stands in the dashboard queue.
        """
        key = "notify.escalated" if escalated else self._key(flag)
        text = await self._text(session, flag, key)
        urgent = escalated or flag.kind == "crisis" or flag.urgent
        priority = PRIORITY_URGENT if urgent else PRIORITY_STAFF
        queued = 0
        for staff in await self.recipients(session, flag, admins=escalated):
            if staff.telegram_user_id is None:
                log.info(
                    "flag %s: %s %s has no linked Telegram, not notified",
                    flag.id,
                    staff.role,
                    staff.id,
                )
                continue
            chat_id = staff.telegram_user_id
            button = {
                "text": relay.t("notify.ack_button"),
                "callback_data": sign(self.secret, chat_id, f"{ACK_PREFIX}{flag.id}"),
            }
            payload = {
                "chat_id": chat_id,
                "text": text,
                "link_preview_options": {"is_disabled": True},
                "reply_markup": {"inline_keyboard": [[button]]},
            }
            await repo.enqueue(
                session,
                chat_id=chat_id,
                method="sendMessage",
                payload=payload,
                priority=priority,
                staff_id=staff.id,
                now=now,
            )
            queued += 1
        if urgent and queued == 0:
            # The flag stands in the dashboard queue, but nobody hears about it on Telegram.
            log.warning(
                "flag %s (%s): no staff member with a linked Telegram account to tell",
                flag.id,
                flag.kind,
            )
        flag.notified_at = now
        return queued

    # ------------------------------------------------------------ conversation hooks

    async def on_flag(
        self,
        session: AsyncSession,
        pupil: Pupil,
        flag: Flag,
        event: FlagRaised,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        """A flag was raised by the pupil's event: notify, in the pupil's own transaction."""
        if flag.kind in NOTIFY_KINDS and outcome in {Outcome.NEW, Outcome.URGENT}:
            await self.notify(session, flag, now)
        state = PupilState.load(pupil.state)
        if state.mode == "handover" and state.handover is not None and event.level == "crisis":
            # The crisis reply replaces the usual forward (the engine stops there), yet the
            # staff member in this conversation must see what the pupil wrote.
            text = await _last_pupil_line(session, pupil.id)
            if text:
                await relay.forward_to_staff(
                    session,
                    pupil=pupil,
                    flag_id=state.handover.flag_id,
                    text=text,
                    now=now,
                    alert=True,
                )

    async def on_event(
        self, session: AsyncSession, pupil: Pupil, event: Event, now: datetime
    ) -> None:
        """Conversation hook: a pupil's message in a handover goes to the staff member."""
        if not isinstance(event, PupilToStaff):
            return
        state = PupilState.load(pupil.state)
        if state.handover is None:
            return
        await relay.forward_to_staff(
            session, pupil=pupil, flag_id=state.handover.flag_id, text=event.text, now=now
        )

    # ------------------------------------------------------------ periodic work

    async def tick(self) -> tuple[int, int]:
        """One look at the flags: notify what nobody was told yet, escalate overdue crises."""
        now = self.clock()
        async with self.sessions.begin() as session:
            notified = await self._pending(session, now)
            escalated = await self._escalate(session, now)
        if notified or escalated:
            self.wake()
        return notified, escalated

    def _locked(self, stmt: Any) -> Any:
        # Several bot workers may run this loop: each flag is claimed by one of them.
        return stmt.with_for_update(skip_locked=True) if self.skip_locked else stmt

    async def _pending(self, session: AsyncSession, now: datetime) -> int:
        """Flags raised outside the bot (the dashboard's "contact opnemen") get notified here."""
        stmt = (
            select(Flag)
            .where(Flag.notified_at.is_(None), Flag.kind.in_(NOTIFY_KINDS), Flag.state != "closed")
            .order_by(Flag.id)
            .limit(100)
        )
        flags = (await session.scalars(self._locked(stmt))).all()
        for flag in flags:
            await self.notify(session, flag, now)
        return len(flags)

    async def _escalate(self, session: AsyncSession, now: datetime) -> int:
        """Crises still open after the escalation time: counsellors again, and the admins."""
        stmt = (
            select(Flag)
            .where(
                Flag.kind == "crisis",
                Flag.state == "open",
                Flag.escalated_at.is_(None),
                Flag.created_at <= now - self.escalation_after,
            )
            .order_by(Flag.id)
            .limit(100)
        )
        flags = (await session.scalars(self._locked(stmt))).all()
        for flag in flags:
            flag.escalated_at = now
            flag.updated_at = now
            count = await self.notify(session, flag, now, escalated=True)
            await repo.add_flag_event(
                session, flag=flag, action="escalated", staff_id=None, note=f"{count}", now=now
            )
            log.warning(
                "flag %s: no acknowledgement after %s; escalated to %s staff chats",
                flag.id,
                self.escalation_after,
                count,
            )
        return len(flags)

    async def run(self) -> None:
        """Tick until cancelled; an error is logged and the loop goes on."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("safety tick failed; trying again")
            await asyncio.sleep(self.interval)


async def _last_pupil_line(session: AsyncSession, pupil_id: int) -> str:
    for line in reversed(await repo.recent_transcript(session, pupil_id, limit=5)):
        if line.direction == "in":
            return line.text
    return ""


def attach(conversation: Conversation, net: SafetyNet) -> None:
    """Hook flags, notifications and the relay into a conversation service.

    Notifications ride on the flag hook; the relay hook comes after it.

    The flag hook is replaced by one of this runtime's own, so a second runtime in the same
    process (tests) never notifies with the first one's settings.
    """
    hooks = conversation.event_hooks
    hook = FlagHook([net.on_flag])
    index = next((i for i, h in enumerate(hooks) if isinstance(h, FlagHook)), None)
    if index is None:
        hooks.append(hook)
    else:
        hooks[index] = hook
    hooks.append(net.on_event)


async def install_safety(runtime: Runtime, app: Application) -> SafetyNet:  # type: ignore[type-arg]  # PTB generics
    """Flags, notifications, escalation and the staff commands for one bot process."""
    del app  # same signature as the other install_* functions; Telegram goes via the outbox
    relay.t("relay.not_found")  # load the staff texts now, not during a request
    conversation = runtime.conversation
    net = SafetyNet(
        settings=runtime.settings,
        sessions=runtime.sessions,
        secret=runtime.settings.secret,
        wake=lambda: conversation.on_commit(),
        clock=lambda: conversation.clock(),
    )
    attach(conversation, net)
    runtime.extras["safety"] = net
    runtime.extras["staff_commands"] = StaffCommands(runtime)
    runtime.tasks.append(asyncio.create_task(net.run(), name="leerbot-safety"))
    return net
