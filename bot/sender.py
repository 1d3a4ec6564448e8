"""The outbox sender: delivers committed messages in order, within Telegram's limits.

Delivery contract (see README, "Delivery"):
- A message is claimed (`pending` → `sending`, with this sender's id and a claim time) before
  it is sent, and its outcome is written in its own short transaction right after Telegram
  answers. A claim is only possible while nothing of the same chat is `sending` and nothing
  older of that chat waits, so per-chat order holds across processes; on PostgreSQL claims use
  `FOR UPDATE SKIP LOCKED`.
- A living sender refreshes its claims every few seconds. Claims of a sender that died go back
  to `pending`: at once when it ran on this host (its process is gone), else after
  `stuck_after` seconds of silence. Such a message is sent again: at-least-once. The one
  message that can arrive twice is one Telegram accepted in the milliseconds between its answer
  and our write, in a process killed exactly then.
- Rate limits: one global token bucket per process (priority first: replies, staff, reminders,
  broadcasts) and one per chat. A 429 pauses every send of this process for `retry_after`;
  network errors and 5xx back off exponentially; 403 marks the chat blocked and drops what
  waits for it; other 400s are dead letters.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import logging
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import psutil
import uvicorn
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from telegram import Bot
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.ops import DeliveryMetrics
from leerbot.settings import Settings
from store import repo
from store.db import Sessions, engine_of, listen, make_sessions
from store.lean import OutcomeStatements, finish_outcomes
from store.models import Outbox

log = logging.getLogger("leerbot.sender")

OUTBOX_CHANNEL = "leerbot_outbox"
READY = b"leerbot-sender-ready"
MAX_ATTEMPTS = 60  # failed probes before a message is given up (about 30 minutes of outage)
URGENT_PRIORITY = 3  # replies and staff messages: claimed even when the window is full
URGENT_CLAIM = 100
RETRY_BUG_S = 30.0  # a message whose delivery raised something unexpected waits this long
CHAT_CLAIM = 10
HTTP_POOL = 16  # connections to the Bot API per process (the bot uses the same)
COALESCE_S = 0.002  # messages of one chat claimed at once, behind the one just sent
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 30.0
HOST = socket.gethostname()[:50]
_LIVE_TOKENS: set[str] = set()  # senders alive in this process (tests run several)


class TokenBucket:
    """A rate limiter: `rate` tokens a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self) -> float:
        """Seconds until one token is free (0 when one is free now)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Use one token (call after `delay()` returned 0)."""
        self._refill()
        self.tokens -= 1

    def forfeit(self) -> None:
        """No refill for the time since the last take (a call was in flight).

        Telegram counts a message when it arrives, somewhere between our request and its
        answer; refilling only from the answer on keeps our spacing at least Telegram's.
        """
        self.stamp = time.monotonic()


class ChatBuckets:
    """One TokenBucket per chat; beyond `limit` chats the least recently used is dropped."""

    def __init__(self, rate: float, burst: float, limit: int = 20_000) -> None:
        self.rate = rate
        self.burst = burst
        self.limit = limit
        self._buckets: OrderedDict[int, TokenBucket] = OrderedDict()

    def __call__(self, chat_id: int) -> TokenBucket:
        bucket = self._buckets.get(chat_id)
        if bucket is None:
            bucket = self._buckets[chat_id] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.limit:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(chat_id)
        return bucket


