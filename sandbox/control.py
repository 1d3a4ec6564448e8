"""Control API (`/sandbox/api/…`): what simulated pupils do, and what tests inspect or steer."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.botapi import media_object, prune_callbacks
from sandbox.errors import ApiError
from sandbox.formatting import command_entities
from sandbox.media import FAKE_FILES
from sandbox.state import (
    JSON,
    BotState,
    Chat,
    Fault,
    Limits,
    PendingCallback,
    SandboxState,
    User,
)

MAX_WAIT = 60.0
MEDIA_KINDS = ("sticker", "photo", "voice", "document", "location", "poll", "contact", "video")
DEFAULT_GROUP_TITLES = {
    "group": "Klasgroep",
    "supergroup": "Schoolgroep",
    "channel": "Schoolkanaal",
}


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


async def _body(request: Request) -> JSON:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "request body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def _bot(request: Request, body: JSON | None = None) -> BotState:
    token = (body or {}).get("token") or request.query_params.get("token")
    return _state(request).control_bot(str(token) if token else None)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be an integer, got {value!r}") from None


def _chat_for(state: SandboxState, bot: BotState, user: User, body: JSON) -> Chat:
    """The private chat, or the group named by chat_id / chat_type (created on first use)."""
    chat_id = body.get("chat_id")
    chat_type = body.get("chat_type")
    if chat_id is None and chat_type in (None, "private"):
        return state.private_chat(bot, user)
    if chat_id is not None:
        chat_id = _int(chat_id, "chat_id")
        if chat_id == user.id:
            return state.private_chat(bot, user)
        existing = bot.chats.get(chat_id)
        if existing is not None:
            return existing
        if chat_type is None:
            chat_type = "supergroup" if str(chat_id).startswith("-100") else "group"
    else:
        shared = bot.shared_groups.get(str(chat_type))
        if shared is not None and shared in bot.chats:
            return bot.chats[shared]
    chat = state.group_chat(
        bot,
        chat_id=chat_id,
        chat_type=str(chat_type),
        title=body.get("title") or DEFAULT_GROUP_TITLES.get(str(chat_type)),
    )
    if body.get("chat_id") is None:
        bot.shared_groups[str(chat_type)] = chat.id
    return chat


def _user_message(chat: Chat, user: User) -> JSON:
    message: JSON = {"message_id": chat.take_message_id()}
    if chat.type == "channel":
        message["sender_chat"] = chat.to_tg()
    else:
        message["from"] = user.to_tg()
    message["chat"] = chat.to_tg()
    message["date"] = int(time.time())
    return message


def _deliver(
    state: SandboxState,
    bot: BotState,
    chat: Chat,
    message: JSON,
    *,
    kind: str,
    update_key: str | None = None,
) -> JSON:
    """Show a pupil's message in the chat and queue it for the bot."""
    record = state.add_record(
        bot, chat, key=message["message_id"], kind=kind, from_bot=False, tg=message
    )
    if chat.type == "private":
        chat.started = True  # any message to the bot "starts" it, as pressing Start does
    if chat.reply_keyboard is not None and chat.reply_keyboard.get("one_time_keyboard"):
        chat.reply_keyboard = None  # Telegram apps fold a one-time keyboard away once used
    key = update_key or ("channel_post" if chat.type == "channel" else "message")
    update_id = state.enqueue_update(bot, {key: dict(message)})
    return {
        "update_id": update_id,
        "message_id": message["message_id"],
        "chat_id": chat.id,
        "seq": record.seq,
    }


# ------------------------------------------------------------------ users and chats


def do_create_user(state: SandboxState, bot: BotState, body: JSON) -> JSON:
    """A new user {first_name, user_id?, username?, language_code?} with a private chat."""
    first_name = str(body.get("first_name") or body.get("name") or "").strip()
    if not first_name:
        raise ApiError(400, "first_name is required")
    user_id = body.get("user_id")
    user = state.create_user(
        first_name=first_name,
        user_id=_int(user_id, "user_id") if user_id is not None else None,
        last_name=body.get("last_name"),
        username=body.get("username"),
        language_code=body.get("language_code", "nl"),
    )
    chat = state.private_chat(bot, user)
    return {
        **user.to_tg(),
        "user": user.to_tg(),
        "chat_id": chat.id,
        "started": chat.started,
        "seq": bot.seq,
    }


async def create_user(request: Request) -> Response:
    """POST /sandbox/api/users {first_name, user_id?, username?, language_code?}"""
    body = await _body(request)
    return _json(do_create_user(_state(request), _bot(request, body), body), 201)


