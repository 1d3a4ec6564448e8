"""Friendly reminders for unfinished assigned modules: at most one a day, on school days only.

Every reminder is a database row (pupil, module, next_at), so a restart loses none. A task
started with the bot looks every minute for rows that are due, lets the engine say the
reminder (it stays silent when the pupil is busy or asked for none) and schedules the next
allowed moment. The timing rules are one pure function, `next_reminder_at`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from store import reminders as rows
from store import repo
from store.models import Pupil

if TYPE_CHECKING:
    from bot.app import Runtime
    from leerbot.settings import Settings

log = logging.getLogger("leerbot.reminders")

INTERVAL = 60.0  # seconds between looks at the table
RETRY_AFTER = timedelta(hours=1)  # the pupil was busy (in a module, a crisis): try later
PRIORITY = 5  # the outbox sends replies to pupils (0) and staff notices first
SEARCH_DAYS = 400  # a school year of holidays at most
SCHEDULE_BATCH = 100  # new reminder rows per transaction (see schedule_new)


@dataclass(frozen=True)
class ReminderWindow:
    """When reminders may arrive: school days (Mon-Fri, no holidays) between two local times."""

    start: time = time(8, 30)
    end: time = time(17, 0)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Brussels"))
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> ReminderWindow:
        """The window from LEERBOT_REMINDER_START/_END, _TIMEZONE and _REMINDER_HOLIDAYS."""
        return cls(
            start=_clock_time(settings.reminder_start, "LEERBOT_REMINDER_START"),
            end=_clock_time(settings.reminder_end, "LEERBOT_REMINDER_END"),
            zone=ZoneInfo(settings.timezone),
            holidays=parse_holidays(settings.reminder_holidays),
        )

    def school_day(self, day: date) -> bool:
        """Monday to Friday, and not a holiday."""
        return day.weekday() < 5 and day not in self.holidays

    def allows(self, moment: datetime) -> bool:
        """True when a reminder may arrive at this moment."""
        local = moment.astimezone(self.zone)
        return self.school_day(local.date()) and self.start <= local.time() < self.end

    def local_day(self, moment: datetime) -> date:
        """The school's calendar day at this moment."""
        return moment.astimezone(self.zone).date()

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """Start and end of a local day, in UTC."""
        start = datetime.combine(day, time(0), tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)