class Gate:
    """The one door to the Bot API in a process: global rate, priority order, pauses.

    After a network failure the door lets one call through (a probe) until a call succeeds,
    so an outage costs one failed call per backoff step, not one per waiting chat.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.paused_until = 0.0  # monotonic; a 429 or a network outage closes the door
        self.probing = False  # after a network failure: one call at a time until one succeeds
        self._probe_out = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()

    def closed_for(self) -> float:
        """Seconds the door stays shut (0 when open)."""
        return max(0.0, self.paused_until - time.monotonic())

    def pause(self, seconds: float) -> None:
        """Shut the door for `seconds` (a longer pause already set wins)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)
        self._kick.set()

    def failed(self, backoff: float) -> None:
        """A call failed on the network or with a 5xx: wait, then probe with one call."""
        self.probing = True
        self._probe_out = False
        self.pause(backoff)

    def succeeded(self) -> None:
        """A call went through: the door opens fully again."""
        if self.probing:
            self.probing = False
            self._probe_out = False
            self._kick.set()

    def _open(self) -> bool:
        return self.closed_for() <= 0 and not (self.probing and self._probe_out)

    def _grant(self) -> None:
        self.bucket.take()
        if self.probing:
            self._probe_out = True

    async def acquire(self, priority: int) -> None:
        """Wait for a token; lower `priority` values are served first."""
        if not self._waiters and self._open() and self.bucket.delay() <= 0:
            self._grant()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve(), name="leerbot-sender-gate")
        self._kick.set()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.bucket.tokens += 1  # granted just as we were cancelled: give it back
            raise

    async def _serve(self) -> None:
        while self._waiters:
            self._kick.clear()  # before looking: a kick from now on ends the wait below
            wait = max(self.closed_for(), self.bucket.delay())
            if wait > 0 or not self._open():
                with contextlib.suppress(TimeoutError):
                    # A probe in flight has no deadline: succeeded() or failed() kicks us.
                    await asyncio.wait_for(self._kick.wait(), wait if wait > 0 else 1.0)
                continue
            _, _, future = heapq.heappop(self._waiters)
            if future.done():
                continue  # its task was cancelled while waiting
            self._grant()
            future.set_result(None)


class Recorder:
    """Writes outcomes in as few transactions as the database allows (group commit).

    A write waits for no timer: outcomes that arrive while a transaction is open go into the
    next one, so under load one commit records many sends, and alone it records one at once.
    """

    def __init__(self, sessions: Sessions, *, lean: bool = False) -> None:
        """`lean`: write on the driver connection (store/lean.py), for the bot's fast lane."""
        self.sessions = sessions
        self._lean: OutcomeStatements | None = None
        self._engine: AsyncEngine | None = engine_of(sessions) if lean else None
        if self._engine is not None:
            self._lean = OutcomeStatements(self._engine.dialect)
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, values: dict[str, Any]) -> None:
        """Record one outcome ("id" and the columns to set); returns once committed."""
        await asyncio.shield(self.submit(values))  # a stopping sender must not cancel it

    def submit(self, values: dict[str, Any]) -> asyncio.Future[None]:
        """Hand in one outcome; the future is done once it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((values, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._flush(), name="leerbot-sender-record")
        return future

    @property
    def waiting(self) -> int:
        """Outcomes handed in and not yet committed (0 or 1 while a write is open: the
        batch being written counts as one)."""
        busy = self._writer is not None and not self._writer.done()
        return len(self._pending) + int(busy)

    async def flushed(self) -> None:
        """Returns once every outcome handed in so far is committed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write(self, outcomes: list[dict[str, Any]]) -> None:
        if self._engine is not None and self._lean is not None:
            await finish_outcomes(self._engine, self._lean, outcomes)
            return
        async with self.sessions.begin() as session:
            await repo.finish_many(session, outcomes)

    async def _flush(self) -> None:
        delay = 0.5
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write([values for values, _ in batch])
            except Exception:
                # Telegram has these messages: forgetting the outcome would send them again,
                # so keep it and try until the database answers (their chats wait meanwhile).
                log.warning(
                    "could not record %s sent messages; retrying in %.1f s",
                    len(batch),
                    delay,
                    exc_info=True,
                )
                self._pending[:0] = batch
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
                continue
            delay = 0.5
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


@dataclass
class SenderStats:
    """Plain counters (tests and the CLI read them; /metrics has the Prometheus view)."""

    sent: int = 0
    retry_after: int = 0
    errors: int = 0
    blocked: int = 0
    recovered: int = 0
    latencies: list[float] = field(default_factory=list)


