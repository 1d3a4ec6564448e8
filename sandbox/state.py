"""In-memory world of the sandbox: bots, users, chats, messages, update queues, limits, log.

Everything is per chat or per bot so the cost of a request never grows with the number of
pupils: messages live in a per-chat ordered dict, waiters sleep on a per-chat `Signal`, and the
driver reads one append-only feed per bot from a cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.errors import ApiError

JSON = dict[str, Any]

TOKEN_RE = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{1,100}$")
FIRST_USER_ID = 700_000_001
FEED_LIMIT = 400_000  # feed entries kept per bot; the driver reads far behind the head never
LOG_LIMIT = 1_000_000

# Methods that put something in a chat: counted by rate limits, faults and `sends_ok`.
SEND_METHODS = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendsticker",
        "sendvoice",
        "sendvideo",
        "sendaudio",
        "sendanimation",
        "editmessagetext",
        "editmessagereplymarkup",
        "editmessagecaption",
        "copymessage",
        "forwardmessage",
        "sendmediagroup",
    }
)

# Update types Telegram sends when allowed_updates is empty (chat_member and reactions are
# opt-in on real Telegram too).
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "purchased_paid_media",
        "removed_chat_boost",
        "chat_boost",
    }
)
ALL_UPDATE_TYPES = DEFAULT_UPDATE_TYPES | {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}

MESSAGE_KINDS = (
    "text",
    "photo",
    "document",
    "sticker",
    "voice",
    "video",
    "audio",
    "animation",
    "location",
    "poll",
    "contact",
    "video_note",
    "dice",
)

CALLBACK_TIMEOUT = 15.0  # Telegram refuses answerCallbackQuery for presses older than this
WEBHOOK_RETRY_MAX = 3.0


class Signal:
    """Wakes everyone waiting for a change; the Event exists only while someone waits."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        """Wake all current waiters."""
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, seconds: float) -> None:
        """Sleep until the next notify() or for `seconds`, whichever is first."""
        if seconds <= 0:
            return
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


@dataclass(slots=True)
class User:
    """A simulated Telegram user (a pupil in the web chat or the driver)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "nl"

    def to_tg(self) -> JSON:
        """The Bot API User object."""
        out: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        return out


@dataclass(slots=True)
class StoredFile:
    """Bytes behind a file_id; `url` is set for files sent by URL (never fetched)."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str | None = None
    file_name: str | None = None
    url: str | None = None
    width: int = 0
    height: int = 0

    def to_tg(self) -> JSON:
        """The Bot API File object (getFile)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass(slots=True)
class Record:
    """One entry in a chat's timeline: a message (either side) or a callback answer."""

    key: int | str
    seq: int
    kind: str
    from_bot: bool
    tg: JSON
    view: JSON = field(default_factory=dict)
    deleted: bool = False
    edited: bool = False
    keyboard: JSON | None = None  # reply keyboard / remove / force_reply sent with a message