def _clock_time(value: str, name: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(f"{name}: not a time like 08:30: {value!r}") from exc


def parse_holidays(values: list[str]) -> frozenset[date]:
    """Days from "YYYY-MM-DD" and "YYYY-MM-DD..YYYY-MM-DD" (both ends included)."""
    days: set[date] = set()
    for value in values:
        first, _, last = value.partition("..")
        try:
            start = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if last else start
        except ValueError as exc:
            raise ValueError(f"LEERBOT_REMINDER_HOLIDAYS: not a date or range: {value!r}") from exc
        if end < start:
            raise ValueError(f"LEERBOT_REMINDER_HOLIDAYS: range ends before it starts: {value!r}")
        days.update(start + timedelta(days=n) for n in range((end - start).days + 1))
    return frozenset(days)


def next_reminder_at(
    now: datetime, last_sent: datetime | None, window: ReminderWindow
) -> datetime:
    """The first moment from `now` on when a reminder may arrive (UTC).

    A school day, within the hours, and never on the local day of `last_sent`: one a day.
    """
    local = now.astimezone(window.zone)
    blocked = window.local_day(last_sent) if last_sent is not None else None
    day = local.date()
    for _ in range(SEARCH_DAYS):
        if window.school_day(day) and (blocked is None or day > blocked):
            opens = datetime.combine(day, window.start, tzinfo=window.zone)
            closes = datetime.combine(day, window.end, tzinfo=window.zone)
            if local < closes:
                return max(local, opens).astimezone(UTC)
        day += timedelta(days=1)
    raise ValueError("no school day for reminders in the coming year (check the holidays)")


async def schedule_new(runtime: Runtime, now: datetime, window: ReminderWindow) -> int:
    """Give every owed module a reminder row; the first comes a school day after the news.

    A class of hundreds that was just given a module owes hundreds: they are written
    SCHEDULE_BATCH at a time, each batch one statement in a short transaction of its own, so
    pupils' presses get the database in between (on SQLite the bot has one connection).
    """
    total = 0
    while True:
        async with runtime.sessions.begin() as session:
            owed = await rows.unscheduled(session, limit=SCHEDULE_BATCH)
            # Never on the day of the assignment notice itself: the pupil just heard of it.
            await rows.add_many(
                session,
                [
                    (
                        item.pupil_id,
                        item.module_id,
                        next_reminder_at(max(now, item.since), item.since, window),
                    )
                    for item in owed
                ],
            )
        total += len(owed)
        if len(owed) < SCHEDULE_BATCH:
            return total


async def send_due_reminders(runtime: Runtime, now: datetime) -> int:
    """Send what is due (each in its own transaction) and reschedule; returns how many went."""
    window = ReminderWindow.from_settings(runtime.settings)
    await schedule_new(runtime, now, window)
    async with runtime.sessions() as session:
        due = await rows.due_ids(session, now=now)
    sent = 0
    for reminder_id in due:
        async with runtime.sessions.begin() as session:
            if await _one(runtime, session, reminder_id, now, window):
                sent += 1
    if sent:
        runtime.conversation.on_commit()  # wake the sender
    return sent


async def _one(
    runtime: Runtime,
    session: AsyncSession,
    reminder_id: int,
    now: datetime,
    window: ReminderWindow,
) -> bool:
    """Handle one due row; True when a reminder was queued for the pupil."""
    row = await rows.claim(session, reminder_id, now=now)
    if row is None:
        return False
    pupil = await session.get(Pupil, row.pupil_id)
    run = await repo.latest_run(session, row.pupil_id, row.module_id)
    if (
        pupil is None
        or not pupil.active
        or (run is not None and run.status == "done")
        or not await rows.still_assigned(session, pupil, row.module_id)
    ):
        row.active = False  # finished, unassigned or gone: never again
        return False
    if not window.allows(now):
        # Due while the bot was down, and now out of hours: the next allowed moment.
        row.next_at = next_reminder_at(now, row.last_sent_at, window)
        return False
    today = window.local_day(now)
    start, end = window.day_bounds(today)
    if (
        pupil.reminders_off
        or pupil.blocked
        or await rows.sent_between(session, pupil.id, start=start, end=end)
    ):
        # Switched off, or another module's reminder went today: look again tomorrow.
        # Switching reminders back on needs no new row.
        row.next_at = next_reminder_at(end, row.last_sent_at, window)
        return False
    result = await runtime.conversation.system_in(
        session,
        pupil_id=pupil.id,
        command="reminder",
        data={"module": row.module_id, "day": today.isoformat()},
        priority=PRIORITY,
    )
    if result is None or not result.outbound:
        row.next_at = next_reminder_at(now + RETRY_AFTER, row.last_sent_at, window)
        return False
    row.last_sent_at = now
    row.next_at = next_reminder_at(now, now, window)
    return True


async def reminder_loop(runtime: Runtime, *, interval: float = INTERVAL) -> None:
    """Every minute: send due reminders. An error is logged and the loop goes on."""
    while True:
        try:
            count = await send_due_reminders(runtime, runtime.conversation.clock())
            if count:
                log.info("sent %d reminders", count)
        except Exception:
            log.exception("reminder round failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)


def install_reminders(runtime: Runtime, _app: Any = None) -> asyncio.Task[None]:
    """Start the reminder task with the bot (stopped with the other runtime tasks)."""
    ReminderWindow.from_settings(runtime.settings)  # a bad setting stops start-up, not later
    task = asyncio.create_task(reminder_loop(runtime), name="leerbot-reminders")
    runtime.tasks.append(task)
    return task