class Outcome(Enum):
    """What became of one claimed message."""

    DONE = "done"  # sent, or dead for good
    BLOCKED = "blocked"  # the chat blocked the bot: everything for it is dropped
    STOPPED = "stopped"  # the sender stops; the claim is released


@dataclass
class ChatQueue:
    """The claimed messages of one chat, sent one after the other by one task."""

    rows: deque[Outbox]
    task: asyncio.Task[None] | None = None
    in_call: bool = False  # between the HTTP request and the write of its outcome


def _retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _now() -> datetime:
    return datetime.now(UTC)


def live_owner() -> str:
    """A new owner id for claims (host, process id, a token), alive until `owner_gone`."""
    token = secrets.token_hex(4)
    _LIVE_TOKENS.add(token)
    return f"{HOST}:{os.getpid()}:{token}"


def owner_gone(owner: str) -> None:
    """The owner stopped: a claim still under its name may be taken back."""
    _LIVE_TOKENS.discard(owner.rpartition(":")[2])


def owner_is_dead(owner: str) -> bool:
    """True when `owner` ran on this host in a process that no longer exists.

    A process id in use again by another program keeps the claim until it goes stale, which is
    the safe side (later delivery, never a second one).
    """
    host, _, rest = owner.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token not in _LIVE_TOKENS  # an earlier life of this very process id
    return not psutil.pid_exists(pid)


