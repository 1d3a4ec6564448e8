"""Reminders: one a day at most, on school days within school hours, stored so none is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from bot.app import Runtime, build_runtime
from bot.reminders import (
    ReminderWindow,
    next_reminder_at,
    parse_holidays,
    schedule_new,
    send_due_reminders,
)
from flows.types import PupilState, RunState
from leerbot.settings import Settings
from store import reminders as reminder_store
from store import repo
from store.models import Outbox, Pupil, Reminder, Run

BRUSSELS = ZoneInfo("Europe/Brussels")
WINDOW = ReminderWindow()  # 08:30-17:00, Europe/Brussels, no holidays


def local(day: str, clock: str) -> datetime:
    """A moment in Brussels (2026-03-10 is a Tuesday)."""
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=BRUSSELS)


# ---------------------------------------------------------------- the timing rule


@pytest.mark.parametrize(
    ("now", "last", "expected"),
    [
        (local("2026-03-10", "10:00"), None, local("2026-03-10", "10:00")),  # in hours: now
        (local("2026-03-10", "07:00"), None, local("2026-03-10", "08:30")),  # early: at opening
        (local("2026-03-10", "16:59"), None, local("2026-03-10", "16:59")),
        (local("2026-03-10", "17:00"), None, local("2026-03-11", "08:30")),  # evening: tomorrow
        (local("2026-03-10", "22:30"), None, local("2026-03-11", "08:30")),
        (local("2026-03-13", "18:00"), None, local("2026-03-16", "08:30")),  # Friday evening
        (local("2026-03-14", "12:00"), None, local("2026-03-16", "08:30")),  # Saturday
        (local("2026-03-15", "09:00"), None, local("2026-03-16", "08:30")),  # Sunday
        (
            local("2026-03-10", "10:00"),
            local("2026-03-10", "09:00"),
            local("2026-03-11", "08:30"),
        ),  # same day twice: never
        (
            local("2026-03-10", "10:00"),
            local("2026-03-09", "16:00"),
            local("2026-03-10", "10:00"),
        ),  # yesterday's does not block today
        (
            local("2026-03-13", "09:00"),
            local("2026-03-13", "08:30"),
            local("2026-03-16", "08:30"),
        ),  # Friday's sent: Monday next
    ],
)
def test_next_reminder_at(now: datetime, last: datetime | None, expected: datetime) -> None:
    got = next_reminder_at(now.astimezone(UTC), last, WINDOW)
    assert got == expected.astimezone(UTC)
    assert got.tzinfo is UTC


def test_reminders_skip_holidays_and_follow_summer_time() -> None:
    window = ReminderWindow(holidays=parse_holidays(["2026-03-30..2026-04-10", "2026-04-13"]))
    got = next_reminder_at(local("2026-03-27", "18:00"), None, window)
    # Easter holidays and Easter Monday off; on 14 April Brussels is on summer time (UTC+2).
    assert got == datetime(2026, 4, 14, 6, 30, tzinfo=UTC)


def test_hours_come_from_the_settings() -> None:
    settings = Settings(
        reminder_start="13:00",
        reminder_end="15:30",
        timezone="Europe/Brussels",
        reminder_holidays=["2026-03-11"],
    )
    window = ReminderWindow.from_settings(settings)
    assert next_reminder_at(local("2026-03-10", "15:30"), None, window) == local(
        "2026-03-12", "13:00"
    ).astimezone(UTC)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reminder_start", "half negen", "LEERBOT_REMINDER_START: not a time like 08:30"),
        ("reminder_holidays", ["2026-13-01"], "LEERBOT_REMINDER_HOLIDAYS: not a date or range"),
        ("reminder_holidays", ["2026-04-10..2026-04-01"], "range ends before it starts"),
    ],
)
def test_a_bad_reminder_setting_names_the_variable(
    field: str, value: object, message: str
) -> None:
    settings = Settings(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        ReminderWindow.from_settings(settings)


# ---------------------------------------------------------------- against a real database


TUESDAY_MORNING = local("2026-03-10", "09:00").astimezone(UTC)


@pytest.fixture
async def runtime(database_url: str) -> AsyncIterator[Runtime]:
    rt = build_runtime(Settings(database_url=database_url))
    yield rt
    await rt.engine.dispose()


async def seed(
    runtime: Runtime, *modules: str, mode: str = "menu", at: datetime = TUESDAY_MORNING
) -> int:
    """A consenting pupil in class 5A, with `modules` assigned at `at`; returns the pupil id."""
    async with runtime.sessions.begin() as session:
        school = await repo.add_school(session, name="VTI")
        klass = await repo.add_class(session, school=school, name="5A", teacher=None)
        for module in modules:
            assignment, _ = await repo.assign(session, klass=klass, module_id=module, due=None)
            assignment.created_at = at
        pupil = await repo.create_pupil(
            session, telegram_user_id=5001, chat_id=5001, first_name="Noor"
        )
        pupil.class_id = klass.id
        pupil.consent_at = at - timedelta(days=30)
        state = PupilState(mode=mode, age_band="13plus")  # type: ignore[arg-type]
        if mode == "module":
            state.run = RunState(module=modules[0], version="x", step="school")
        pupil.state = state.stored()
        return pupil.id


async def reminder_texts(runtime: Runtime) -> list[tuple[str, int]]:
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(Outbox).order_by(Outbox.id))).all()
    return [(str(r.payload.get("text")), r.priority) for r in rows]


async def reminder_rows(runtime: Runtime) -> list[Reminder]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(Reminder).order_by(Reminder.id))).all())


REMINDER = 'Hoi! Je opdracht "Terugblik" wacht nog op jou. Het duurt maar een paar minuten.'


async def test_first_reminder_comes_the_next_school_day_then_daily(runtime: Runtime) -> None:
    await seed(runtime, "terugblik")
    assert await send_due_reminders(runtime, TUESDAY_MORNING + timedelta(hours=1)) == 0
    [row] = await reminder_rows(runtime)
    assert row.next_at == local("2026-03-11", "08:30").astimezone(UTC)

    wednesday = local("2026-03-11", "08:31").astimezone(UTC)
    assert await send_due_reminders(runtime, wednesday) == 1
    assert await reminder_texts(runtime) == [(REMINDER, 5)]
    assert await send_due_reminders(runtime, local("2026-03-11", "16:00").astimezone(UTC)) == 0
    [row] = await reminder_rows(runtime)
    assert row.last_sent_at == wednesday
    assert row.next_at == local("2026-03-12", "08:30").astimezone(UTC)


async def test_a_restart_loses_no_reminder(runtime: Runtime, database_url: str) -> None:
    await seed(runtime, "terugblik")
    await send_due_reminders(runtime, TUESDAY_MORNING)
    await runtime.engine.dispose()
    restarted = build_runtime(Settings(database_url=database_url))
    try:
        # The process was down all Wednesday; it comes back on Thursday at 10.
        assert await send_due_reminders(restarted, local("2026-03-12", "10:00")) == 1
        assert await reminder_texts(restarted) == [(REMINDER, 5)]
    finally:
        await restarted.engine.dispose()


async def test_nothing_at_the_weekend_or_in_the_evening(runtime: Runtime) -> None:
    await seed(runtime, "terugblik", at=local("2026-03-13", "10:00").astimezone(UTC))  # Friday
    await send_due_reminders(runtime, local("2026-03-13", "10:00").astimezone(UTC))
    for day, clock in (
        ("2026-03-13", "19:00"),
        ("2026-03-14", "10:00"),
        ("2026-03-15", "10:00"),
        ("2026-03-16", "07:00"),
    ):
        assert await send_due_reminders(runtime, local(day, clock).astimezone(UTC)) == 0
    assert await send_due_reminders(runtime, local("2026-03-16", "08:30").astimezone(UTC)) == 1


async def test_a_row_due_while_the_bot_was_down_waits_for_school_hours(runtime: Runtime) -> None:
    await seed(runtime, "terugblik")
    await send_due_reminders(runtime, TUESDAY_MORNING)
    assert await send_due_reminders(runtime, local("2026-03-11", "18:00").astimezone(UTC)) == 0
    [row] = await reminder_rows(runtime)
    assert row.next_at == local("2026-03-12", "08:30").astimezone(UTC)


async def test_one_reminder_a_day_even_with_two_open_modules(runtime: Runtime) -> None:
    await seed(runtime, "terugblik", "mijn-stage")
    await send_due_reminders(runtime, TUESDAY_MORNING)
    assert await send_due_reminders(runtime, local("2026-03-11", "09:00").astimezone(UTC)) == 1
    assert len(await reminder_texts(runtime)) == 1
    assert await send_due_reminders(runtime, local("2026-03-12", "09:00").astimezone(UTC)) == 1


async def test_never_after_finishing(runtime: Runtime) -> None:
    pupil_id = await seed(runtime, "terugblik")
    await send_due_reminders(runtime, TUESDAY_MORNING)
    async with runtime.sessions.begin() as session:
        session.add(Run(pupil_id=pupil_id, module_id="terugblik", version="x", status="done"))
    assert await send_due_reminders(runtime, local("2026-03-11", "09:00").astimezone(UTC)) == 0
    [row] = await reminder_rows(runtime)
    assert row.active is False
    assert await reminder_texts(runtime) == []


async def test_never_when_reminders_are_off_but_back_when_on_again(runtime: Runtime) -> None:
    pupil_id = await seed(runtime, "terugblik")
    await send_due_reminders(runtime, TUESDAY_MORNING)
    async with runtime.sessions.begin() as session:
        pupil = await session.get(Pupil, pupil_id)
        assert pupil is not None
        pupil.reminders_off = True
    assert await send_due_reminders(runtime, local("2026-03-11", "09:00").astimezone(UTC)) == 0
    async with runtime.sessions.begin() as session:
        pupil = await session.get(Pupil, pupil_id)
        assert pupil is not None
        pupil.reminders_off = False
    assert await send_due_reminders(runtime, local("2026-03-12", "09:00").astimezone(UTC)) == 1


async def test_a_pupil_busy_in_a_module_is_asked_again_an_hour_later(runtime: Runtime) -> None:
    await seed(runtime, "terugblik", mode="module")
    await send_due_reminders(runtime, TUESDAY_MORNING)
    wednesday = local("2026-03-11", "09:00").astimezone(UTC)
    assert await send_due_reminders(runtime, wednesday) == 0
    [row] = await reminder_rows(runtime)
    assert row.next_at == wednesday + timedelta(hours=1)
    assert row.last_sent_at is None


# ---------------------------------------------------------------- a whole class at once


async def seed_class(runtime: Runtime, pupils: int) -> None:
    """`pupils` consenting pupils in class 5A, "terugblik" assigned on Tuesday morning."""
    async with runtime.sessions.begin() as session:
        school = await repo.add_school(session, name="VTI")
        klass = await repo.add_class(session, school=school, name="5A", teacher=None)
        assignment, _ = await repo.assign(session, klass=klass, module_id="terugblik", due=None)
        assignment.created_at = TUESDAY_MORNING
        for n in range(pupils):
            pupil = await repo.create_pupil(
                session, telegram_user_id=7000 + n, chat_id=7000 + n, first_name="Noor"
            )
            pupil.class_id = klass.id
            pupil.consent_at = TUESDAY_MORNING - timedelta(days=30)


async def test_a_big_class_is_scheduled_in_short_transactions(runtime: Runtime) -> None:
    # A module given to 250 pupils: their reminder rows are written a batch per short
    # transaction, one statement each, so pupils' presses get the database in between.
    await seed_class(runtime, 250)
    statements: list[str] = []
    commits: list[int] = []

    def seen(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO REMINDER"):
            statements.append(sql)

    def committed(_conn: object) -> None:
        commits.append(len(statements))

    sync_engine = runtime.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", seen)
    event.listen(sync_engine, "commit", committed)
    try:
        assert await schedule_new(runtime, TUESDAY_MORNING, WINDOW) == 250
    finally:
        event.remove(sync_engine, "before_cursor_execute", seen)
        event.remove(sync_engine, "commit", committed)
    assert commits == [1, 2, 3]  # 100 + 100 + 50 rows, each batch one INSERT and its commit
    rows = await reminder_rows(runtime)
    assert len(rows) == 250
    assert {row.next_at for row in rows} == {local("2026-03-11", "08:30").astimezone(UTC)}
    assert await schedule_new(runtime, TUESDAY_MORNING, WINDOW) == 0  # nothing owed any more


async def test_a_row_another_worker_added_is_kept(runtime: Runtime) -> None:
    pupil_id = await seed(runtime, "terugblik")
    first = local("2026-03-11", "08:30").astimezone(UTC)
    async with runtime.sessions.begin() as session:
        await reminder_store.add_many(session, [(pupil_id, "terugblik", first)])
    async with runtime.sessions.begin() as session:  # a second worker, a moment too late
        await reminder_store.add_many(session, [(pupil_id, "terugblik", first + timedelta(1))])
    [row] = await reminder_rows(runtime)
    assert row.next_at == first