async def list_users(request: Request) -> Response:
    """GET /sandbox/api/users: everyone, newest last (for the web chat's name picker)."""
    state = _state(request)
    bot = _bot(request)
    users = [
        {**u.to_tg(), "chat_id": u.id, "started": u.id in bot.chats and bot.chats[u.id].started}
        for u in state.users.values()
    ]
    return _json({"users": users})


async def bot_info(request: Request) -> Response:
    """GET /sandbox/api/bot: the bot the web chat talks to, and its command menu."""
    bot = _bot(request)
    commands = (
        bot.commands.get((json.dumps({"type": "default"}), "nl"))
        or bot.commands.get((json.dumps({"type": "default"}), ""))
        or []
    )
    return _json(
        {
            "id": bot.id,
            "username": bot.username,
            "first_name": bot.user.get("first_name", "Leerbot (sandbox)"),
            "connected": bool(bot.token),
            "commands": commands,
        }
    )


async def create_chat(request: Request) -> Response:
    """POST /sandbox/api/chats {chat_type, title?, chat_id?, username?}: a group or channel."""
    body = await _body(request)
    state, bot = _state(request), _bot(request, body)
    chat_id = body.get("chat_id")
    chat = state.group_chat(
        bot,
        chat_id=_int(chat_id, "chat_id") if chat_id is not None else None,
        chat_type=str(body.get("chat_type", "group")),
        title=body.get("title"),
        username=body.get("username"),
    )
    return _json(chat.to_tg(), 201)


# ------------------------------------------------------------------ pupil actions
#
# Each action is a plain function (state, bot, body) → result, so a single request can carry
# many of them (`/sandbox/api/batch`): that is how the driver keeps 1,000 pupils cheap.


def do_send(state: SandboxState, bot: BotState, body: JSON) -> JSON:
    """A pupil sends text {user_id, text, chat_id?, chat_type?, reply_to_message_id?}."""
    user = state.user(_int(body.get("user_id"), "user_id"))
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise ApiError(400, "text is required")
    chat = _chat_for(state, bot, user, body)
    message = _user_message(chat, user)
    reply_id = body.get("reply_to_message_id")
    if reply_id is not None:
        target = chat.records.get(_int(reply_id, "reply_to_message_id"))
        if target is None or target.kind == "callback_answer":
            raise ApiError(404, f"no message {reply_id} in chat {chat.id}")
        message["reply_to_message"] = {
            k: v for k, v in target.tg.items() if k != "reply_to_message"
        }
    message["text"] = text
    entities = command_entities(text)
    if entities:
        message["entities"] = entities
    return _deliver(state, bot, chat, message, kind="text")


def do_press(state: SandboxState, bot: BotState, body: JSON) -> JSON:
    """A pupil presses an inline button {user_id, message_id, label? | callback_data?}."""
    user = state.user(_int(body.get("user_id"), "user_id"))
    chat = _chat_for(state, bot, user, body)
    message_id = _int(body.get("message_id"), "message_id")
    record = chat.records.get(message_id)
    if record is None or record.deleted or not record.from_bot or record.kind == "callback_answer":
        raise ApiError(404, f"no bot message {message_id} in chat {chat.id}")
    rows = (record.tg.get("reply_markup") or {}).get("inline_keyboard", [])
    buttons = [b for row in rows for b in row]
    label, data = body.get("label"), body.get("callback_data")
    match = next(
        (
            b
            for b in buttons
            if (label is not None and b.get("text") == label)
            or (label is None and data is not None and b.get("callback_data") == data)
        ),
        None,
    )
    if match is None:
        wanted = f"label {label!r}" if label is not None else f"callback_data {data!r}"
        labels = [b.get("text") for b in buttons]
        raise ApiError(404, f"no button with {wanted} on message {message_id}; buttons: {labels}")
    if match.get("callback_data") is None:
        raise ApiError(400, f"button {match.get('text')!r} has no callback_data")
    now = time.monotonic()
    prune_callbacks(bot, now)
    query_id = state.new_callback_id()
    bot.callbacks[query_id] = PendingCallback(chat.id, message_id, now)
    bot.callback_order.append((now, query_id))
    if chat.type == "private":
        chat.started = True
    query = {
        "id": query_id,
        "from": user.to_tg(),
        "message": dict(record.tg),
        "chat_instance": str(abs(chat.id * 7919 + bot.id) % 10**18),
        "data": match["callback_data"],
    }
    update_id = state.enqueue_update(bot, {"callback_query": query})
    return {
        "update_id": update_id,
        "callback_query_id": query_id,
        "callback_data": match["callback_data"],
        "seq": bot.seq,
    }


