"""Drive the sandbox like pupils do: for end-to-end tests and benchmarks (1,000 pupils/process).

One `SandboxClient` holds one HTTP client and one feed reader: a single long poll on
`/sandbox/api/feed` receives every change in every chat and hands it to the pupil (or watched
chat) it belongs to, so waiting costs nothing per pupil beyond an asyncio.Event. Pupil actions
issued in the same event-loop turn travel together in one `/sandbox/api/batch` request. With
`app=` (the sandbox serving in this loop) actions and feed skip HTTP altogether.

    async with SandboxClient("http://127.0.0.1:8081") as client:
        pupil = await client.create_pupil("Noor")
        await pupil.send("/start ABC123")
        replies = await pupil.wait_for_reply()
        await pupil.press("Ja, dat is oké")
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import httpx
import msgspec
from starlette.applications import Starlette

from sandbox.control import run_actions, wait_feed
from sandbox.errors import ApiError
from sandbox.state import SandboxState

JSON = dict[str, Any]

BATCH_LIMIT = 500  # actions per batch request
DEFAULT_QUIET = 0.15  # a bot often answers with a burst of messages; wait this long for more
FEED_WAIT = 20.0


@dataclass(frozen=True)
class BotMessage:
    """One bot message as a pupil sees it (an edit arrives as a new BotMessage, edited=True)."""

    message_id: int
    text: str | None
    buttons: list[list[str]] = field(default_factory=list)
    callback_data: dict[str, str] = field(default_factory=dict)
    kind: str = "text"
    caption: str | None = None
    file_url: str | None = None
    edited: bool = False
    chat_id: int = 0
    seq: int = 0
    urls: dict[str, str] = field(default_factory=dict)
    reply_keyboard: list[list[str]] | None = None
    remove_keyboard: bool = False

    @property
    def labels(self) -> list[str]:
        """All inline button labels, row by row."""
        return [label for row in self.buttons for label in row]

    @property
    def content(self) -> str:
        """Text or caption (empty string if neither)."""
        return self.text or self.caption or ""

    @classmethod
    def from_view(cls, view: JSON, base_url: str) -> BotMessage:
        """Build from a control API view of a message."""
        rows = view.get("buttons") or []
        data: dict[str, str] = {}
        urls: dict[str, str] = {}
        for row in rows:
            for button in row:
                label = button.get("text", "")
                if "callback_data" in button:
                    data.setdefault(label, button["callback_data"])
                if "url" in button:
                    urls.setdefault(label, button["url"])
        file_url = view.get("file_url")
        if file_url and file_url.startswith("/"):
            file_url = base_url + file_url
        return cls(
            message_id=int(view["message_id"]),
            text=view.get("text"),
            buttons=[[b.get("text", "") for b in row] for row in rows],
            callback_data=data,
            kind=view.get("kind", "text"),
            caption=view.get("caption"),
            file_url=file_url,
            edited=bool(view.get("edited")),
            chat_id=int(view.get("chat_id", 0)),
            seq=int(view.get("seq", 0)),
            urls=urls,
            reply_keyboard=view.get("reply_keyboard"),
            remove_keyboard=bool(view.get("remove_keyboard")),
        )


class ChatLog:
    """What the bot did in one chat, as the feed reports it; waiters sleep on one Event."""

    def __init__(self, chat_id: int, base_url: str) -> None:
        self.chat_id = chat_id
        self.base_url = base_url
        self.events: list[BotMessage] = []  # arrivals, in order (edits included)
        self.seqs: list[int] = []
        self.latest: dict[int, BotMessage] = {}  # message_id → newest version, first-seen order
        self.callback_answers: list[str | None] = []
        self.reply_keyboard: list[list[str]] | None = None
        self.one_time = False
        self.keyboard_seq = 0
        self.mark = 0  # seq of the last action; replies are events after it
        self._event: asyncio.Event | None = None

    def add(self, view: JSON) -> None:
        """Take one feed entry for this chat."""
        if view.get("kind") == "callback_answer":
            self.callback_answers.append(view.get("text"))
            self._wake()
            return
        if not view.get("from_bot"):
            if not view.get("edited"):
                self.used_keyboard(int(view["seq"]))
            return
        if view.get("deleted"):
            self.latest.pop(int(view["message_id"]), None)
            self._wake()
            return
        message = BotMessage.from_view(view, self.base_url)
        if "reply_keyboard" in view and not view.get("force_reply"):
            self.reply_keyboard = view["reply_keyboard"] or None
            self.one_time = bool(view.get("one_time_keyboard"))
            self.keyboard_seq = message.seq
        self.latest[message.message_id] = message
        self.events.append(message)
        self.seqs.append(message.seq)
        self._wake()

    def used_keyboard(self, seq: int) -> None:
        """The pupil wrote (message `seq`): a one-time keyboard shown before it folds away."""
        if self.one_time and self.keyboard_seq < seq:
            self.reply_keyboard = None

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def changed(self, seconds: float) -> None:
        """Sleep until the next feed entry for this chat, at most `seconds`."""
        if seconds <= 0:
            return
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def since_mark(self) -> list[BotMessage]:
        """Bot messages (and edits) that arrived after the last action."""
        return self.events[bisect.bisect_right(self.seqs, self.mark) :]

    async def wait_replies(self, *, within: float, quiet: float, who: str) -> list[BotMessage]:
        """At least one message after the mark (within `within` s), then a `quiet` s lull."""
        deadline = time.monotonic() + within
        while not self.since_mark():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                last = self.events[-1].content[:80] if self.events else "nothing yet"
                raise AssertionError(
                    f"{who}: no reply from the bot within {within:.1f}s "
                    f"(last bot message: {last!r})"
                )
            await self.changed(remaining)
        # Callback answers also wake us, so measure the lull by the clock, not by wake-ups.
        while quiet > 0 and time.monotonic() < deadline:
            count = len(self.events)
            lull_ends = time.monotonic() + quiet
            while len(self.events) == count and (left := lull_ends - time.monotonic()) > 0:
                await self.changed(left)
            if len(self.events) == count:
                break
        replies = self.since_mark()
        self.mark = replies[-1].seq
        return replies

    async def wait_match(
        self, predicate: Callable[[BotMessage], bool], *, within: float, who: str
    ) -> BotMessage:
        """The first message after the mark that matches; the mark moves past it."""
        deadline = time.monotonic() + within
        checked = bisect.bisect_right(self.seqs, self.mark)
        while True:
            for message in self.events[checked:]:
                if predicate(message):
                    self.mark = message.seq
                    return message
            checked = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m.content[:60] for m in self.since_mark()]
                raise AssertionError(
                    f"{who}: no matching bot message within {within:.1f}s; "
                    f"seen since the last action: {seen}"
                )
            await self.changed(remaining)


class SimulatedPupil:
    """One simulated Telegram user in a private chat with the bot."""

    def __init__(self, client: SandboxClient, user: JSON) -> None:
        self.client = client
        self.user_id: int = int(user["id"])
        self.chat_id: int = int(user.get("chat_id", self.user_id))
        self.name: str = str(user.get("first_name", ""))
        self.log = client.watch(self.chat_id)

    def __repr__(self) -> str:
        return f"SimulatedPupil({self.name!r}, user_id={self.user_id})"

    @property
    def messages(self) -> list[BotMessage]:
        """Every bot message seen in this chat, newest version of each, oldest first."""
        return list(self.log.latest.values())

    @property
    def last_buttons(self) -> list[list[str]]:
        """Inline button rows of the newest bot message that has any (empty if none)."""
        for message in reversed(self.log.latest.values()):
            if message.buttons:
                return message.buttons
        return []

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """The reply keyboard the bot currently shows (None if none)."""
        return self.log.reply_keyboard

    @property
    def callback_answers(self) -> list[str | None]:
        """Texts of answerCallbackQuery calls for this pupil's presses, in order."""
        return self.log.callback_answers

    def _mark(self, seq: int) -> None:
        self.log.mark = max(self.log.mark, seq)

    async def send(self, text: str) -> int:
        """Type and send a text message; returns its message_id."""
        reply = await self.client.act("send", {"user_id": self.user_id, "text": text})
        self._mark(reply["seq"])
        self.log.used_keyboard(reply["seq"])
        return int(reply["message_id"])

    async def press(self, label: str, *, wait: float = 1.0) -> None:
        """Press the button `label` on the newest bot message that has it (or the reply keyboard).

        A message the bot just sent may still be on its way through the feed, so this waits up
        to `wait` seconds for the button, then raises AssertionError listing the labels on offer.
        """
        deadline = time.monotonic() + wait
        while True:
            for message in reversed(self.log.latest.values()):
                if label in message.callback_data:
                    await self.press_on(message, label)
                    return
            keyboard = self.log.reply_keyboard or []
            if any(label in row for row in keyboard):
                await self.send(label)  # a reply-keyboard button just sends its label as text
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self.log.changed(left)
        offered = [m.labels for m in list(self.log.latest.values())[-3:] if m.buttons]
        raise AssertionError(
            f"{self.name}: no button {label!r}; inline buttons on recent bot "
            f"messages: {offered}; reply keyboard: {keyboard}"
        )

    async def press_on(self, message: BotMessage, label: str) -> None:
        """Press `label` on this specific (possibly old) message."""
        data = message.callback_data.get(label)
        if data is None:
            raise AssertionError(
                f"{self.name}: message {message.message_id} has no callback "
                f"button {label!r}; it has {message.labels}"
            )
        reply = await self.client.act(
            "press",
            {
                "user_id": self.user_id,
                "message_id": message.message_id,
                "callback_data": data,
                "chat_id": message.chat_id or self.chat_id,
            },
        )
        self._mark(reply["seq"])

    async def send_media(self, kind: str, *, caption: str | None = None) -> int:
        """Send a sticker, photo, voice, document, location, poll, contact or video."""
        body: JSON = {"user_id": self.user_id, "kind": kind}
        if caption is not None:
            body["caption"] = caption
        reply = await self.client.act("send_media", body)
        self._mark(reply["seq"])
        return int(reply["message_id"])

    async def edit(self, message_id: int, text: str) -> None:
        """Edit one of this pupil's own messages (the bot gets an edited_message)."""
        reply = await self.client.act(
            "edit", {"user_id": self.user_id, "message_id": message_id, "text": text}
        )
        self._mark(reply["seq"])

    async def block(self, blocked: bool = True) -> None:
        """Block (or unblock) the bot."""
        await self.client.act("block", {"user_id": self.user_id, "blocked": blocked})

    # The waits take `timeout` like Playwright's expect(): a deadline, not a cancel scope.
    async def wait_for_reply(
        self,
        timeout: float = 5.0,
        *,  # see above
        quiet: float = DEFAULT_QUIET,
    ) -> list[BotMessage]:
        """New bot messages since the last action: at least one, then a `quiet` s lull."""
        return await self.log.wait_replies(within=timeout, quiet=quiet, who=self.name)

    async def wait_for(
        self, predicate: Callable[[BotMessage], bool], timeout: float = 5.0
    ) -> BotMessage:  # see above
        """The first bot message since the last action that matches `predicate`."""
        return await self.log.wait_match(predicate, within=timeout, who=self.name)