class Chat:
    """A chat as one bot sees it: timeline, reply keyboard, typing state and rate bucket."""

    __slots__ = (
        "action",
        "action_until",
        "blocked",
        "bucket_time",
        "first_name",
        "id",
        "next_message_id",
        "penalty_until",
        "records",
        "reply_keyboard",
        "signal",
        "started",
        "title",
        "tokens",
        "type",
        "user_id",
        "username",
    )

    def __init__(
        self,
        chat_id: int,
        chat_type: str,
        *,
        title: str | None = None,
        user: User | None = None,
        username: str | None = None,
    ) -> None:
        self.id = chat_id
        self.type = chat_type
        self.title = title
        self.user_id = user.id if user else None
        self.first_name = user.first_name if user else None
        self.username = username or (user.username if user else None)
        self.started = False
        self.blocked = False
        self.next_message_id = 1
        self.records: OrderedDict[int | str, Record] = OrderedDict()
        self.signal = Signal()
        self.reply_keyboard: JSON | None = None
        self.action: str | None = None
        self.action_until = 0.0
        self.tokens = -1.0  # rate bucket; negative means "full, not used yet"
        self.bucket_time = 0.0
        self.penalty_until = 0.0

    def to_tg(self) -> JSON:
        """The Bot API Chat object."""
        out: JSON = {"id": self.id, "type": self.type}
        if self.type == "private":
            out["first_name"] = self.first_name or ""
        else:
            out["title"] = self.title or ""
        if self.username:
            out["username"] = self.username
        return out

    def last_seq(self) -> int:
        """The sequence number of the newest change in this chat (0 if none)."""
        if not self.records:
            return 0
        return next(reversed(self.records.values())).seq

    def after(self, seq: int) -> list[Record]:
        """Records changed after `seq`, oldest first; walks back from the newest only."""
        found: list[Record] = []
        for record in reversed(self.records.values()):
            if record.seq <= seq:
                break
            found.append(record)
        found.reverse()
        return found

    def take_message_id(self) -> int:
        """The next message_id in this chat (both sides share one counter, as on Telegram)."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass(slots=True)
class Webhook:
    """An active setWebhook configuration."""

    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    generation: int
    semaphore: asyncio.Semaphore
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(slots=True)
class PendingCallback:
    """A callback_query waiting for answerCallbackQuery."""

    chat_id: int
    message_id: int | None
    created: float


@dataclass(slots=True)
class Fault:
    """An injected failure: the next `remaining` matching calls, or all until `until`."""

    status: int
    retry_after: int
    remaining: int | None
    until: float | None
    methods: frozenset[str] | None  # lower-case method names; None = the send methods

    def matches(self, method: str) -> bool:
        """Does this fault apply to a call of `method` (lower-case)?"""
        if self.methods is None:
            return method in SEND_METHODS
        return "*" in self.methods or method in self.methods

    def to_json(self, now: float) -> JSON:
        """For the control API."""
        return {
            "status": self.status,
            "retry_after": self.retry_after,
            "remaining": self.remaining,
            "seconds_left": None if self.until is None else max(0.0, self.until - now),
            "methods": None if self.methods is None else sorted(self.methods),
        }


@dataclass(slots=True)
class Limits:
    """Telegram's flood limits, switchable at runtime."""

    enabled: bool = False
    chat_rate: float = 1.0  # messages per second per private chat
    chat_burst: float = 3.0
    group_per_minute: float = 20.0
    global_rate: float = 30.0  # messages per second per bot
    global_burst: float = 30.0

    def to_json(self) -> JSON:
        """For the control API."""
        return {
            "rate_limits": self.enabled,
            "chat_rate": self.chat_rate,
            "chat_burst": self.chat_burst,
            "group_per_minute": self.group_per_minute,
            "global_rate": self.global_rate,
            "global_burst": self.global_burst,
        }


STAT_KEYS = (
    "requests",
    "updates_queued",
    "updates_delivered",
    "sends_ok",
    "sends_failed",
    "http_400",
    "http_403",
    "http_429",
    "http_502",
    "webhook_posts",
    "webhook_failures",
)


def new_stats() -> dict[str, int]:
    """A zeroed set of counters."""
    return dict.fromkeys(STAT_KEYS, 0)