def _fake_media(state: SandboxState, user: User, kind: str, caption: str | None) -> JSON:
    """The body fields of a pupil's media message (files are real bytes the bot can fetch)."""
    if kind in FAKE_FILES:
        data, mime, name = FAKE_FILES[kind]
        stored = state.add_file(
            data,
            kind=kind,
            mime_type=mime,
            file_name=name,
            width=64 if kind == "photo" else 320,
            height=48 if kind == "photo" else 240,
        )
        body: JSON = {kind: media_object(kind, stored, duration=2)}
        if kind == "sticker":
            body["sticker"]["emoji"] = "👍"
        if caption and kind != "sticker":
            body["caption"] = caption
        return body
    if kind == "location":
        return {"location": {"latitude": 51.0543, "longitude": 3.7174}}
    if kind == "contact":
        return {
            "contact": {
                "phone_number": "+32470123456",
                "first_name": user.first_name,
                "user_id": user.id,
            }
        }
    if kind == "poll":
        return {
            "poll": {
                "id": str(5_000_000_000 + state.next_update_id),
                "question": caption or "Wat doen we vrijdag?",
                "options": [
                    {"text": "Sport", "voter_count": 0, "persistent_id": "0"},
                    {"text": "Film", "voter_count": 0, "persistent_id": "1"},
                ],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": False,
                "type": "regular",
                "allows_multiple_answers": False,
                "allows_revoting": False,
                "members_only": False,
            }
        }
    raise ApiError(400, f"kind must be one of {', '.join(MEDIA_KINDS)}; got {kind!r}")


def do_send_media(state: SandboxState, bot: BotState, body: JSON) -> JSON:
    """A pupil sends media {user_id, kind, caption?, chat_id?}."""
    user = state.user(_int(body.get("user_id"), "user_id"))
    kind = str(body.get("kind", ""))
    fields = _fake_media(state, user, kind, body.get("caption"))
    chat = _chat_for(state, bot, user, body)
    message = _user_message(chat, user)
    message.update(fields)
    return _deliver(state, bot, chat, message, kind=kind)


def do_edit(state: SandboxState, bot: BotState, body: JSON) -> JSON:
    """A pupil edits an own text message {user_id, message_id, text, chat_id?}."""
    user = state.user(_int(body.get("user_id"), "user_id"))
    chat = _chat_for(state, bot, user, body)
    message_id = _int(body.get("message_id"), "message_id")
    record = chat.records.get(message_id)
    if record is None or record.from_bot or record.deleted or record.kind != "text":
        raise ApiError(404, f"no text message {message_id} from user {user.id}")
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise ApiError(400, "text is required")
    tg = record.tg
    tg["text"] = text
    entities = command_entities(text)
    if entities:
        tg["entities"] = entities
    else:
        tg.pop("entities", None)
    tg["edit_date"] = int(time.time())
    record.edited = True
    state.bump(bot, chat, record)
    key = "edited_channel_post" if chat.type == "channel" else "edited_message"
    update_id = state.enqueue_update(bot, {key: dict(tg)})
    return {"update_id": update_id, "message_id": message_id, "seq": record.seq}


def do_block(state: SandboxState, bot: BotState, body: JSON) -> JSON:
    """A pupil blocks or unblocks the bot {user_id, blocked}."""
    user = state.user(_int(body.get("user_id"), "user_id"))
    chat = state.private_chat(bot, user)
    blocked = bool(body.get("blocked", True))
    update_id = None
    if blocked != chat.blocked:
        chat.blocked = blocked
        if bot.user:
            old, new = ("member", "kicked") if blocked else ("kicked", "member")
            member_old: JSON = {"status": old, "user": bot.user}
            member_new: JSON = {"status": new, "user": bot.user}
            for member in (member_old, member_new):
                if member["status"] == "kicked":
                    member["until_date"] = 0
            update_id = state.enqueue_update(
                bot,
                {
                    "my_chat_member": {
                        "chat": chat.to_tg(),
                        "from": user.to_tg(),
                        "date": int(time.time()),
                        "old_chat_member": member_old,
                        "new_chat_member": member_new,
                    }
                },
            )
    return {"user_id": user.id, "blocked": chat.blocked, "update_id": update_id, "seq": bot.seq}


Action = Callable[[SandboxState, BotState, JSON], JSON]
ACTIONS: dict[str, Action] = {
    "send": do_send,
    "press": do_press,
    "send_media": do_send_media,
    "edit": do_edit,
    "block": do_block,
}
BATCH_OPS: dict[str, Action] = {**ACTIONS, "create_user": do_create_user}


