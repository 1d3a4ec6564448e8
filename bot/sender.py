"""The outbox sender: delivers committed messages in order, within Telegram's limits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from store import repo
from store.db import Sessions
from store.models import Outbox

log = logging.getLogger("leerbot.sender")

MAX_ATTEMPTS = 8


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


@dataclass
class SenderStats:
    """Counters for /metrics."""

    sent: int = 0
    retry_after: int = 0
    errors: int = 0
    blocked: int = 0
    latencies: list[float] = field(default_factory=list)


def _retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Sender:
    """Delivers outbox rows: replies first, per-chat order, global and per-chat rate limits."""

    def __init__(self, *, sessions: Sessions, bot: Bot, global_rate: float = 28.0,
                 chat_rate: float = 1.0, chat_burst: float = 3.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 skip_locked: bool = False) -> None:
        self.sessions = sessions
        self.bot = bot
        self.clock = clock
        self.global_bucket = TokenBucket(global_rate, max(1.0, global_rate / 10))
        self.chat_rate = chat_rate
        self.chat_burst = chat_burst
        self.chat_buckets: OrderedDict[int, TokenBucket] = OrderedDict()
        self.skip_locked = skip_locked
        self.paused_until = 0.0  # monotonic time: a 429 pauses everything, as Telegram asks
        self._wake = asyncio.Event()
        self._busy_chats: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = SenderStats()
        self._stopping = False

    def wake(self) -> None:
        """Look at the outbox now (called after a commit that queued messages)."""
        self._wake.set()

    def _chat_bucket(self, chat_id: int) -> TokenBucket:
        bucket = self.chat_buckets.get(chat_id)
        if bucket is None:
            bucket = TokenBucket(self.chat_rate, self.chat_burst)
            self.chat_buckets[chat_id] = bucket
            if len(self.chat_buckets) > 20000:
                self.chat_buckets.popitem(last=False)
        else:
            self.chat_buckets.move_to_end(chat_id)
        return bucket

    async def run(self) -> None:
        """Deliver until cancelled."""
        while not self._stopping:
            try:
                waited = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sender round failed; retrying")
                waited = 1.0
            if waited > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=waited)

    async def drain(self, limit_s: float = 10.0) -> None:
        """Send until the outbox is empty (for the CLI and tests)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            await self._round()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            async with self.sessions() as session:
                if await repo.outbox_backlog(session) == 0:
                    return
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Finish in-flight sends and stop."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _round(self) -> float:
        """Start a delivery task per chat with pending rows; returns how long to wait."""
        pause = self.paused_until - time.monotonic()
        if pause > 0:
            return pause
        async with self.sessions() as session:
            rows = await repo.pending_outbox(session, now=self.clock(), limit=500)
        by_chat: OrderedDict[int, list[Outbox]] = OrderedDict()
        for row in rows:
            by_chat.setdefault(row.chat_id, []).append(row)
        for chat_id, chat_rows in by_chat.items():
            if chat_id in self._busy_chats:
                continue
            self._busy_chats.add(chat_id)
            task = asyncio.create_task(self._deliver_chat(chat_id, chat_rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return 0.5 if rows else 2.0

    async def _deliver_chat(self, chat_id: int, rows: list[Outbox]) -> None:
        try:
            for row in sorted(rows, key=lambda r: r.id):  # per-chat order: oldest first
                if not await self._deliver(row):
                    break  # keep order: later rows wait for this one
        finally:
            self._busy_chats.discard(chat_id)
            self._wake.set()

    async def _acquire(self, chat_id: int) -> None:
        bucket = self._chat_bucket(chat_id)
        while True:
            wait = max(self.paused_until - time.monotonic(), bucket.delay(),
                       self.global_bucket.delay())
            if wait <= 0:
                bucket.take()
                self.global_bucket.take()
                return
            await asyncio.sleep(wait)

    async def _deliver(self, row: Outbox) -> bool:
        """Send one row; True when done with it (sent or dead), False to retry later."""
        await self._acquire(row.chat_id)
        started = time.monotonic()
        try:
            message_id = await self._call(row.method, dict(row.payload))
        except RetryAfter as exc:
            seconds = _retry_seconds(exc)
            self.stats.retry_after += 1
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)
            log.warning("429 from Telegram: waiting %.0f s", seconds)
            await self._mark(row, status="pending", error=f"retry after {seconds}",
                             not_before=self.clock() + timedelta(seconds=seconds))
            return False
        except Forbidden as exc:
            self.stats.blocked += 1
            await self._blocked(row, str(exc))
            return True
        except BadRequest as exc:
            text = str(exc).lower()
            if "not modified" in text or "message to edit not found" in text:
                await self._mark(row, status="sent", error=str(exc)[:300])
                return True
            self.stats.errors += 1
            log.error("Telegram refused outbox row %s (%s): %s", row.id, row.method, exc)  # noqa: TRY400 (an expected refusal, no traceback needed)
            await self._mark(row, status="dead", error=str(exc)[:300])
            return True
        except (NetworkError, TimedOut) as exc:
            self.stats.errors += 1
            attempts = row.attempts + 1
            backoff = min(60.0, 0.5 * 2 ** attempts)
            status = "pending" if attempts < MAX_ATTEMPTS * 3 else "dead"
            log.warning("send failed (%s), attempt %s, retry in %.1f s", exc, attempts, backoff)
            await self._mark(row, status=status, error=str(exc)[:300], attempts=attempts,
                             not_before=self.clock() + timedelta(seconds=backoff))
            return False
        self.stats.sent += 1
        self.stats.latencies.append(time.monotonic() - started)
        if len(self.stats.latencies) > 5000:
            del self.stats.latencies[:2500]
        await self._mark(row, status="sent", message_id=message_id)
        return True

    async def _call(self, method: str, params: dict[str, Any]) -> int | None:
        if method == "sendPhoto":
            photo = base64.b64decode(params.pop("photo_b64"))
            params.pop("attachment", None)
            msg = await self.bot.send_photo(photo=photo, **params)
            return msg.message_id
        if method == "sendDocument" and "document_b64" in params:
            document = base64.b64decode(params.pop("document_b64"))
            filename = str(params.pop("filename", "leerbot.txt"))
            msg = await self.bot.send_document(document=document, filename=filename, **params)
            return msg.message_id
        result = await self.bot.do_api_request(method, api_kwargs=params)
        if isinstance(result, dict):
            return int(result.get("message_id", 0)) or None
        return None

    async def _mark(self, row: Outbox, *, status: str, error: str | None = None,
                    message_id: int | None = None, attempts: int | None = None,
                    not_before: datetime | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if status == "sent":
            values["sent_at"] = self.clock()
            values["message_id"] = message_id
            if any(key.endswith("_b64") for key in row.payload):
                # A sent file (a pupil's data export, a card) is not kept as a second copy.
                values["payload"] = {k: v for k, v in row.payload.items()
                                     if not k.endswith("_b64")}
        if error is not None:
            values["last_error"] = error
        if attempts is not None:
            values["attempts"] = attempts
        if not_before is not None:
            values["not_before"] = not_before
        async with self.sessions.begin() as session:
            await session.execute(update(Outbox).where(Outbox.id == row.id).values(**values))
        row.attempts = attempts if attempts is not None else row.attempts

    async def _blocked(self, row: Outbox, error: str) -> None:
        log.info("outbox row %s: the chat blocked the bot; marking and skipping", row.id)
        async with self.sessions.begin() as session:
            await session.execute(update(Outbox).where(Outbox.id == row.id)
                                  .values(status="dead", last_error=error[:300]))
            await repo.mark_chat_blocked(session, row.chat_id)
            if row.flag_id is not None:
                from store.models import Flag

                await session.execute(update(Flag).where(Flag.id == row.flag_id)
                                      .values(delivery_failed=True))
