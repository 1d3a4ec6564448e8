"""Retention: transcripts, answers and inactive pupils go after the retention period.

Default period (LEERBOT_RETENTION_DAYS unset): until one year after the end of the school year
(31 August) in which the data was written, as `/privacy` tells pupils. So on 1 September of
year N everything written before 1 September of year N-1 goes. With LEERBOT_RETENTION_DAYS=D
everything older than D days goes.

What one run does, in one transaction:
- pupils not seen since the cutoff are erased like /vergeetmij (flags stay, pseudonymised);
- transcript lines, answers and outbox messages older than the cutoff are deleted;
- delivered messages and processed update ids go after a week (Telegram redelivers within a
  day; nothing reads a sent message again), so the goodbye after /vergeetmij goes too;
- unfinished runs untouched since the cutoff lose their saved answers (run and pupil state);
- closed flags older than the cutoff keep their record but lose the pupil's words;

`leerbot retention run` runs it once; the bot runs it daily (`install_retention`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flows.types import PupilState
from store import repo
from store import retention as queries
from store.db import Sessions
from store.models import Pupil

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger("leerbot.retention")

SCHOOL_YEAR_START = (9, 1)  # 1 September; the school year ends on 31 August
DELIVERY_LOG_KEPT = timedelta(days=7)  # sent messages and update ids: for troubleshooting
DAILY = timedelta(days=1)
FIRST_RUN_DELAY = 60.0  # seconds after start-up, so a restart loop does not hammer the database


def retention_cutoff(now: datetime, *, retention_days: int | None, zone: ZoneInfo) -> datetime:
    """The moment before which data is deleted (UTC)."""
    if retention_days is not None:
        return (now - timedelta(days=retention_days)).astimezone(UTC)
    today = now.astimezone(zone).date()
    month, day = SCHOOL_YEAR_START
    # The last school year whose end + 1 year has passed started in September of `year`-1;
    # everything written before the school year after it (1 September `year`) goes.
    year = today.year - 1 if today >= date(today.year, month, day) else today.year - 2
    return datetime(year, month, day, tzinfo=zone).astimezone(UTC)


async def run_retention(
    sessions: Sessions,
    *,
    now: datetime,
    retention_days: int | None,
    zone: ZoneInfo,
    dry_run: bool = False,
) -> dict[str, Any]:
    """One retention run in one transaction; returns the cutoff and counts per kind."""
    cutoff = retention_cutoff(now, retention_days=retention_days, zone=zone)
    async with sessions() as session:  # closing without commit rolls back (dry run, errors)
        if not await queries.try_lock(session):
            log.info("retention already running in another worker; skipped")
            return {"cutoff": cutoff.isoformat(), "skipped": True}
        pupils = await queries.pupils_inactive_since(session, cutoff)
        for pupil in pupils:
            await repo.erase_pupil_rows(session, pupil)
        runs = 0
        for run in await queries.stale_runs(session, cutoff):
            if run.state:
                run.state = {}
                runs += 1
            owner = await session.get(Pupil, run.pupil_id)
            if owner is not None:
                _forget_saved_run(owner, run.module_id)
        counts = await queries.delete_before(
            session, cutoff, log_cutoff=min(cutoff, now - DELIVERY_LOG_KEPT)
        )
        flags = await queries.blank_closed_flags(session, cutoff)
        report: dict[str, Any] = {
            "cutoff": cutoff.isoformat(),
            "pupils": len(pupils),
            **counts,
            "runs": runs,
            "flags": flags,
            "dry_run": dry_run,
        }
        if not dry_run:
            await session.commit()
    return report


def _forget_saved_run(pupil: Pupil, module_id: str) -> None:
    """Drop a stale paused run (with its answers) from the pupil's engine state."""
    state = PupilState.load(pupil.state)
    changed = state.paused.pop(module_id, None) is not None
    if state.run is not None and state.run.module == module_id and state.mode != "module":
        state.run = None
        changed = True
    if changed:
        pupil.state = state.stored()


def summary(report: dict[str, Any]) -> str:
    """One log or CLI line with the counts (never pupil data)."""
    if report.get("skipped"):
        return f"retention skipped (another worker runs it); cutoff {report['cutoff']}"
    parts = ", ".join(
        f"{key} {report[key]}"
        for key in (
            "pupils",
            "transcript",
            "answers",
            "outbox",
            "runs",
            "flags",
            "processed_updates",
        )
    )
    verb = "would delete" if report.get("dry_run") else "deleted"
    return f"retention: {verb} data from before {report['cutoff']}: {parts}"


async def retention_loop(
    runtime: Runtime,
    *,
    first_delay: float = FIRST_RUN_DELAY,
    interval: timedelta = DAILY,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Run retention soon after start-up and then once a day, until cancelled."""
    settings = runtime.settings
    zone = ZoneInfo(settings.timezone)
    now = clock or runtime.conversation.clock
    await asyncio.sleep(first_delay)
    while True:
        try:
            report = await run_retention(
                runtime.sessions, now=now(), retention_days=settings.retention_days, zone=zone
            )
            log.info("%s", summary(report))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention run failed; trying again tomorrow")
        await asyncio.sleep(interval.total_seconds())


def install_retention(runtime: Runtime, _app: Any = None) -> asyncio.Task[None]:
    """Start the daily retention task with the bot (stopped with the other runtime tasks)."""
    task = asyncio.create_task(retention_loop(runtime), name="leerbot-retention")
    runtime.tasks.append(task)
    return task