def _action_route(action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await _body(request)
        return _json(action(_state(request), _bot(request, body), body))

    endpoint.__doc__ = action.__doc__
    return endpoint


async def batch(request: Request) -> Response:
    """POST /sandbox/api/batch {actions: [{op, ...}]}: many pupil actions in one request.

    Actions run in order; each gets its own result or {"error", "status"}.
    """
    body = await _body(request)
    actions = body.get("actions")
    if not isinstance(actions, list):
        raise ApiError(400, "actions must be a list")
    return _json({"results": run_actions(_state(request), _bot(request, body), actions)})


def run_actions(state: SandboxState, bot: BotState, actions: list[Any]) -> list[JSON]:
    """Run pupil actions in order; a failing one gets {"error", "status"} and the rest go on."""
    results: list[JSON] = []
    for item in actions:
        action = BATCH_OPS.get(str(item.get("op"))) if isinstance(item, dict) else None
        if action is None:
            results.append({"error": f"unknown op in {item!r}", "status": 400})
            continue
        try:
            results.append(action(state, bot, item))
        except ApiError as err:
            results.append({"error": err.description, "status": err.code})
    return results


async def wait_feed(
    state: SandboxState, bot: BotState, *, after: int, wait: float, limit: int = 10_000
) -> list[JSON]:
    """Feed entries after `after`, waiting up to `wait` seconds for the first one."""
    deadline = time.monotonic() + min(MAX_WAIT, wait)
    while True:
        events = bot.feed_after(after, limit)
        remaining = deadline - time.monotonic()
        if events or remaining <= 0 or state.closing:
            return events
        await bot.feed_signal.wait(remaining)


async def raw_update(request: Request) -> Response:
    """POST /sandbox/api/update: any JSON object, queued as-is (fuzz and hostile input)."""
    body = await _body(request)
    token = request.query_params.get("token")
    state = _state(request)
    bot = state.control_bot(token)
    update_id = state.enqueue_update(bot, body)
    return _json({"update_id": update_id})


# ------------------------------------------------------------------ reading


async def chat_messages(request: Request) -> Response:
    """GET /sandbox/api/chats/{chat_id}/messages?after=&wait=: long poll one chat's timeline."""
    state = _state(request)
    bot = _bot(request)
    chat_id = _int(request.path_params["chat_id"], "chat_id")
    after = _int(request.query_params.get("after", "0"), "after")
    wait = min(MAX_WAIT, float(request.query_params.get("wait", "0") or 0))
    deadline = time.monotonic() + wait
    while True:
        chat = bot.chats.get(chat_id)
        if chat is None:
            return _json({"error": f"no chat {chat_id}"}, 404)
        records = chat.after(after)
        remaining = deadline - time.monotonic()
        if records or remaining <= 0 or state.closing:
            break
        action_before = chat.action
        await chat.signal.wait(remaining)
        if chat.action != action_before:
            records = chat.after(after)
            break
    now = time.monotonic()
    typing = chat.action if chat.action and now < chat.action_until else None
    keyboard = chat.reply_keyboard
    return _json(
        {
            "chat": chat.to_tg(),
            "messages": [r.view for r in records],
            "seq": max(after, chat.last_seq()),
            "keyboard": [[b["text"] for b in row] for row in keyboard["keyboard"]]
            if keyboard
            else None,
            "typing": typing,
            "typing_for": max(0.0, chat.action_until - now) if typing else 0.0,
            "blocked": chat.blocked,
        }
    )


async def feed(request: Request) -> Response:
    """GET /sandbox/api/feed?after=&wait=: every timeline change of the bot, for the driver."""
    state = _state(request)
    bot = _bot(request)
    query = request.query_params
    if "after" not in query:
        return _json({"events": [], "next": bot.seq})
    after = _int(query["after"], "after")
    limit = max(1, min(50_000, _int(query.get("limit", "10000"), "limit")))
    events = await wait_feed(
        state, bot, after=after, wait=float(query.get("wait", "0") or 0), limit=limit
    )
    return _json({"events": events, "next": events[-1]["seq"] if events else max(after, 0)})


async def call_log(request: Request) -> Response:
    """GET /sandbox/api/log?after=&limit=&method=&chat_id=: Bot API calls and their outcome."""
    state = _state(request)
    query = request.query_params
    after = _int(query.get("after", "0"), "after")
    limit = max(1, min(100_000, _int(query.get("limit", "10000"), "limit")))
    method = query.get("method")
    chat_id = query.get("chat_id")
    token = query.get("token")
    bot_id = state.bot_for_token(token).id if token else None
    entries: list[JSON] = []
    last = after
    for entry in state.log_after(after, limit):
        last = entry["seq"]
        if method and entry["method"].lower() != method.lower():
            continue
        if chat_id is not None and str(entry["chat_id"]) != chat_id:
            continue
        if bot_id is not None and entry["bot_id"] != bot_id:
            continue
        entries.append(entry)
    return _json({"entries": entries, "next": last})


async def stats(request: Request) -> Response:
    """GET /sandbox/api/stats: counters (for one bot with ?token=)."""
    state = _state(request)
    token = request.query_params.get("token")
    if token:
        bot = state.bot_for_token(token)
        counters = dict(bot.stats)
        counters["pending_updates"] = len(bot.pending)
        counters["chats"] = len(bot.chats)
    else:
        counters = dict(state.stats)
        counters["pending_updates"] = sum(len(b.pending) for b in state.bots.values())
    counters["users"] = len(state.users)
    return _json(counters)


async def file_bytes(request: Request) -> Response:
    """GET /sandbox/api/files/{file_id}: the bytes of a stored file (for the web chat)."""
    stored = _state(request).files.get(request.path_params["file_id"])
    if stored is None:
        return _json({"error": "no such file"}, 404)
    return Response(stored.data, media_type=stored.mime_type or "application/octet-stream")


# ------------------------------------------------------------------ steering


def _fault(spec: Any) -> Fault:
    if not isinstance(spec, dict):
        raise ApiError(400, f"a fault is an object, got {spec!r}")
    status = _int(spec.get("status", 429), "status")
    if status not in (429, 500, 502, 503, 504):
        raise ApiError(400, f"fault status must be 429 or 5xx, got {status}")
    count, seconds = spec.get("count"), spec.get("seconds")
    if count is None and seconds is None:
        count = 1
    methods = spec.get("methods")
    return Fault(
        status=status,
        retry_after=max(1, _int(spec.get("retry_after", 1), "retry_after")),
        remaining=_int(count, "count") if count is not None else None,
        until=time.monotonic() + float(seconds) if seconds is not None else None,
        methods=frozenset(str(m).lower() for m in methods) if methods else None,
    )


def _config_view(state: SandboxState) -> JSON:
    now = time.monotonic()
    return {**state.limits.to_json(), "faults": [f.to_json(now) for f in state.faults]}


async def config(request: Request) -> Response:
    """GET/POST /sandbox/api/config: rate limits on/off and their rates; faults."""
    state = _state(request)
    if request.method == "POST":
        body = await _body(request)
        limits = state.limits
        if "rate_limits" in body:
            limits.enabled = bool(body["rate_limits"])
        for name in ("chat_rate", "chat_burst", "group_per_minute", "global_rate", "global_burst"):
            if name in body:
                value = float(body[name])
                if value <= 0:
                    raise ApiError(400, f"{name} must be positive")
                setattr(limits, name, value)
        if "faults" in body:
            specs = body["faults"] or []
            state.faults = [_fault(s) for s in (specs if isinstance(specs, list) else [specs])]
        if "add_fault" in body:
            state.faults.append(_fault(body["add_fault"]))
    return _json(_config_view(state))


async def reset(request: Request) -> Response:
    """POST /sandbox/api/reset: forget everything (ids keep increasing)."""
    state = _state(request)
    enabled = request.app.state.sandbox_rate_limits
    state.reset()
    state.limits = Limits(enabled=enabled)
    return _json({"ok": True})


ROUTES = [
    Route("/sandbox/api/users", create_user, methods=["POST"]),
    Route("/sandbox/api/users", list_users, methods=["GET"]),
    Route("/sandbox/api/bot", bot_info, methods=["GET"]),
    Route("/sandbox/api/chats", create_chat, methods=["POST"]),
    Route("/sandbox/api/chats/{chat_id}/messages", chat_messages, methods=["GET"]),
    *(
        Route(f"/sandbox/api/{op}", _action_route(action), methods=["POST"])
        for op, action in ACTIONS.items()
    ),
    Route("/sandbox/api/batch", batch, methods=["POST"]),
    Route("/sandbox/api/update", raw_update, methods=["POST"]),
    Route("/sandbox/api/feed", feed, methods=["GET"]),
    Route("/sandbox/api/log", call_log, methods=["GET"]),
    Route("/sandbox/api/stats", stats, methods=["GET"]),
    Route("/sandbox/api/files/{file_id}", file_bytes, methods=["GET"]),
    Route("/sandbox/api/config", config, methods=["GET", "POST"]),
    Route("/sandbox/api/reset", reset, methods=["POST"]),
]
