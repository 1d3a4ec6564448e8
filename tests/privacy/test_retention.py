"""Retention: old transcripts, answers and inactive pupils go; the school year sets the default."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from flows.types import PupilState
from leerbot.retention import retention_cutoff, retention_loop, run_retention
from store.models import Answer, Flag, Outbox, ProcessedUpdate, Pupil, Run, TranscriptLine
from tests.privacy.conftest import answer_first_steps
from tests.support.ptb import BotRig

BRUSSELS = ZoneInfo("Europe/Brussels")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LONG_AGO = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)  # school year 2024-25: gone after 31/8/2026
EXAMPLE_OLD = "Vorig jaar bouwde ik een kast Ottokar"
EXAMPLE_NEW = "Dit jaar hielp ik in de bakkerij Philomena"


# Naive local times: hypothesis attaches no zone; the test puts them in Brussels.
NAIVE_START = datetime(2020, 1, 1)  # noqa: DTZ001
NAIVE_END = datetime(2030, 1, 1)  # noqa: DTZ001


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BRUSSELS)


def test_default_cutoff_is_one_year_after_the_school_year() -> None:
    cases = {
        local(2026, 11, 25): local(2025, 9, 1, 0),  # 2024-25 data went on 1/9/2026
        local(2026, 8, 31, 23, 30): local(2024, 9, 1, 0),  # 2024-25 still kept that day
        local(2026, 9, 1, 0, 30): local(2025, 9, 1, 0),
        local(2027, 1, 15): local(2025, 9, 1, 0),
        local(2027, 9, 1, 8): local(2026, 9, 1, 0),
    }
    for now, expected in cases.items():
        got = retention_cutoff(now.astimezone(UTC), retention_days=None, zone=BRUSSELS)
        assert got == expected, now
        assert got.tzinfo is not None


def test_configured_days_override_the_school_year() -> None:
    assert retention_cutoff(NOW, retention_days=30, zone=BRUSSELS) == NOW - timedelta(days=30)
    assert retention_cutoff(NOW, retention_days=0, zone=BRUSSELS) == NOW


def _school_year_end(day: date) -> date:
    return date(day.year if day.month <= 8 else day.year + 1, 8, 31)


@settings(max_examples=300, deadline=None)
@given(
    written=st.datetimes(min_value=NAIVE_START, max_value=NAIVE_END),
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1500)),
)
def test_data_is_kept_exactly_until_a_year_after_its_school_year(
    written: datetime, later: timedelta
) -> None:
    written_at = written.replace(tzinfo=BRUSSELS)
    now = (written_at + later).astimezone(UTC)
    cutoff = retention_cutoff(now, retention_days=None, zone=BRUSSELS)
    end = _school_year_end(written_at.date())
    keep_until = date(end.year + 1, 8, 31)
    assert (written_at >= cutoff) == (now.astimezone(BRUSSELS).date() <= keep_until)


async def _backdate(rig: BotRig, pupil_id: int, moment: datetime, *, seen: bool) -> None:
    async with rig.runtime.sessions.begin() as session:
        for model in (TranscriptLine, Answer):
            await session.execute(
                update(model).where(model.pupil_id == pupil_id).values(created_at=moment)
            )
        await session.execute(
            update(Outbox).where(Outbox.pupil_id == pupil_id).values(created_at=moment)
        )
        await session.execute(
            update(Run)
            .where(Run.pupil_id == pupil_id)
            .values(updated_at=moment, started_at=moment)
        )
        await session.execute(
            update(Flag)
            .where(Flag.pupil_id == pupil_id)
            .values(created_at=moment, closed_at=moment, state="closed")
        )
        if seen:
            await session.execute(
                update(Pupil)
                .where(Pupil.id == pupil_id)
                .values(last_seen_at=moment, created_at=moment)
            )


async def _count(rig: BotRig, model: type, pupil_id: int) -> int:
    async with rig.runtime.sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(model).where(model.pupil_id == pupil_id)
            )
            or 0
        )  # type: ignore[attr-defined]


async def test_retention_run_deletes_what_is_past_its_time(rig: BotRig) -> None:
    code = await rig.seed_class()
    gone = await rig.join(code, name="Gerda")  # last seen two school years ago
    await answer_first_steps(rig, gone, EXAMPLE_OLD)
    await rig.say(gone, "ik wil dood")
    stays = await rig.join(code, name="Stijn")  # active now, with old and new data
    await answer_first_steps(rig, stays, EXAMPLE_OLD)
    await rig.say(stays, "/menu")  # the run is paused, its answers saved in the state
    gone_row, stays_row = await rig.pupil(gone), await rig.pupil(stays)
    assert gone_row is not None
    assert stays_row is not None
    await _backdate(rig, gone_row.id, LONG_AGO, seen=True)
    await _backdate(rig, stays_row.id, LONG_AGO, seen=False)
    await rig.say(stays, EXAMPLE_NEW)  # a new transcript line, written now
    async with rig.runtime.sessions.begin() as session:
        session.add(ProcessedUpdate(update_id=1, processed_at=LONG_AGO))

    dry = await run_retention(
        rig.runtime.sessions,
        now=datetime.now(UTC),
        retention_days=None,
        zone=BRUSSELS,
        dry_run=True,
    )
    assert dry["pupils"] == 1
    assert dry["answers"] >= 3
    assert dry["dry_run"] is True
    assert await rig.pupil(gone) is not None  # a dry run deletes nothing

    report = await run_retention(
        rig.runtime.sessions, now=datetime.now(UTC), retention_days=None, zone=BRUSSELS
    )
    assert {k: report[k] for k in ("pupils", "runs")} == {"pupils": 1, "runs": 1}
    assert report["answers"] == dry["answers"]
    assert report["processed_updates"] >= 1

    assert await rig.pupil(gone) is None
    for model in (Answer, Run, TranscriptLine, Outbox):
        assert await _count(rig, model, gone_row.id) == 0
    assert await _count(rig, Answer, stays_row.id) == 0
    async with rig.runtime.sessions() as session:
        lines = (
            await session.scalars(
                select(TranscriptLine.text).where(TranscriptLine.pupil_id == stays_row.id)
            )
        ).all()
        run = (await session.scalars(select(Run).where(Run.pupil_id == stays_row.id))).one()
        pupil = await session.get(Pupil, stays_row.id)
        flags = (await session.scalars(select(Flag))).all()
    assert EXAMPLE_NEW in lines
    assert EXAMPLE_OLD not in lines
    assert run.state == {}  # its saved answers went with the answers
    assert pupil is not None
    assert PupilState.load(pupil.state).paused == {}
    assert [f.pupil_id for f in flags] == [None]  # the crisis flag of the erased pupil stays
    assert flags[0].context == {"lines": []}

    again = await run_retention(
        rig.runtime.sessions, now=datetime.now(UTC), retention_days=None, zone=BRUSSELS
    )
    assert {k: again[k] for k in ("pupils", "answers", "transcript", "runs", "flags")} == {
        "pupils": 0,
        "answers": 0,
        "transcript": 0,
        "runs": 0,
        "flags": 0,
    }


async def test_closed_flags_lose_the_pupils_words_open_ones_stay(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code)
    await rig.say(noor, "ik wil dood")
    pupil = await rig.pupil(noor)
    assert pupil is not None
    async with rig.runtime.sessions.begin() as session:
        await session.execute(
            update(Flag).values(
                created_at=LONG_AGO,
                context={
                    "lines": [{"at": LONG_AGO.isoformat(), "dir": "in", "text": "ik wil dood"}]
                },
                evidence={"items": ["ik wil dood"]},
            )
        )
    await run_retention(
        rig.runtime.sessions, now=datetime.now(UTC), retention_days=None, zone=BRUSSELS
    )
    async with rig.runtime.sessions() as session:
        flag = (await session.scalars(select(Flag))).one()
    assert flag.evidence == {"items": ["ik wil dood"]}  # open: the counsellor still works on it
    async with rig.runtime.sessions.begin() as session:
        await session.execute(update(Flag).values(state="closed", closed_at=LONG_AGO))
    report = await run_retention(
        rig.runtime.sessions, now=datetime.now(UTC), retention_days=None, zone=BRUSSELS
    )
    assert report["flags"] == 1
    async with rig.runtime.sessions() as session:
        flag = (await session.scalars(select(Flag))).one()
    assert flag.evidence == {"items": ["[gewist]"]}
    assert flag.context == {"lines": []}
    assert flag.pupil_id == pupil.id  # the pupil is active: the flag stays theirs


async def test_daily_task_runs_retention_with_configured_days(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code)
    rig.runtime.settings.retention_days = 30
    pupil = await rig.pupil(noor)
    assert pupil is not None
    await _backdate(rig, pupil.id, datetime.now(UTC) - timedelta(days=31), seen=True)
    task = asyncio.create_task(
        retention_loop(rig.runtime, first_delay=0, interval=timedelta(hours=1))
    )
    try:
        async with asyncio.timeout(10):
            while await rig.pupil(noor) is not None:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_cli_retention_run_reports_counts(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code)
    await answer_first_steps(rig, noor, EXAMPLE_OLD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
    env["LEERBOT_DATABASE_URL"] = rig.runtime.settings.database_url
    later = (datetime.now(UTC).date() + timedelta(days=800)).isoformat()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leerbot.cli",
        "retention",
        "run",
        "--now",
        later,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["pupils"] == 1  # erased whole: their answers go with them
    assert datetime.fromisoformat(report["cutoff"]) > datetime.now(UTC)
    assert await rig.pupil(noor) is None
    async with rig.runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Answer)) == 0
