"""The fast lane: the bot process sends the edit that answers a pressed button itself.

The most frequent update is a press that only redraws the question (a multiple-choice tick).
Its reply is one edit of the message the pupil pressed. Through the sender it costs a wake-up,
a claim transaction and a hop to another process; here it goes out right after the update's
commit, from the process that made it, still through the outbox:

- The edit is an outbox row like any other, written in the update's transaction, but already
  claimed (`sending`) by this process's fast lane. The sender never takes it, and the
  sender's per-chat rule (nothing of a chat is claimed while one of its messages is
  `sending`) keeps whatever comes after it in order.
- Only when nothing else of the chat waits or is being sent, no other message is due (the
  sender is idle, so the two processes do not both spend Telegram's 30 messages a second) and
  the lane's own rate buckets have room now. Otherwise the reply takes the normal way.
- The outcome is recorded like the sender's (group commit). Anything but success is handed
  back: the row returns to `pending` and the sender, with its retries and back-off, takes
  over. If this process dies, the sender takes the claim back (at once on the same host) and
  sends the edit again; a repeated edit is harmless (Telegram refuses it as "not modified").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, TelegramError

from bot.ops import DeliveryMetrics
from bot.sender import ChatBuckets, Recorder, TokenBucket, call_api, live_owner, owner_gone
from store import repo
from store.db import Sessions
from store.models import Outbox

log = logging.getLogger("leerbot.fastlane")

FAST_METHODS = frozenset({"editMessageText", "editMessageReplyMarkup"})
# Chats with an edit in flight here; beyond that, replies go to the sender. A burst of presses
# (one getUpdates answer holds dozens) once spilled past 8 into the sender's far dearer way (a
# wake-up, a claim and a transaction in each process): at 100 presses/s p99 was 1.7-5.2 s
# with 8 and 0.4-1.0 s with 48. Telegram's 30 messages a second are kept by the buckets.
MAX_CHATS = 48
POISON_S = 60.0  # after a hand-back, a chat's replies take the normal way this long


def _now() -> datetime:
    return datetime.now(UTC)


class FastLane:
    """Sends pressed-button edits from the bot process (see the module docstring)."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        bot: Bot,
        global_rate: float,
        chat_rate: float,
        chat_burst: float = 3.0,
        wake: Callable[[], None] = lambda: None,
        metrics: DeliveryMetrics | None = None,
        clock: Callable[[], datetime] = _now,
        max_chats: int = MAX_CHATS,
    ) -> None:
        self.sessions = sessions
        self.max_chats = max_chats
        self.bot = bot
        self.wake = wake  # the sender's: it takes over what the lane hands back
        self.metrics = metrics or DeliveryMetrics()
        self.clock = clock
        self.bucket = TokenBucket(global_rate, max(1.0, global_rate / 10))
        self._chat_bucket = ChatBuckets(chat_rate, chat_burst)
        self.owner = live_owner()
        self.recorder = Recorder(sessions, lean=True)  # outcomes on the driver (store/lean.py)
        self.sent = 0
        self.handed_back = 0
        self._chats: dict[int, deque[Outbox]] = {}  # rows claimed here, per chat, in order
        self._followers: set[int] = set()  # chats whose next reply went to the sender
        self._poisoned: dict[int, float] = {}  # chat → until when it stays off the lane
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Replies being sent, handed back or recorded right now."""
        return len(self._tasks) + self.recorder.waiting

    def admits(self, chat_id: int, rows: list[tuple[str, dict[str, Any]]]) -> bool:
        """True when this reply may take the lane (the database check comes on top)."""
        if self._stopping or not rows or self._is_poisoned(chat_id):
            return False
        if any(method not in FAST_METHODS for method, _ in rows):
            return False
        if chat_id in self._chats:
            return True  # queued behind this chat's edit in flight here: order holds
        if len(self._chats) >= self.max_chats:
            return False  # this process is busy: the sender, another process, shares the work
        return self.bucket.delay() == 0 and self._chat_bucket(chat_id).delay() == 0

    def refused(self, chat_id: int) -> None:
        """The database said no (something of the chat waits for the sender)."""
        if chat_id in self._chats:
            self._followers.add(chat_id)  # it can go once ours is recorded: wake it then

    def start(self, rows: list[Outbox]) -> None:
        """Send committed lane rows in the background, after this chat's earlier ones."""
        if not rows:
            return
        chat_id = rows[0].chat_id
        ordered = sorted(rows, key=lambda r: r.id)
        if self._is_poisoned(chat_id):
            # An earlier row of this chat was just handed back: these follow it to the sender.
            self._spawn(self._hand_back([r.id for r in ordered]))
            return
        queue = self._chats.get(chat_id)
        if queue is None:
            queue = self._chats[chat_id] = deque()
            self._spawn(self._drain(chat_id, queue))
        queue.extend(ordered)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let the edits in flight finish, then hand back what is still claimed."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flushed(), timeout=grace_s)
        with contextlib.suppress(Exception):
            async with self.sessions.begin() as session:
                await repo.release_claims(session, owner=self.owner)
        owner_gone(self.owner)

    # ------------------------------------------------------------------ internals

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _is_poisoned(self, chat_id: int) -> bool:
        until = self._poisoned.get(chat_id)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._poisoned[chat_id]
        return False

    async def _drain(self, chat_id: int, queue: deque[Outbox]) -> None:
        """Send this chat's rows one after the other (rows may be added meanwhile)."""
        try:
            while queue:
                if not await self._send(queue[0]):
                    break
                queue.popleft()
        except Exception:
            log.exception("fast lane: outbox row %s failed; the sender takes over", queue[0].id)
        finally:
            if queue:
                # Whatever is left goes to the sender, and so does what this chat's updates
                # in flight still bring (they passed the database check before this).
                self._poisoned[chat_id] = time.monotonic() + POISON_S
                rows = list(queue)
                queue.clear()
                self._spawn(self._hand_back([r.id for r in rows]))
            if self._chats.get(chat_id) is queue:
                del self._chats[chat_id]
            if chat_id in self._followers:
                self._followers.discard(chat_id)
                self._spawn(self._wake_after_records())

    async def _wake_after_records(self) -> None:
        await self.recorder.flushed()
        self.wake()

    async def _send(self, row: Outbox) -> bool:
        """True when the row is done (sent, or an edit Telegram had already)."""
        self.bucket.take()
        bucket = self._chat_bucket(row.chat_id)
        bucket.take()
        started = time.monotonic()
        values: dict[str, Any] = {"id": row.id, "status": "sent", "claimed_by": None}
        values["claimed_at"] = None
        try:
            message_id = await call_api(self.bot, row.method, dict(row.payload))
        except BadRequest as exc:
            text = str(exc).lower()
            if "not modified" not in text and "message to edit not found" not in text:
                log.info("fast lane: outbox row %s refused (%s); handing back", row.id, exc)
                return False
            values.update(sent_at=self.clock(), last_error=str(exc)[:300])
        except TelegramError as exc:  # 429, 403, 5xx, network: the sender knows what to do
            log.info("fast lane: outbox row %s not sent (%s); handing back", row.id, exc)
            return False
        else:
            values.update(sent_at=self.clock(), message_id=message_id)
            call_s = time.monotonic() - started
            queued_s = (self.clock() - row.created_at).total_seconds() if row.created_at else None
            self.metrics.record_sent(row.method, call_s=call_s, queued_s=queued_s)
        bucket.forfeit()
        self.sent += 1
        # The next edit of this chat need not wait for the commit: Telegram has this one.
        self.recorder.submit(values)
        return True

    async def _hand_back(self, row_ids: list[int]) -> None:
        self.handed_back += len(row_ids)
        try:
            async with self.sessions.begin() as session:
                await repo.release_claims(session, owner=self.owner, row_ids=row_ids)
        except Exception:
            # The claims stay ours; the sender takes them back once they go stale.
            log.warning("fast lane: could not hand back rows %s", row_ids, exc_info=True)
        self.wake()