class BotState:
    """One bot token: identity, update queue, webhook, chats, feed and counters."""

    def __init__(self, token: str | None, *, username: str) -> None:
        self.token = token
        self.id = 0
        self.username = username
        self.user: JSON = {}
        if token is not None:
            self.claim(token)
        self.pending: OrderedDict[int, JSON] = OrderedDict()
        self.delivered_upto = 0
        self.update_signal = Signal()
        self.allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self.poll_generation = 0
        self.webhook: Webhook | None = None
        self.webhook_generation = 0
        self.lanes: dict[Any, deque[int]] = {}
        self.lane_tasks: dict[Any, asyncio.Task[None]] = {}
        self.chats: dict[int, Chat] = {}
        self.chat_usernames: dict[str, int] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.menu_buttons: dict[int | None, JSON] = {}
        self.profile: dict[str, str] = {}
        self.callbacks: dict[str, PendingCallback] = {}
        self.callback_order: deque[tuple[float, str]] = deque()
        self.seq = 0
        self.feed: deque[JSON] = deque()
        self.feed_base = 1  # seq of feed[0]
        self.feed_signal = Signal()
        self.tokens = -1.0
        self.bucket_time = 0.0
        self.penalty_until = 0.0
        self.stats = new_stats()
        self.shared_groups: dict[str, int] = {}

    def claim(self, token: str) -> None:
        """Give this bot its identity from a token (`<bot id>:<secret>`)."""
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.user = {
            "id": self.id,
            "is_bot": True,
            "first_name": "Leerbot (sandbox)",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def next_seq(self) -> int:
        """A new sequence number for a change in any chat of this bot."""
        self.seq += 1
        return self.seq

    def publish(self, chat: Chat, record: Record) -> None:
        """Record a new or changed timeline entry: feed, per-chat waiters, feed waiters."""
        chat.records[record.key] = record
        chat.records.move_to_end(record.key)
        if self.feed and self.feed_base + len(self.feed) != record.seq:
            # Sequence numbers are handed out only here, so the feed stays contiguous.
            raise RuntimeError("sandbox feed out of order")
        if not self.feed:
            self.feed_base = record.seq
        self.feed.append(record.view)
        if len(self.feed) > FEED_LIMIT:
            for _ in range(FEED_LIMIT // 4):
                self.feed.popleft()
            self.feed_base += FEED_LIMIT // 4
        chat.signal.notify()
        self.feed_signal.notify()

    def feed_after(self, seq: int, limit: int) -> list[JSON]:
        """Feed entries with a sequence number above `seq` (at most `limit`)."""
        start = max(0, seq + 1 - self.feed_base)
        if start >= len(self.feed):
            return []
        stop = min(len(self.feed), start + limit)
        if start == 0 and stop == len(self.feed):
            return list(self.feed)
        return [self.feed[i] for i in range(start, stop)]

    def clear(self) -> None:
        """Forget chats, queue and settings; keep identity and every counter monotonic."""
        self.pending.clear()
        self.allowed_updates = DEFAULT_UPDATE_TYPES
        self.webhook = None
        self.webhook_generation += 1
        for task in self.lane_tasks.values():
            task.cancel()
        self.lane_tasks.clear()
        self.lanes.clear()
        for chat in self.chats.values():
            chat.signal.notify()
        self.chats.clear()
        self.chat_usernames.clear()
        self.commands.clear()
        self.menu_buttons.clear()
        self.profile.clear()
        self.callbacks.clear()
        self.callback_order.clear()
        self.tokens = -1.0
        self.penalty_until = 0.0
        self.stats = new_stats()
        self.shared_groups.clear()
        self.update_signal.notify()
        self.feed_signal.notify()


def take_tokens(holder: Chat | BotState, *, rate: float, burst: float, now: float) -> float:
    """Refill a token bucket; returns the tokens available now (not yet taken)."""
    if holder.tokens < 0:
        holder.tokens = burst
    else:
        holder.tokens = min(burst, holder.tokens + (now - holder.bucket_time) * rate)
    holder.bucket_time = now
    return holder.tokens


def update_type(update: JSON) -> str | None:
    """The kind of an update: its one key besides update_id."""
    for key in update:
        if key != "update_id":
            return key
    return None


def update_lane(update: JSON) -> Any:
    """Webhook ordering key: the chat an update belongs to (or its sender)."""
    for key in (
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "my_chat_member",
        "chat_member",
    ):
        body = update.get(key)
        if isinstance(body, dict) and isinstance(body.get("chat"), dict):
            return body["chat"].get("id")
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return message["chat"].get("id")
        sender = query.get("from")
        if isinstance(sender, dict):
            return sender.get("id")
    return "misc"


def message_kind(tg: JSON) -> str:
    """text / photo / document / … for a Bot API Message."""
    for kind in MESSAGE_KINDS:
        if kind in tg:
            return kind
    return "other"


def _buttons(markup: JSON | None) -> list[list[JSON]]:
    if not markup or "inline_keyboard" not in markup:
        return []
    return [
        [{k: v for k, v in b.items() if k in ("text", "callback_data", "url")} for b in row]
        for row in markup["inline_keyboard"]
    ]


class SandboxState:
    """All sandbox data for one server process (exposed as `app.state.sandbox`)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        rate_limits: bool = False,
        bot_username: str = "leerbot_sandbox_bot",
    ) -> None:
        if token is not None and not TOKEN_RE.match(token):
            raise ValueError(f"sandbox token {token!r} is not of the form <digits>:<secret>")
        self.fixed_token = token
        self.bot_username = bot_username
        self.bots: dict[str, BotState] = {}
        self.default_bot: BotState | None = None
        if token is not None:
            self.default_bot = self.bots[token] = BotState(token, username=bot_username)
        self.users: dict[int, User] = {}
        self.next_user_id = FIRST_USER_ID
        self.next_update_id = 1
        self.next_group_id = 1001
        self.next_callback_id = 1
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.limits = Limits(enabled=rate_limits)
        self.faults: list[Fault] = []
        self.log: deque[JSON] = deque()
        self.log_base = 1
        self.log_seq = 0
        self.stats = new_stats()
        self.http: httpx.AsyncClient | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.closing = False

    def close_waiters(self) -> None:
        """Make every long poll answer now (server shutdown must not wait for them)."""
        self.closing = True
        bots = list(self.bots.values())
        if self.default_bot is not None and self.default_bot not in bots:
            bots.append(self.default_bot)
        for bot in bots:
            bot.update_signal.notify()
            bot.feed_signal.notify()
            for chat in bot.chats.values():
                chat.signal.notify()

    # -------------------------------------------------------------- bots

    def bot_for_token(self, token: str) -> BotState:
        """The bot behind a Bot API token, created on first use when any token is accepted."""
        bot = self.bots.get(token)
        if bot is not None:
            return bot
        if not TOKEN_RE.match(token):
            raise ApiError(404, "Not Found")
        if self.fixed_token is not None:
            raise ApiError(401, "Unauthorized")
        if self.default_bot is not None and self.default_bot.token is None:
            # Pupils wrote before any bot connected: the first bot inherits their chats.
            bot = self.default_bot
            bot.claim(token)
        else:
            bot = BotState(token, username=self.bot_username)
            self.default_bot = bot
        self.bots[token] = bot
        return bot

    def control_bot(self, token: str | None) -> BotState:
        """The bot a control API call is about: the given token, else the newest bot."""
        if token:
            return self.bot_for_token(token)
        if self.default_bot is None:
            self.default_bot = BotState(None, username=self.bot_username)
        return self.default_bot

    # -------------------------------------------------------------- users and chats

    def create_user(
        self,
        *,
        first_name: str,
        user_id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "nl",
    ) -> User:
        """A new (or refreshed) simulated user."""
        if user_id is None:
            user_id = self.next_user_id
            self.next_user_id += 1
        else:
            self.next_user_id = max(self.next_user_id, user_id + 1)
        user = User(
            id=user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self.users[user_id] = user
        return user

    def user(self, user_id: int) -> User:
        """A known user, or a control API 404."""
        user = self.users.get(user_id)
        if user is None:
            raise ApiError(404, f"no user {user_id}; create it with POST /sandbox/api/users")
        return user

    def private_chat(self, bot: BotState, user: User) -> Chat:
        """The private chat between a user and the bot (chat id = user id)."""
        chat = bot.chats.get(user.id)
        if chat is None:
            chat = bot.chats[user.id] = Chat(user.id, "private", user=user)
        return chat

    def group_chat(
        self,
        bot: BotState,
        *,
        chat_id: int | None,
        chat_type: str,
        title: str | None = None,
        username: str | None = None,
    ) -> Chat:
        """A group, supergroup or channel; created on first use (ids are negative)."""
        if chat_type not in ("group", "supergroup", "channel"):
            raise ApiError(400, f"chat_type must be group, supergroup or channel: {chat_type!r}")
        if chat_id is None:
            chat_id = self.new_group_id(chat_type)
        chat = bot.chats.get(chat_id)
        if chat is None:
            if chat_id >= 0:
                raise ApiError(400, "group and channel chat ids are negative")
            chat = Chat(
                chat_id, chat_type, title=title or f"Sandbox {chat_type}", username=username
            )
            chat.started = True  # the bot is a member of every sandbox group
            bot.chats[chat_id] = chat
            if username:
                bot.chat_usernames[username.lower()] = chat_id
        return chat

    def new_group_id(self, chat_type: str) -> int:
        """A fresh negative id in Telegram's style (-100… for supergroups and channels)."""
        number = self.next_group_id
        self.next_group_id += 1
        if chat_type == "group":
            return -number
        return -1_000_000_000_000 - number

    def resolve_chat(self, bot: BotState, chat_ref: Any) -> Chat:
        """The chat a Bot API call names, with Telegram's errors for unreachable chats."""
        if chat_ref is None or chat_ref == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat_id: int
        if isinstance(chat_ref, str) and chat_ref.startswith("@"):
            found = bot.chat_usernames.get(chat_ref[1:].lower())
            if found is None:
                raise ApiError(400, "Bad Request: chat not found")
            chat_id = found
        else:
            try:
                chat_id = int(chat_ref)
            except (TypeError, ValueError):
                raise ApiError(400, "Bad Request: chat not found") from None
        chat = bot.chats.get(chat_id)
        if chat is None:
            if chat_id in self.users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise ApiError(400, "Bad Request: chat not found")
        if chat.type == "private":
            if chat.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    # -------------------------------------------------------------- timeline

    def add_record(
        self,
        bot: BotState,
        chat: Chat,
        *,
        key: int | str,
        kind: str,
        from_bot: bool,
        tg: JSON,
        keyboard: JSON | None = None,
    ) -> Record:
        """Append a message or callback answer to a chat and publish it."""
        record = Record(
            key=key, seq=bot.next_seq(), kind=kind, from_bot=from_bot, tg=tg, keyboard=keyboard
        )
        record.view = self.view(chat, record)
        if from_bot and kind != "callback_answer":
            chat.action = None  # a sent message ends "typing…", as in the Telegram apps
            if keyboard is not None and "force_reply" not in keyboard:
                chat.reply_keyboard = keyboard if "keyboard" in keyboard else None
        bot.publish(chat, record)
        return record

    def bump(self, bot: BotState, chat: Chat, record: Record) -> None:
        """Publish a change to an existing record (edit, delete) under a new sequence number."""
        record.seq = bot.next_seq()
        record.view = self.view(chat, record)
        bot.publish(chat, record)

    def view(self, chat: Chat, record: Record) -> JSON:
        """The control API's view of a record (used by the web chat and the driver)."""
        tg = record.tg
        if record.kind == "callback_answer":
            return {
                "seq": record.seq,
                "chat_id": chat.id,
                "kind": "callback_answer",
                "from_bot": True,
                "outgoing": False,
                "text": tg.get("text"),
                "show_alert": bool(tg.get("show_alert")),
                "message_id": tg.get("message_id"),
                "key": str(record.key),
            }
        view: JSON = {
            "seq": record.seq,
            "chat_id": chat.id,
            "key": str(record.key),
            "message_id": tg.get("message_id"),
            "from_bot": record.from_bot,
            "outgoing": not record.from_bot,
            "kind": record.kind,
            "text": tg.get("text"),
            "entities": tg.get("entities", []),
            "caption": tg.get("caption"),
            "caption_entities": tg.get("caption_entities", []),
            "buttons": _buttons(tg.get("reply_markup")),
            "date": tg.get("date"),
            "edited": record.edited,
            "deleted": record.deleted,
            "sender": (tg.get("from") or {}).get("first_name"),
        }
        keyboard = record.keyboard
        if keyboard is not None:
            view["reply_keyboard"] = (
                [[b["text"] for b in row] for row in keyboard["keyboard"]]
                if "keyboard" in keyboard
                else None
            )
            view["remove_keyboard"] = bool(keyboard.get("remove_keyboard"))
            view["force_reply"] = bool(keyboard.get("force_reply"))
            view["one_time_keyboard"] = bool(keyboard.get("one_time_keyboard"))
        reply = tg.get("reply_to_message")
        if isinstance(reply, dict):
            view["reply_to_message_id"] = reply.get("message_id")
        file_id = _file_id_of(tg, record.kind)
        if file_id is not None:
            stored = self.files.get(file_id)
            if stored is not None:
                view["file_url"] = stored.url or f"/sandbox/api/files/{stored.file_id}"
                view["file_name"] = stored.file_name
                view["mime_type"] = stored.mime_type
        return view

    # -------------------------------------------------------------- updates

    def enqueue_update(self, bot: BotState, update: JSON) -> int:
        """Queue an update for the bot (getUpdates or webhook); returns its update_id."""
        given = update.get("update_id")
        if isinstance(given, int) and not isinstance(given, bool):
            update_id = given
            self.next_update_id = max(self.next_update_id, given + 1)
        else:
            update_id = self.next_update_id
            self.next_update_id += 1
            update = {"update_id": update_id, **update}
        bot.pending[update_id] = update
        bot.stats["updates_queued"] += 1
        self.stats["updates_queued"] += 1
        bot.update_signal.notify()
        if bot.webhook is not None:
            self._route_to_webhook(bot, update_id, update)
        return update_id

    def new_callback_id(self) -> str:
        """A fresh callback query id (a string of digits, like Telegram's)."""
        number = self.next_callback_id
        self.next_callback_id += 1
        return str(4_000_000_000_000_000 + number)

    def take_updates(self, bot: BotState, *, limit: int) -> list[JSON]:
        """Pending updates the bot accepts (drops those it opted out of), oldest first."""
        batch: list[JSON] = []
        dropped: list[int] = []
        for update_id, update in bot.pending.items():
            kind = update_type(update)
            if kind in ALL_UPDATE_TYPES and kind not in bot.allowed_updates:
                dropped.append(update_id)
                continue
            batch.append(update)
            if update_id > bot.delivered_upto:
                bot.delivered_upto = update_id
                bot.stats["updates_delivered"] += 1
                self.stats["updates_delivered"] += 1
            if len(batch) >= limit:
                break
        for update_id in dropped:
            del bot.pending[update_id]
        return batch

    def confirm(self, bot: BotState, offset: int) -> None:
        """getUpdates offset: forget every update below it (negative: keep the last N)."""
        if offset < 0:
            while len(bot.pending) > -offset:
                bot.pending.popitem(last=False)
            return
        while bot.pending:
            first = next(iter(bot.pending))
            if first >= offset:
                return
            bot.pending.popitem(last=False)

    # -------------------------------------------------------------- webhook

    def set_webhook(
        self,
        bot: BotState,
        *,
        url: str,
        secret_token: str | None,
        max_connections: int,
        allowed_updates: list[str] | None,
        drop_pending: bool,
    ) -> None:
        """Start pushing updates to `url` (pending ones first, unless dropped)."""
        self.delete_webhook(bot, drop_pending=drop_pending)
        bot.webhook_generation += 1
        bot.webhook = Webhook(
            url=url,
            secret_token=secret_token,
            max_connections=max_connections,
            allowed_updates=allowed_updates,
            generation=bot.webhook_generation,
            semaphore=asyncio.Semaphore(max_connections),
        )
        if allowed_updates is not None:
            bot.allowed_updates = frozenset(allowed_updates) or DEFAULT_UPDATE_TYPES
        for update_id, update in list(bot.pending.items()):
            self._route_to_webhook(bot, update_id, update)
        # A getUpdates long poll in flight must now answer 409.
        bot.update_signal.notify()

    def delete_webhook(self, bot: BotState, *, drop_pending: bool) -> None:
        """Stop pushing; undelivered updates stay queued for getUpdates."""
        bot.webhook = None
        bot.webhook_generation += 1
        for task in bot.lane_tasks.values():
            task.cancel()
        bot.lane_tasks.clear()
        bot.lanes.clear()
        if drop_pending:
            bot.pending.clear()

    def _route_to_webhook(self, bot: BotState, update_id: int, update: JSON) -> None:
        lane = update_lane(update)
        queue = bot.lanes.get(lane)
        if queue is None:
            queue = bot.lanes[lane] = deque()
        queue.append(update_id)
        if lane not in bot.lane_tasks:
            task = asyncio.get_running_loop().create_task(self._deliver_lane(bot, lane))
            bot.lane_tasks[lane] = task

    async def _deliver_lane(self, bot: BotState, lane: Any) -> None:
        """POST one chat's updates in order; retry a failed one with backoff before the next."""
        webhook = bot.webhook
        try:
            while webhook is not None and bot.webhook is webhook:
                queue = bot.lanes.get(lane)
                if not queue:
                    return
                update_id = queue[0]
                update = bot.pending.get(update_id)
                if update is None:
                    queue.popleft()
                    continue
                delay = 0.05
                while bot.webhook is webhook and not await self._post_update(bot, webhook, update):
                    await asyncio.sleep(delay)
                    delay = min(WEBHOOK_RETRY_MAX, delay * 2)
                if bot.webhook is webhook:
                    queue.popleft()
                    bot.pending.pop(update_id, None)
        finally:
            if bot.lane_tasks.get(lane) is asyncio.current_task():
                del bot.lane_tasks[lane]
                queue = bot.lanes.get(lane)
                if queue is not None and not queue:
                    del bot.lanes[lane]

    async def _post_update(self, bot: BotState, webhook: Webhook, update: JSON) -> bool:
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        client = self.http_client()
        bot.stats["webhook_posts"] += 1
        self.stats["webhook_posts"] += 1
        async with webhook.semaphore:
            try:
                reply = await client.post(webhook.url, json=update, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"Connection failed: {type(exc).__name__}"
            else:
                if 200 <= reply.status_code < 300:
                    if update["update_id"] > bot.delivered_upto:
                        bot.delivered_upto = update["update_id"]
                        bot.stats["updates_delivered"] += 1
                        self.stats["updates_delivered"] += 1
                    return True
                problem = f"Wrong response from the webhook: {reply.status_code}"
        webhook.last_error_date = int(time.time())
        webhook.last_error_message = problem
        bot.stats["webhook_failures"] += 1
        self.stats["webhook_failures"] += 1
        return False

    def http_client(self) -> httpx.AsyncClient:
        """The one outgoing HTTP client (webhook delivery), opened on first use."""
        if self.http is None:
            self.http = httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=3.0), limits=httpx.Limits(max_connections=100)
            )
        return self.http

    # -------------------------------------------------------------- limits and faults

    def check_faults(self, method: str) -> None:
        """Raise the first injected fault that applies to this call."""
        if not self.faults:
            return
        now = time.monotonic()
        for fault in list(self.faults):
            if fault.until is not None and now >= fault.until:
                self.faults.remove(fault)
                continue
            if not fault.matches(method):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
            if fault.status == 429:
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {fault.retry_after}",
                    retry_after=fault.retry_after,
                )
            raise ApiError(fault.status, "Bad Gateway")

    def check_rate(self, bot: BotState, chat: Chat) -> None:
        """Telegram's flood control: per-chat and per-bot token buckets, 429 when empty."""
        limits = self.limits
        if not limits.enabled:
            return
        now = time.monotonic()
        for holder in (bot, chat):
            if now < holder.penalty_until:
                wait = math.ceil(holder.penalty_until - now)
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if chat.type in ("group", "supergroup"):
            chat_rate, chat_burst = limits.group_per_minute / 60.0, limits.group_per_minute
        else:
            chat_rate, chat_burst = limits.chat_rate, limits.chat_burst
        buckets = ((bot, limits.global_rate, limits.global_burst), (chat, chat_rate, chat_burst))
        for holder, rate, burst in buckets:
            tokens = take_tokens(holder, rate=rate, burst=burst, now=now)
            if tokens < 1.0:
                wait = max(1, math.ceil((1.0 - tokens) / rate))
                holder.penalty_until = now + wait
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        bot.tokens -= 1.0
        chat.tokens -= 1.0

    # -------------------------------------------------------------- log

    def log_call(
        self,
        bot: BotState | None,
        *,
        method: str,
        chat_id: Any,
        outcome: str,
        error: ApiError | None = None,
        message_id: int | None = None,
    ) -> None:
        """Remember one Bot API call (everything but getUpdates) for tests to inspect."""
        self.log_seq += 1
        entry: JSON = {
            "seq": self.log_seq,
            "time": time.time(),
            "method": method,
            "bot_id": bot.id if bot else None,
            "chat_id": chat_id,
            "outcome": outcome,
            "message_id": message_id,
        }
        if error is not None:
            entry["error_code"] = error.code
            entry["description"] = error.description
            if error.retry_after is not None:
                entry["retry_after"] = error.retry_after
        if not self.log:
            self.log_base = self.log_seq
        self.log.append(entry)
        if len(self.log) > LOG_LIMIT:
            for _ in range(LOG_LIMIT // 4):
                self.log.popleft()
            self.log_base += LOG_LIMIT // 4

    def log_after(self, seq: int, limit: int) -> Iterable[JSON]:
        """Log entries after `seq`, oldest first."""
        start = max(0, seq + 1 - self.log_base)
        stop = min(len(self.log), start + limit)
        return (self.log[i] for i in range(start, stop))

    def count(self, bot: BotState | None, key: str) -> None:
        """Bump a counter globally and for the bot."""
        self.stats[key] += 1
        if bot is not None:
            bot.stats[key] += 1

    # -------------------------------------------------------------- files

    def add_file(
        self,
        data: bytes,
        *,
        kind: str,
        mime_type: str | None,
        file_name: str | None,
        url: str | None = None,
        width: int = 0,
        height: int = 0,
    ) -> StoredFile:
        """Store bytes under a new file_id and file_path."""
        file_id = f"SBX{kind[:3].upper()}{secrets.token_urlsafe(18)}"
        unique = secrets.token_urlsafe(9)
        suffix = ""
        if file_name and "." in file_name:
            suffix = "." + file_name.rsplit(".", 1)[1][:8]
        path = f"{kind}s/file_{len(self.files) + 1}{suffix}"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            data=data,
            file_path=path,
            mime_type=mime_type,
            file_name=file_name,
            url=url,
            width=width,
            height=height,
        )
        self.files[file_id] = stored
        self.files_by_path[path] = stored
        return stored

    # -------------------------------------------------------------- reset

    def reset(self) -> None:
        """Forget users, chats, files, faults, log and counters; keep ids increasing."""
        for bot in self.bots.values():
            bot.clear()
        if self.default_bot is not None and self.default_bot.token is None:
            self.default_bot.clear()
        self.users.clear()
        self.files.clear()
        self.files_by_path.clear()
        self.faults.clear()
        self.log.clear()
        self.stats = new_stats()

    async def aclose(self) -> None:
        """Stop webhook delivery and close the HTTP client."""
        for bot in self.bots.values():
            self.delete_webhook(bot, drop_pending=False)
        if self.http is not None:
            await self.http.aclose()
            self.http = None


def _file_id_of(tg: JSON, kind: str) -> str | None:
    body = tg.get(kind)
    if kind == "photo" and isinstance(body, list) and body:
        return str(body[-1].get("file_id"))
    if isinstance(body, dict) and "file_id" in body:
        return str(body["file_id"])
    return None