class Sender:
    """Delivers outbox rows: replies first, per-chat order, global and per-chat rate limits."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        bot: Bot,
        global_rate: float = 28.0,
        chat_rate: float = 1.0,
        chat_burst: float = 3.0,
        clock: Callable[[], datetime] = _now,
        skip_locked: bool = False,
        engine: AsyncEngine | None = None,
        metrics: DeliveryMetrics | None = None,
        window_s: float = 1.5,
        stuck_after: float = 30.0,
        heartbeat_s: float = 2.0,
        idle_poll_s: float | None = None,
    ) -> None:
        self.sessions = sessions
        self.bot = bot
        self.clock = clock
        self.gate = Gate(global_rate, max(1.0, global_rate / 10))
        self._chat_bucket = ChatBuckets(chat_rate, chat_burst)
        self.skip_locked = skip_locked
        self.engine = engine
        self.metrics = metrics or DeliveryMetrics()
        # At most this many seconds of sending are claimed at once, so a reply that comes in
        # during a broadcast is not stuck behind hundreds of claimed notices.
        self.window = max(4, int(global_rate * window_s))
        self.stuck_after = stuck_after
        self.heartbeat_s = heartbeat_s
        self.idle_poll_s = idle_poll_s
        self.owner = live_owner()
        self.stats = SenderStats()
        self._chats: dict[int, ChatQueue] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self.recorder = Recorder(sessions)
        # SQLite: look before taking the write lock (see make_sessions); the bot's presses
        # would otherwise wait for every idle look of ours.
        bound = engine_of(sessions)
        self._reads: Sessions | None = (
            make_sessions(bound, read_only=True)
            if bound is not None and bound.dialect.name == "sqlite"
            else None
        )
        self._listener: AsyncConnection | None = None
        self._last_maintenance = 0.0
        self._last_failure = 0.0
        self._failures = 0

    # ------------------------------------------------------------------ public

    def wake(self) -> None:
        """Look at the outbox now (called after a commit that queued messages)."""
        self._wake.set()

    @property
    def claimed(self) -> int:
        """Messages this sender holds (claimed, not yet finished)."""
        return sum(len(q.rows) for q in self._chats.values())

    async def run(self) -> None:
        """Deliver until stopped or cancelled."""
        await self._listen()
        try:
            while not self._stopping:
                # Cleared before the round: a commit that wakes us during it is not lost.
                self._wake.clear()
                try:
                    await self._maintain()
                    wait = await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sender round failed; retrying")
                    wait = 1.0
                if wait > 0 and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=wait)
                        # Woken by a commit: others usually follow within a moment, and one
                        # claim for all of them costs less than one claim each.
                        await asyncio.sleep(COALESCE_S)
        finally:
            await self._unlisten()

    async def drain(self, limit_s: float = 10.0) -> None:
        """Send until nothing waits (for the CLI and tests; works after stop() too)."""
        stopping, self._stopping = self._stopping, False
        deadline = time.monotonic() + limit_s
        try:
            while time.monotonic() < deadline:
                await self._maintain(force=True)
                await self._round()
                await self._settle(deadline)
                async with self.sessions() as session:
                    counts = await repo.outbox_counts(session, now=self.clock())
                if counts["due"] + counts["sending"] == 0:
                    return
                await asyncio.sleep(0.02)
        finally:
            self._stopping = stopping

    async def stop(self, grace_s: float = 10.0) -> None:
        """Finish the calls in flight, hand back the rest of the claims and stop."""
        self._stopping = True
        self._wake.set()
        for queue in list(self._chats.values()):
            if queue.task is not None and not queue.in_call:
                queue.task.cancel()  # only waiting for a token: nothing is half sent
        tasks = [q.task for q in self._chats.values() if q.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        self._chats.clear()
        try:
            async with self.sessions.begin() as session:
                released = await repo.release_claims(session, owner=self.owner)
            if released:
                log.info("sender stopped; %s claimed messages back in the queue", released)
        except Exception:
            log.warning(
                "sender stopped without releasing its claims; they recover after %.0f s",
                self.stuck_after,
                exc_info=True,
            )
        await self._unlisten()
        owner_gone(self.owner)

    # ------------------------------------------------------------------ claiming

    async def _listen(self) -> None:
        if self.engine is None or self.engine.dialect.name != "postgresql":
            return
        try:
            self._listener = await listen(self.engine, OUTBOX_CHANNEL, self.wake)
        except Exception:
            log.warning(
                "LISTEN %s failed; polling the outbox instead", OUTBOX_CHANNEL, exc_info=True
            )

    async def _unlisten(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.close()

    def _idle_wait(self) -> float:
        if self.idle_poll_s is not None:
            return self.idle_poll_s
        return 1.0 if self._listener is not None else 0.25

    async def _maintain(self, *, force: bool = False) -> None:
        """Heartbeat our claims and take back those of senders that died."""
        now_m = time.monotonic()
        if not force and now_m - self._last_maintenance < self.heartbeat_s:
            return
        self._last_maintenance = now_m
        now = self.clock()
        stale_before = now - timedelta(seconds=self.stuck_after)
        if self._reads is not None and not self._chats:
            async with self._reads() as session:
                if not await self._dead_owners(session) and not await repo.stale_claims(
                    session, stale_before=stale_before, alive_owner=self.owner
                ):
                    return  # nothing to refresh, nothing to take back
        async with self.sessions.begin() as session:
            if self._chats:
                await repo.refresh_claims(session, owner=self.owner, now=now)
            dead = await self._dead_owners(session)
            recovered = await repo.recover_outbox(
                session, stale_before=stale_before, dead_owners=dead, alive_owner=self.owner
            )
        if recovered:
            self.stats.recovered += recovered
            log.warning(
                "took back %s messages claimed by a sender that stopped (%s)",
                recovered,
                ", ".join(dead) or "silent too long",
            )

    async def _dead_owners(self, session: AsyncSession) -> list[str]:
        """Other senders holding claims whose process is gone."""
        owners = await repo.sending_owners(session)
        return [o for o in owners if o != self.owner and owner_is_dead(o)]

    async def _round(self) -> float:
        """Claim what may be sent now and start a task per chat; returns how long to wait."""
        pause = self.gate.closed_for()
        if pause > 0:
            return pause
        free = self.window - self.claimed
        now = self.clock()
        if self._reads is not None:
            async with self._reads() as session:
                if not await repo.outbox_due(session, now=now):
                    return self._idle_wait()
        async with self.sessions.begin() as session:
            rows = await repo.claim_outbox(
                session,
                owner=self.owner,
                now=now,
                limit=URGENT_CLAIM,
                max_priority=URGENT_PRIORITY,
                skip_locked=self.skip_locked,
            )
            free -= len(rows)
            if free > 0:
                rows += await repo.claim_outbox(
                    session, owner=self.owner, now=now, limit=free, skip_locked=self.skip_locked
                )
            # A reply is often two or three messages: take the rest of each chat along.
            rows += await repo.claim_followers(
                session,
                owner=self.owner,
                now=now,
                chat_ids=sorted({r.chat_id for r in rows}),
                limit=CHAT_CLAIM * max(1, len(rows)),
            )
        rows.sort(key=lambda r: r.id)
        for row in rows:
            self._enqueue(row)
        if rows and self.window - self.claimed > 0:
            return 0.0  # there may be more right away
        return self._idle_wait()

    def _enqueue(self, row: Outbox) -> None:
        queue = self._chats.get(row.chat_id)
        if queue is None:
            queue = self._chats[row.chat_id] = ChatQueue(rows=deque())
        queue.rows.append(row)
        if queue.task is None:
            queue.task = asyncio.create_task(
                self._deliver_chat(row.chat_id, queue), name=f"leerbot-send-{row.chat_id}"
            )

    async def _settle(self, deadline: float) -> None:
        while self._chats and time.monotonic() < deadline:
            tasks = [q.task for q in self._chats.values() if q.task is not None]
            if not tasks:
                return
            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ delivering

    async def _deliver_chat(self, chat_id: int, queue: ChatQueue) -> None:
        try:
            while queue.rows:
                row = queue.rows[0]
                outcome = await self._deliver(row, queue)
                if outcome is Outcome.STOPPED:
                    return
                queue.rows.popleft()
                if outcome is Outcome.BLOCKED:
                    queue.rows.clear()  # mark_chat_blocked dropped them in the database
        except asyncio.CancelledError:
            raise
        except Exception:
            # Named by outbox row, not chat: a private chat id is the pupil's Telegram id.
            log.exception(
                "delivery of outbox row %s failed; trying again in %.0f s",
                queue.rows[0].id if queue.rows else None,
                RETRY_BUG_S,
            )
            queue.in_call = False
            self.gate.succeeded()  # a probe that ended in a bug must not shut the door
            await self._put_back([r.id for r in queue.rows])
        finally:
            if self._chats.get(chat_id) is queue:
                del self._chats[chat_id]
            self._wake.set()  # room in the window: claim more

    async def _put_back(self, row_ids: list[int]) -> None:
        """Claims back to pending, held back a while (a row that trips a bug must not spin)."""
        if not row_ids:
            return
        later = self.clock() + timedelta(seconds=RETRY_BUG_S)
        with contextlib.suppress(Exception):  # else maintenance of a later life takes them
            async with self.sessions.begin() as session:
                await repo.release_claims(session, owner=self.owner, row_ids=row_ids)
                for row_id in row_ids:
                    await repo.finish_outbox(
                        session, row_id, status="pending", now=self.clock(), not_before=later
                    )

    async def _acquire(self, row: Outbox) -> TokenBucket:
        bucket = self._chat_bucket(row.chat_id)
        wait = bucket.delay()
        if wait > 0:  # one token per `1/chat_rate` s: a single sleep is enough
            await asyncio.sleep(wait)
        await self.gate.acquire(row.priority)
        bucket.take()
        return bucket

    async def _deliver(self, row: Outbox, queue: ChatQueue) -> Outcome:
        """Send one claimed row until it is sent or dead (or the sender stops)."""
        attempts = row.attempts
        while True:
            if self._stopping:
                return Outcome.STOPPED
            bucket = await self._acquire(row)
            started = time.monotonic()
            queue.in_call = True
            try:
                message_id = await self._call(row.method, dict(row.payload))
            except RetryAfter as exc:
                queue.in_call = False
                self.gate.succeeded()  # Telegram answered: the network is fine
                seconds = _retry_seconds(exc)
                self.stats.retry_after += 1
                self.metrics.retry_after.inc()
                self.gate.pause(seconds)
                log.warning("429 from Telegram: every send waits %.0f s", seconds)
                continue
            except Forbidden as exc:
                self.gate.succeeded()
                self.stats.blocked += 1
                self.metrics.blocked.inc()
                await self._blocked(row, str(exc))
                queue.in_call = False
                return Outcome.BLOCKED
            except BadRequest as exc:
                self.gate.succeeded()
                message = str(exc)
                if (
                    "not modified" in message.lower()
                    or "message to edit not found" in message.lower()
                ):
                    await self._finish(row, status="sent", error=message)
                    queue.in_call = False
                    return Outcome.DONE
                self.stats.errors += 1
                self.metrics.errors.labels(kind="bad_request").inc()
                log.error(  # noqa: TRY400 (an expected refusal, no traceback needed)
                    "Telegram refused outbox row %s (%s): %s",
                    row.id,
                    row.method,
                    message,
                )
                await self._finish(row, status="dead", error=message)
                queue.in_call = False
                return Outcome.DONE
            except NetworkError as exc:  # TimedOut and 5xx too
                queue.in_call = False
                attempts += 1
                self.stats.errors += 1
                self.metrics.errors.labels(kind="network").inc()
                backoff = self._backoff(started)
                if attempts >= MAX_ATTEMPTS:
                    log.error(  # noqa: TRY400 (expected, logged once)
                        "giving up outbox row %s after %s attempts: %s",
                        row.id,
                        attempts,
                        exc,
                    )
                    await self._finish(row, status="dead", error=str(exc), attempts=attempts)
                    return Outcome.DONE
                log.warning(
                    "send failed (%s), attempt %s; all sends wait %.1f s", exc, attempts, backoff
                )
                await self._note_failure(row, attempts, str(exc))
                continue
            except (InvalidToken, Conflict) as exc:
                raise RuntimeError(f"the bot token is not usable: {exc}") from exc
            except TelegramError as exc:  # anything else Telegram refuses: a dead letter
                self.gate.succeeded()
                self.stats.errors += 1
                self.metrics.errors.labels(kind="refused").inc()
                log.error(  # noqa: TRY400 (an expected refusal)
                    "Telegram refused outbox row %s (%s): %s",
                    row.id,
                    row.method,
                    exc,
                )
                await self._finish(row, status="dead", error=str(exc))
                queue.in_call = False
                return Outcome.DONE
            bucket.forfeit()
            self._failures = 0
            self.gate.succeeded()
            call_s = time.monotonic() - started
            self.stats.sent += 1
            self.stats.latencies.append(call_s)
            if len(self.stats.latencies) > 5000:
                del self.stats.latencies[:2500]
            queued_s = (
                (self.clock() - row.created_at).total_seconds()
                if row.created_at is not None
                else None
            )
            self.metrics.record_sent(row.method, call_s=call_s, queued_s=queued_s)
            await self._finish(row, status="sent", message_id=message_id)
            self.metrics.record_gap.observe(time.monotonic() - started - call_s)
            queue.in_call = False
            return Outcome.DONE

    def _backoff(self, started: float) -> float:
        """Exponential pause for everyone; failures of calls already in flight count once."""
        if started >= self._last_failure:
            self._failures += 1
        self._last_failure = time.monotonic()
        seconds = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** (self._failures - 1))
        seconds *= random.uniform(0.8, 1.2)  # senders of several bots do not retry in step
        self.gate.failed(seconds)
        return seconds

    async def _call(self, method: str, params: dict[str, Any]) -> int | None:
        return await call_api(self.bot, method, params)

    async def _finish(
        self,
        row: Outbox,
        *,
        status: str,
        error: str | None = None,
        message_id: int | None = None,
        attempts: int | None = None,
    ) -> None:
        """Write the outcome at once: the shorter this gap, the rarer a resend after a crash."""
        values: dict[str, Any] = {
            "id": row.id,
            "status": status,
            "claimed_by": None,
            "claimed_at": None,
        }
        if status == "sent":
            values.update(sent_at=self.clock(), message_id=message_id)
            if any(key.endswith("_b64") for key in row.payload):
                # A sent file (a pupil's data export, a card) is not kept as a second copy.
                values["payload"] = {
                    k: v for k, v in row.payload.items() if not k.endswith("_b64")
                }
        if error is not None:
            values["last_error"] = error[:300]
        if attempts is not None:
            values["attempts"] = attempts
        await self.recorder.write(values)

    async def _note_failure(self, row: Outbox, attempts: int, error: str) -> None:
        row.attempts = attempts
        async with self.sessions.begin() as session:
            await repo.finish_outbox(
                session, row.id, status="sending", now=self.clock(), error=error, attempts=attempts
            )

    async def _blocked(self, row: Outbox, error: str) -> None:
        log.info("outbox row %s: the chat blocked the bot; marking and skipping", row.id)
        async with self.sessions.begin() as session:
            # The pupil row first, then the chat's outbox rows (this one included, with its
            # flag): the order the bot's own transactions lock them in, so the two never
            # deadlock when the bot hears of the block (my_chat_member) at the same moment.
            await repo.mark_chat_blocked(session, row.chat_id, now=self.clock())
            await repo.finish_outbox(session, row.id, status="dead", now=self.clock(), error=error)


async def call_api(bot: Bot, method: str, params: dict[str, Any]) -> int | None:
    """Make one stored Bot API call; returns the message id Telegram gave it, if any."""
    if method == "sendPhoto":
        photo = base64.b64decode(params.pop("photo_b64"))
        params.pop("attachment", None)
        msg = await bot.send_photo(photo=photo, **params)
        return msg.message_id
    if method == "sendDocument" and "document_b64" in params:
        document = base64.b64decode(params.pop("document_b64"))
        filename = str(params.pop("filename", "leerbot.txt"))
        msg = await bot.send_document(document=document, filename=filename, **params)
        return msg.message_id
    # Bot API method names are case-insensitive. The lower-case name is one PTB has no
    # alias for, so it does not warn that a typed method exists: our payloads are stored
    # JSON, not PTB objects, and go out as they are.
    result = await bot.do_api_request(method.lower(), api_kwargs=params)
    if isinstance(result, dict):
        return int(result.get("message_id", 0)) or None
    return None


def make_sender(
    *,
    sessions: Sessions,
    engine: AsyncEngine,
    bot: Bot,
    global_rate: float,
    chat_rate: float,
    metrics: DeliveryMetrics | None = None,
) -> Sender:
    """A sender for this database: SKIP LOCKED claims and LISTEN wake-ups on PostgreSQL."""
    postgres = engine.dialect.name == "postgresql"
    return Sender(
        sessions=sessions,
        bot=bot,
        global_rate=global_rate,
        chat_rate=chat_rate,
        skip_locked=postgres,
        engine=engine,
        metrics=metrics,
    )


class SenderChild:
    """`leerbot sender` as a child process of a bot, woken through its stdin.

    Sending lives in its own process so that a bot process that dies (SIGKILL, out of memory)
    never cuts a send in half: the child sees its stdin close, finishes the calls in flight,
    records them, hands back its other claims and exits. The bot restarts a child that died.
    """

    def __init__(self, *, restart_s: float = 1.0) -> None:
        self.restart_s = restart_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the child (the environment, and so the settings, are the bot's)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leerbot.cli", "sender", "--listen", "", "--wake-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None  # noqa: S101 (stdin=PIPE above)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.starts += 1

    async def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Until the child says it sends (its one line on stdout); False when it did not."""
        proc = self.proc
        if proc is None or proc.stdout is None:
            return False
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout_s)
        except TimeoutError:
            line = b""
        if line.strip() != READY:
            log.warning("the sender process did not report ready; replies wait until it does")
            return False
        return True

    def wake(self) -> None:
        """Tell the child a commit queued messages (one byte; a full pipe already says so)."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError, ValueError):
            os.write(proc.stdin.fileno(), b"w")

    async def supervise(self) -> None:
        """Keep a child running; on cancel, stop it cleanly."""
        try:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    if self.proc is not None:
                        log.error(
                            "the sender process exited (%s); starting a new one",
                            self.proc.returncode,
                        )
                    self.start()
                await asyncio.sleep(self.restart_s)
        finally:
            await asyncio.shield(self.stop())

    async def stop(self, grace_s: float = 15.0) -> None:
        """Close its stdin (it finishes what is in flight) and wait for it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.to_thread(proc.wait, grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the sender's handlers stop it cleanly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to the sender."""
        yield


def run_standalone(settings: Settings, *, listen: str | None, wake_stdin: bool = False) -> None:
    """`leerbot sender`: deliver the outbox until SIGTERM/SIGINT; ops endpoints on `listen`.

    With `wake_stdin` (a bot's child): every byte on stdin wakes the sender, and the end of
    stdin (the bot is gone) stops it cleanly.
    """
    from leerbot.loop import run

    run(_standalone(settings, listen, wake_stdin), settings.event_loop)


async def _watch_stdin(sender: Sender, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        sender.wake()
    log.info("the bot process is gone; the sender finishes what is in flight and stops")
    stop.set()


async def _standalone(settings: Settings, listen: str | None, wake_stdin: bool) -> None:
    import signal

    from starlette.applications import Starlette

    from bot.http import bot_request
    from bot.ops import ops_routes, split_listen
    from leerbot.heap import freeze_startup_heap
    from store.db import make_engine, make_sessions

    address = split_listen(listen) if listen else None
    engine = make_engine(settings.database_url, pre_ping=False)  # a failed round is retried
    sessions = make_sessions(engine)
    metrics = DeliveryMetrics()
    # Calls in flight are few (one per chat, 28/s): a small pool (see HTTP_POOL).
    request = bot_request(settings.http_client, pool_size=HTTP_POOL, read_timeout=15)
    bot = Bot(
        settings.token,
        base_url=settings.telegram_api_url,
        base_file_url=settings.file_url,
        request=request,
    )
    await bot.initialize()
    sender = make_sender(
        sessions=sessions,
        engine=engine,
        bot=bot,
        global_rate=settings.send_rate_global,
        chat_rate=settings.send_rate_chat,
        metrics=metrics,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    if address is not None:
        app = Starlette(
            routes=ops_routes(metrics=metrics, sessions=lambda: sessions, rasa_url=None)
        )
        server = _QuietServer(
            uvicorn.Config(
                app,
                host=address[0],
                port=address[1],
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        serving = asyncio.create_task(server.serve(), name="leerbot-sender-ops")
    freeze_startup_heap()  # its full collections would pause every chat's sending
    running = asyncio.create_task(sender.run(), name="leerbot-sender")
    watcher = asyncio.create_task(_watch_stdin(sender, stop)) if wake_stdin else None
    log.info(
        "sender started as %s (%.0f messages/s at most)", sender.owner, settings.send_rate_global
    )
    if wake_stdin:  # the bot waits for this line before it takes updates
        sys.stdout.buffer.write(READY + b"\n")
        sys.stdout.buffer.flush()
    try:
        await asyncio.wait(
            [running, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        await sender.stop()
        running.cancel()
        if watcher is not None:
            watcher.cancel()
        await asyncio.gather(running, *([watcher] if watcher else []), return_exceptions=True)
        if server is not None and serving is not None:
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
        await bot.shutdown()
        await engine.dispose()
        log.info("sender stopped")