class SandboxClient:
    """The control API of one sandbox over one httpx.AsyncClient (cheap for 1,000 pupils)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 100,
        app: Starlette | None = None,
    ) -> None:
        """`app`: the sandbox app when it runs in this event loop (as `running_sandbox` does);
        pupil actions and the feed then skip HTTP entirely, which keeps a 1,000-pupil
        benchmark from measuring the driver instead of the bot."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._local: SandboxState | None = app.state.sandbox if app is not None else None
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=httpx.ASGITransport(app=app) if app is not None else None,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        # The two requests every pupil action costs (the batch and the feed) go through
        # aiohttp: httpx spent about 1.5 ms of CPU per request, which on a 2-core benchmark
        # machine is taken from the bot being measured.
        self._max_connections = max_connections
        self._timeout = timeout
        self._aio: aiohttp.ClientSession | None = None
        self._chats: dict[int, ChatLog] = {}
        self._pending: list[tuple[str, JSON, asyncio.Future[JSON]]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._feed_task: asyncio.Task[None] | None = None
        self._feed_ready: asyncio.Event | None = None
        self._feed_error: BaseException | None = None

    async def __aenter__(self) -> SandboxClient:
        await self._ensure_feed()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the feed reader and close the HTTP client."""
        if self._feed_task is not None:
            self._feed_task.cancel()
            # A reader that already failed has reported it through _ensure_feed.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._feed_task
            self._feed_task = None
        await self.http.aclose()
        if self._aio is not None:
            await self._aio.close()
            self._aio = None

    # -------------------------------------------------------------- plumbing

    def _params(self, extra: JSON | None = None) -> JSON:
        params = dict(extra or {})
        if self.token:
            params["token"] = self.token
        return params

    async def post(self, path: str, body: JSON) -> JSON:
        """POST JSON to the control API; a clear AssertionError on a non-2xx answer."""
        await self._ensure_feed()
        if self.token:
            body = {**body, "token": self.token}
        reply = await self.http.post(path, json=body)
        return self._check(reply, path)

    async def act(self, op: str, body: JSON) -> JSON:
        """One pupil action (send, press, send_media, edit, block) through the batcher.

        Actions issued in the same event-loop turn share one POST /sandbox/api/batch, so a
        thousand pupils cost a handful of requests, not a thousand.
        """
        await self._ensure_feed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JSON] = loop.create_future()
        self._pending.append((op, body, future))
        if self._flush_handle is None:
            self._flush_handle = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_handle = None
        items, self._pending = self._pending, []
        for start in range(0, len(items), BATCH_LIMIT):
            task = asyncio.create_task(self._send_batch(items[start : start + BATCH_LIMIT]))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _send_batch(self, items: list[tuple[str, JSON, asyncio.Future[JSON]]]) -> None:
        actions = [{**action, "op": op} for op, action, _ in items]
        try:
            if self._local is not None:
                results = run_actions(self._local, self._local.control_bot(self.token), actions)
            else:
                body: JSON = {"actions": actions}
                if self.token:
                    body["token"] = self.token
                results = (await self._fast_call("POST", "/sandbox/api/batch", body=body))[
                    "results"
                ]
        except (aiohttp.ClientError, TimeoutError, AssertionError, ApiError) as exc:
            for _, _, future in items:
                if not future.done():
                    future.set_exception(AssertionError(f"sandbox batch failed: {exc!r}"))
            return
        for (op, _, future), result in zip(items, results, strict=True):
            if future.done():
                continue  # the waiting pupil was cancelled
            if "error" in result:
                future.set_exception(
                    AssertionError(f"sandbox {op}: HTTP {result.get('status')}: {result['error']}")
                )
            else:
                future.set_result(result)

    def _fast(self) -> aiohttp.ClientSession:
        if self._aio is None:
            self._aio = aiohttp.ClientSession(
                base_url=self.base_url,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
            )
        return self._aio

    async def _fast_call(
        self,
        method: str,
        path: str,
        *,
        body: JSON | None = None,
        params: JSON | None = None,
        timeout: float | None = None,
    ) -> JSON:
        """One control API request over aiohttp; AssertionError on a non-2xx answer."""
        data = msgspec.json.encode(body) if body is not None else None
        async with self._fast().request(
            method,
            path,
            data=data,
            params=params,
            headers={"content-type": "application/json"} if data is not None else None,
            timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
        ) as reply:
            raw = await reply.read()
            if reply.status >= 400:
                raise AssertionError(
                    f"sandbox {path}: HTTP {reply.status}: {raw.decode(errors='replace')}"
                )
        result: JSON = msgspec.json.decode(raw)
        return result

    async def get(self, path: str, params: JSON | None = None) -> JSON:
        """GET from the control API."""
        reply = await self.http.get(path, params=self._params(params))
        return self._check(reply, path)

    @staticmethod
    def _check(reply: httpx.Response, path: str) -> JSON:
        if reply.status_code >= 400:
            raise AssertionError(f"sandbox {path}: HTTP {reply.status_code}: {reply.text}")
        data: JSON = reply.json()
        return data

    def watch(self, chat_id: int) -> ChatLog:
        """The ChatLog the feed fills for this chat (created on first call)."""
        log = self._chats.get(chat_id)
        if log is None:
            log = self._chats[chat_id] = ChatLog(chat_id, self.base_url)
        return log

    async def _ensure_feed(self) -> None:
        if self._feed_error is not None:
            raise AssertionError(f"sandbox feed reader failed: {self._feed_error!r}")
        if self._feed_task is None:
            self._feed_ready = asyncio.Event()
            self._feed_task = asyncio.create_task(
                self._read_feed(self._feed_ready), name="sandbox-feed"
            )
        if self._feed_ready is not None:
            await self._feed_ready.wait()
        if self._feed_error is not None:
            raise AssertionError(f"sandbox feed reader failed: {self._feed_error!r}")

    async def _read_feed(self, ready: asyncio.Event) -> None:
        """One long poll for the whole sandbox; entries go to the chats being watched."""
        try:
            head = await self.get("/sandbox/api/feed")
            cursor = int(head["next"])
            ready.set()
            failures = 0
            while True:
                try:
                    events = await self._next_events(cursor)
                except (aiohttp.ClientError, TimeoutError, AssertionError):
                    failures += 1
                    if failures > 50:
                        raise
                    await asyncio.sleep(min(1.0, 0.05 * failures))
                    continue
                failures = 0
                for view in events:
                    log = self._chats.get(view.get("chat_id", 0))
                    if log is not None:
                        log.add(view)
                if events:
                    cursor = max(cursor, int(events[-1]["seq"]))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._feed_error = exc
            ready.set()
            raise

    async def _next_events(self, cursor: int) -> list[JSON]:
        if self._local is not None:
            state = self._local
            return await wait_feed(
                state, state.control_bot(self.token), after=cursor, wait=FEED_WAIT
            )
        reply = await self._fast_call(
            "GET",
            "/sandbox/api/feed",
            params=self._params({"after": cursor, "wait": FEED_WAIT}),
            timeout=FEED_WAIT + 10.0,
        )
        events: list[JSON] = reply["events"]
        return events

    # -------------------------------------------------------------- pupils and chats

    async def create_pupil(
        self,
        name: str,
        *,
        username: str | None = None,
        language_code: str | None = "nl",
        user_id: int | None = None,
    ) -> SimulatedPupil:
        """A new simulated user with a private chat, ready to talk to the bot."""
        body: JSON = {"first_name": name, "language_code": language_code}
        if username is not None:
            body["username"] = username
        if user_id is not None:
            body["user_id"] = user_id
        user = await self.act("create_user", body)
        return SimulatedPupil(self, user)

    async def create_pupils(self, count: int, *, prefix: str = "Leerling") -> list[SimulatedPupil]:
        """`count` pupils named "<prefix> 1" … (created in a few batched requests)."""
        return list(
            await asyncio.gather(*(self.create_pupil(f"{prefix} {i + 1}") for i in range(count)))
        )

    async def create_chat(
        self, *, chat_type: str = "group", title: str | None = None, chat_id: int | None = None
    ) -> JSON:
        """A group, supergroup or channel chat (the bot is a member)."""
        body: JSON = {"chat_type": chat_type}
        if title is not None:
            body["title"] = title
        if chat_id is not None:
            body["chat_id"] = chat_id
        return await self.post("/sandbox/api/chats", body)

    async def send_group_message(
        self, *, user_id: int, chat_id: int, text: str, chat_type: str | None = None
    ) -> JSON:
        """A user writes in a group chat (created on first use); bot replies are watched."""
        log = self.watch(chat_id)
        body: JSON = {"user_id": user_id, "chat_id": chat_id, "text": text}
        if chat_type is not None:
            body["chat_type"] = chat_type
        reply = await self.act("send", body)
        log.mark = max(log.mark, int(reply["seq"]))
        return reply

    async def wait_chat_messages(
        self,
        chat_id: int,
        *,
        timeout: float = 5.0,  # a deadline
        quiet: float = DEFAULT_QUIET,
    ) -> list[BotMessage]:
        """Bot messages in a watched chat since the last action there (like wait_for_reply)."""
        return await self.watch(chat_id).wait_replies(
            within=timeout, quiet=quiet, who=f"chat {chat_id}"
        )

    async def send_raw_update(self, update: JSON) -> int:
        """Queue any JSON object as an update (hostile or unusual input); returns update_id."""
        reply = await self.http.post("/sandbox/api/update", json=update, params=self._params())
        return int(self._check(reply, "/sandbox/api/update")["update_id"])

    async def chat_messages(self, chat_id: int, *, after: int = 0, wait: float = 0.0) -> JSON:
        """The raw timeline of a chat (both sides, edits, callback answers)."""
        return await self.get(
            f"/sandbox/api/chats/{chat_id}/messages", {"after": after, "wait": wait}
        )

    # -------------------------------------------------------------- steering and inspection

    async def config(self, **settings: Any) -> JSON:
        """Rate limits and faults, e.g. config(rate_limits=True) or
        config(faults=[{"status": 429, "count": 2, "retry_after": 3}])."""
        if not settings:
            return await self.get("/sandbox/api/config")
        reply = await self.http.post("/sandbox/api/config", json=settings)
        return self._check(reply, "/sandbox/api/config")

    async def log(
        self,
        *,
        after: int = 0,
        method: str | None = None,
        chat_id: int | None = None,
        limit: int = 10_000,
    ) -> list[JSON]:
        """Bot API calls the bot made (method, chat_id, time, outcome, message_id)."""
        params: JSON = {"after": after, "limit": limit}
        if method is not None:
            params["method"] = method
        if chat_id is not None:
            params["chat_id"] = chat_id
        entries: list[JSON] = (await self.get("/sandbox/api/log", params))["entries"]
        return entries

    async def stats(self) -> JSON:
        """Counters: updates queued/delivered, sends ok, 429s, 403s, …"""
        return await self.get("/sandbox/api/stats")

    async def reset(self) -> None:
        """Forget all users, chats, files, faults and the log (existing pupils go stale)."""
        reply = await self.http.post("/sandbox/api/reset")
        self._check(reply, "/sandbox/api/reset")
        self._chats.clear()
