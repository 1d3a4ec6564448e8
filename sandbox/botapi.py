"""The emulated Bot API methods: parameters in, Telegram-shaped results or `ApiError` out."""

from __future__ import annotations

import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import ApiError, bad_request
from sandbox.formatting import check_reply_markup, render_text
from sandbox.media import image_size
from sandbox.state import (
    CALLBACK_TIMEOUT,
    DEFAULT_UPDATE_TYPES,
    JSON,
    BotState,
    Chat,
    Record,
    SandboxState,
    StoredFile,
)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
MAX_POLL_TIMEOUT = 50.0
MAX_UPLOAD = 50 * 1024 * 1024

# Form and query values arrive as strings (python-telegram-bot JSON-encodes non-strings into
# form fields); these names say how to decode them.
INT_FIELDS = frozenset(
    {
        "message_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "max_connections",
        "user_id",
        "cache_time",
        "message_thread_id",
        "duration",
        "width",
        "height",
    }
)
FLOAT_FIELDS = frozenset({"timeout"})
BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "has_spoiler",
        "disable_content_type_detection",
        "show_caption_above_media",
        "allow_paid_broadcast",
    }
)
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "link_preview_options",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "menu_button",
        "media",
    }
)

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the "
    "message"
)


@dataclass(slots=True)
class Upload:
    """One uploaded file part of a multipart request."""

    filename: str | None
    data: bytes
    content_type: str | None


class Params:
    """Bot API parameters from query, JSON body, form or multipart, decoded per field name."""

    __slots__ = ("files", "values")

    def __init__(self, values: dict[str, Any], files: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.files = files or {}

    def raw(self, name: str) -> Any:
        """The value as sent (JSON-decoded for object fields)."""
        value = self.values.get(name)
        if isinstance(value, str):
            if name in JSON_FIELDS:
                try:
                    return json.loads(value)
                except ValueError:
                    if name == "reply_markup":
                        raise bad_request(
                            "can't parse reply keyboard markup JSON object"
                        ) from None
                    raise bad_request(f"can't parse {name} JSON object") from None
            if name == "chat_id" and re.fullmatch(r"-?\d+", value):
                return int(value)
        return value

    def string(self, name: str) -> str | None:
        """A string parameter (numbers sent in JSON are turned into text, as Telegram does)."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)

    def integer(self, name: str) -> int | None:
        """An integer parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str) -> float | None:
        """A number parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        """A boolean parameter (absent = False)."""
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)


@dataclass(slots=True)
class Call:
    """One Bot API call being answered; handlers fill in chat and message for the log."""

    state: SandboxState
    bot: BotState
    params: Params
    method: str
    chat_id: Any = None
    message_id: int | None = None
    extra: JSON = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Any]]


def _now() -> int:
    return int(time.time())


# ------------------------------------------------------------------ identity and updates


async def get_me(call: Call) -> Any:
    """getMe"""
    return call.bot.user


async def get_updates(call: Call) -> Any:
    """getUpdates: long poll that wakes as soon as an update is queued."""
    state, bot, p = call.state, call.bot, call.params
    if bot.webhook is not None:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = p.integer("offset")
    if offset is not None and offset != 0:
        state.confirm(bot, offset)
    allowed = p.raw("allowed_updates")
    if isinstance(allowed, list):
        bot.allowed_updates = frozenset(str(a) for a in allowed) or DEFAULT_UPDATE_TYPES
    limit = max(1, min(100, p.integer("limit") or 100))
    timeout = max(0.0, min(MAX_POLL_TIMEOUT, p.number("timeout") or 0.0))
    bot.poll_generation += 1
    generation = bot.poll_generation
    deadline = time.monotonic() + timeout
    while True:
        batch = state.take_updates(bot, limit=limit)
        remaining = deadline - time.monotonic()
        if batch or remaining <= 0 or state.closing:
            return batch
        await bot.update_signal.wait(remaining)
        if bot.poll_generation != generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure "
                "that only one bot instance is running",
            )
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is "
                "active; use deleteWebhook to delete the webhook first",
            )


async def set_webhook(call: Call) -> Any:
    """setWebhook (an empty url removes it)."""
    state, bot, p = call.state, call.bot, call.params
    url = p.string("url") or ""
    if not url:
        state.delete_webhook(bot, drop_pending=p.flag("drop_pending_updates"))
        return True
    if not re.match(r"https?://[^/\s]+", url):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.string("secret_token")
    if secret is not None and not SECRET_RE.match(secret):
        raise bad_request("secret token contains unallowed characters")
    allowed = p.raw("allowed_updates")
    max_connections = max(1, min(100, p.integer("max_connections") or 40))
    state.set_webhook(
        bot,
        url=url,
        secret_token=secret,
        max_connections=max_connections,
        allowed_updates=[str(a) for a in allowed] if isinstance(allowed, list) else None,
        drop_pending=p.flag("drop_pending_updates"),
    )
    return True


async def delete_webhook(call: Call) -> Any:
    """deleteWebhook"""
    call.state.delete_webhook(call.bot, drop_pending=call.params.flag("drop_pending_updates"))
    return True


async def get_webhook_info(call: Call) -> Any:
    """getWebhookInfo"""
    bot = call.bot
    info: JSON = {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.pending),
    }
    hook = bot.webhook
    if hook is not None:
        info["url"] = hook.url
        info["max_connections"] = hook.max_connections
        if hook.allowed_updates is not None:
            info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info


async def log_out(_call: Call) -> Any:
    """logOut / close: nothing to release locally."""
    return True


# ------------------------------------------------------------------ commands and settings


def _scope_key(p: Params) -> tuple[str, str]:
    scope = p.raw("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), p.string("language_code") or ""


async def set_my_commands(call: Call) -> Any:
    """setMyCommands (stored per scope and language)."""
    commands = call.params.raw("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    clean: list[JSON] = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name = str(command.get("command", "")).lstrip("/")
        description = str(command.get("description", ""))
        if not COMMAND_RE.match(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad_request(
                "command description is empty"
                if not description
                else "BOT_COMMAND_DESCRIPTION_INVALID"
            )
        clean.append({"command": name, "description": description})
    if len(clean) > 100:
        raise bad_request("too many commands specified")
    call.bot.commands[_scope_key(call.params)] = clean
    return True


async def get_my_commands(call: Call) -> Any:
    """getMyCommands"""
    return call.bot.commands.get(_scope_key(call.params), [])


async def delete_my_commands(call: Call) -> Any:
    """deleteMyCommands"""
    call.bot.commands.pop(_scope_key(call.params), None)
    return True


async def set_chat_menu_button(call: Call) -> Any:
    """setChatMenuButton"""
    button = call.params.raw("menu_button") or {"type": "default"}
    if not isinstance(button, dict) or "type" not in button:
        raise bad_request("can't parse MenuButton JSON object")
    chat_id = call.params.raw("chat_id")
    call.chat_id = chat_id
    call.bot.menu_buttons[int(chat_id) if chat_id is not None else None] = button
    return True


async def get_chat_menu_button(call: Call) -> Any:
    """getChatMenuButton"""
    chat_id = call.params.raw("chat_id")
    key = int(chat_id) if chat_id is not None else None
    return (
        call.bot.menu_buttons.get(key) or call.bot.menu_buttons.get(None) or {"type": "commands"}
    )


def _profile_setter(name: str) -> Handler:
    async def setter(call: Call) -> Any:
        language = call.params.string("language_code") or ""
        call.bot.profile[f"{name}:{language}"] = call.params.string(name) or ""
        return True

    setter.__doc__ = f"Store the bot's {name}."
    return setter


def _profile_getter(name: str) -> Handler:
    async def getter(call: Call) -> Any:
        language = call.params.string("language_code") or ""
        return {name: call.bot.profile.get(f"{name}:{language}", "")}

    getter.__doc__ = f"Read the bot's {name}."
    return getter


# ------------------------------------------------------------------ chats


async def get_chat(call: Call) -> Any:
    """getChat: ChatFullInfo with the fields PTB requires."""
    chat_ref = call.params.raw("chat_id")
    call.chat_id = chat_ref
    try:
        chat = call.state.resolve_chat(call.bot, chat_ref)
    except ApiError as err:
        if err.code != 403:
            raise
        chat = call.bot.chats[int(chat_ref)]
    info = chat.to_tg()
    info.update(
        {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
    )
    return info


async def send_chat_action(call: Call) -> Any:
    """sendChatAction: shown as "typing…" in the web chat for up to 5 s."""
    call.chat_id = call.params.raw("chat_id")
    chat = call.state.resolve_chat(call.bot, call.chat_id)
    action = call.params.string("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.action = action
    chat.action_until = time.monotonic() + 5.0
    chat.signal.notify()
    return True


async def pin_message(call: Call) -> Any:
    """pinChatMessage / unpinChatMessage / unpinAllChatMessages: accepted."""
    call.chat_id = call.params.raw("chat_id")
    call.state.resolve_chat(call.bot, call.chat_id)
    return True


# ------------------------------------------------------------------ sending


def _base_message(bot: BotState, chat: Chat) -> JSON:
    message: JSON = {"message_id": chat.take_message_id()}
    if chat.type == "channel":
        message["sender_chat"] = chat.to_tg()
    else:
        message["from"] = bot.user
    message["chat"] = chat.to_tg()
    message["date"] = _now()
    return message


def _markup(p: Params) -> tuple[JSON | None, JSON | None]:
    """(inline keyboard for the Message, other keyboard for the chat) from reply_markup."""
    raw = p.raw("reply_markup")
    if raw is None:
        return None, None
    markup = check_reply_markup(raw)
    if "inline_keyboard" in markup:
        return markup, None
    return None, markup


def _reply_to(chat: Chat, p: Params) -> JSON | None:
    """The message being replied to, or Telegram's error if it is gone."""
    params = p.raw("reply_parameters")
    allow = p.flag("allow_sending_without_reply")
    target_id: int | None
    if isinstance(params, dict):
        target_id = params.get("message_id")
        allow = allow or bool(params.get("allow_sending_without_reply"))
    else:
        target_id = p.integer("reply_to_message_id")
    if target_id is None:
        return None
    record = chat.records.get(int(target_id))
    if record is None or record.deleted or record.kind == "callback_answer":
        if allow:
            return None
        raise bad_request("message to be replied not found")
    return {k: v for k, v in record.tg.items() if k != "reply_to_message"}


def _text(
    p: Params,
    *,
    name: str = "text",
    parse_mode: str = "parse_mode",
    entities: str = "entities",
    limit: int = MAX_TEXT,
    too_long: str = "message is too long",
) -> tuple[str, list[JSON]]:
    source = p.string(name)
    if source is None or not source.strip():
        raise bad_request("message text is empty")
    given = p.raw(entities)
    text, found = render_text(
        source, p.string(parse_mode), given if isinstance(given, list) else None
    )
    if not text.strip():
        raise bad_request("message text is empty")
    if len(text) > limit:
        raise bad_request(too_long)
    return text, found


def _caption(p: Params) -> tuple[str | None, list[JSON]]:
    source = p.string("caption")
    if not source:
        return None, []
    given = p.raw("caption_entities")
    text, found = render_text(
        source, p.string("parse_mode"), given if isinstance(given, list) else None
    )
    if len(text) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return text, found


def _finish(call: Call, chat: Chat, message: JSON, *, kind: str, keyboard: JSON | None) -> JSON:
    """Store a bot message in the chat timeline and remember it for the log."""
    call.state.add_record(
        call.bot,
        chat,
        key=message["message_id"],
        kind=kind,
        from_bot=True,
        tg=message,
        keyboard=keyboard,
    )
    call.message_id = message["message_id"]
    return message


async def send_message(call: Call) -> Any:
    """sendMessage"""
    state, bot, p = call.state, call.bot, call.params
    call.chat_id = p.raw("chat_id")
    chat = state.resolve_chat(bot, call.chat_id)
    text, entities = _text(p)
    inline, keyboard = _markup(p)
    reply = _reply_to(chat, p)
    preview = p.raw("link_preview_options")
    if preview is not None and not isinstance(preview, dict):
        raise bad_request("can't parse link preview options JSON object")
    state.check_rate(bot, chat)
    message = _base_message(bot, chat)
    if reply is not None:
        message["reply_to_message"] = reply
    message["text"] = text
    if entities:
        message["entities"] = entities
    if preview and "://" in text:
        message["link_preview_options"] = preview
    if inline is not None:
        message["reply_markup"] = inline
    return _finish(call, chat, message, kind="text", keyboard=keyboard)


MEDIA_METHODS = {
    "sendphoto": "photo",
    "senddocument": "document",
    "sendsticker": "sticker",
    "sendvoice": "voice",
    "sendvideo": "video",
    "sendaudio": "audio",
    "sendanimation": "animation",
}
MEDIA_LIMITS = {"photo": 10 * 1024 * 1024}


def _input_file(call: Call, kind: str) -> StoredFile:
    """An uploaded part, a known file_id, or a URL (remembered, never fetched)."""
    state, p = call.state, call.params
    value = p.values.get(kind)
    upload = p.files.get(kind)
    if upload is None and isinstance(value, str) and value.startswith("attach://"):
        upload = p.files.get(value.removeprefix("attach://"))
    if upload is not None:
        if not upload.data:
            raise bad_request("file must be non-empty")
        if len(upload.data) > MEDIA_LIMITS.get(kind, MAX_UPLOAD):
            raise bad_request("file is too big")
        width = height = 0
        if kind == "photo":
            width, height = image_size(upload.data)
        mime = upload.content_type
        if not mime or mime == "application/octet-stream":
            guessed = mimetypes.guess_type(upload.filename or "")[0]
            mime = guessed or mime
        return state.add_file(
            upload.data,
            kind=kind,
            mime_type=mime,
            file_name=upload.filename,
            width=width,
            height=height,
        )
    if isinstance(value, str) and value:
        known = state.files.get(value)
        if known is not None:
            return known
        if re.match(r"https?://\S+$", value):
            name = value.rsplit("/", 1)[-1].split("?")[0] or None
            return state.add_file(
                b"",
                kind=kind,
                mime_type=mimetypes.guess_type(value)[0],
                file_name=name,
                url=value,
                width=320,
                height=320,
            )
        raise bad_request("wrong file identifier/HTTP URL specified")
    raise bad_request(f"there is no {kind} in the request")


def media_object(kind: str, stored: StoredFile, *, duration: int | None = None) -> Any:
    """The Bot API object for a stored file sent as `kind`."""
    base: JSON = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
    }
    if kind == "photo":
        return [{**base, "width": stored.width or 320, "height": stored.height or 320}]
    if kind == "sticker":
        return {
            **base,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    if stored.mime_type:
        base["mime_type"] = stored.mime_type
    if kind in ("document", "audio", "video", "animation") and stored.file_name:
        base["file_name"] = stored.file_name
    if kind in ("voice", "audio", "video", "animation"):
        base["duration"] = duration or 1
    if kind in ("video", "animation"):
        base.update({"width": stored.width or 320, "height": stored.height or 240})
    return base


def _media_sender(kind: str) -> Handler:
    async def send(call: Call) -> Any:
        state, bot, p = call.state, call.bot, call.params
        call.chat_id = p.raw("chat_id")
        chat = state.resolve_chat(bot, call.chat_id)
        caption, caption_entities = (None, []) if kind == "sticker" else _caption(p)
        stored = _input_file(call, kind)
        inline, keyboard = _markup(p)
        reply = _reply_to(chat, p)
        state.check_rate(bot, chat)
        message = _base_message(bot, chat)
        if reply is not None:
            message["reply_to_message"] = reply
        message[kind] = media_object(kind, stored, duration=p.integer("duration"))
        if caption:
            message["caption"] = caption
            if caption_entities:
                message["caption_entities"] = caption_entities
        if inline is not None:
            message["reply_markup"] = inline
        return _finish(call, chat, message, kind=kind, keyboard=keyboard)

    send.__doc__ = f"send{kind.capitalize()}"
    return send


async def get_file(call: Call) -> Any:
    """getFile"""
    file_id = call.params.string("file_id") or ""
    stored = call.state.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    return stored.to_tg()


# ------------------------------------------------------------------ editing


def _bot_message(call: Call, *, action: str = "edit") -> tuple[Chat, Record]:
    p = call.params
    if p.string("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    call.chat_id = p.raw("chat_id")
    chat = call.state.resolve_chat(call.bot, call.chat_id)
    message_id = p.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    call.message_id = message_id
    record = chat.records.get(message_id)
    if record is None or record.deleted or record.kind == "callback_answer":
        raise bad_request(f"message to {action} not found")
    if action == "edit" and not record.from_bot:
        raise bad_request("message can't be edited")
    return chat, record


def _apply_edit(call: Call, chat: Chat, record: Record, changes: JSON) -> JSON:
    """Check "not modified", count the edit against flood limits, store and publish it."""
    tg = record.tg
    if all(tg.get(k) == v for k, v in changes.items()):
        raise ApiError(400, NOT_MODIFIED)
    call.state.check_rate(call.bot, chat)
    for key, value in changes.items():
        if value is None:
            tg.pop(key, None)
        else:
            tg[key] = value
    tg["edit_date"] = _now()
    record.edited = True
    call.state.bump(call.bot, chat, record)
    return tg


async def edit_message_text(call: Call) -> Any:
    """editMessageText (an edit without reply_markup removes the inline keyboard)."""
    chat, record = _bot_message(call)
    if record.kind != "text":
        raise bad_request("there is no text in the message to edit")
    text, entities = _text(call.params)
    inline, _ = _markup(call.params)
    return _apply_edit(
        call, chat, record, {"text": text, "entities": entities or None, "reply_markup": inline}
    )


async def edit_message_caption(call: Call) -> Any:
    """editMessageCaption"""
    chat, record = _bot_message(call)
    if record.kind in ("text", "sticker", "location", "poll", "contact"):
        raise bad_request("there is no caption in the message to edit")
    caption, entities = _caption(call.params)
    inline, _ = _markup(call.params)
    return _apply_edit(
        call,
        chat,
        record,
        {"caption": caption, "caption_entities": entities or None, "reply_markup": inline},
    )


async def edit_message_reply_markup(call: Call) -> Any:
    """editMessageReplyMarkup"""
    chat, record = _bot_message(call)
    inline, _ = _markup(call.params)
    return _apply_edit(call, chat, record, {"reply_markup": inline})


async def delete_message(call: Call) -> Any:
    """deleteMessage"""
    chat, record = _bot_message(call, action="delete")
    record.deleted = True
    call.state.bump(call.bot, chat, record)
    return True


# ------------------------------------------------------------------ callbacks


def prune_callbacks(bot: BotState, now: float) -> None:
    """Forget presses older than Telegram's answer window (cheap: oldest first)."""
    order = bot.callback_order
    while order and order[0][0] < now - CALLBACK_TIMEOUT:
        _, query_id = order.popleft()
        bot.callbacks.pop(query_id, None)


async def answer_callback_query(call: Call) -> Any:
    """answerCallbackQuery: once per press, within Telegram's time window."""
    state, bot, p = call.state, call.bot, call.params
    now = time.monotonic()
    prune_callbacks(bot, now)
    query_id = p.string("callback_query_id") or ""
    pending = bot.callbacks.pop(query_id, None)
    if pending is None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    call.chat_id = pending.chat_id
    call.message_id = pending.message_id
    text = p.string("text")
    if text is not None and len(text) > MAX_CALLBACK_ANSWER:
        raise bad_request("MESSAGE_TOO_LONG")
    chat = bot.chats.get(pending.chat_id)
    if chat is not None:
        state.add_record(
            bot,
            chat,
            key=f"cb:{query_id}",
            kind="callback_answer",
            from_bot=True,
            tg={
                "text": text,
                "show_alert": p.flag("show_alert"),
                "message_id": pending.message_id,
            },
        )
    return True


HANDLERS: dict[str, Handler] = {
    "getme": get_me,
    "getupdates": get_updates,
    "setwebhook": set_webhook,
    "deletewebhook": delete_webhook,
    "getwebhookinfo": get_webhook_info,
    "logout": log_out,
    "close": log_out,
    "setmycommands": set_my_commands,
    "getmycommands": get_my_commands,
    "deletemycommands": delete_my_commands,
    "setchatmenubutton": set_chat_menu_button,
    "getchatmenubutton": get_chat_menu_button,
    "setmydescription": _profile_setter("description"),
    "getmydescription": _profile_getter("description"),
    "setmyshortdescription": _profile_setter("short_description"),
    "getmyshortdescription": _profile_getter("short_description"),
    "setmyname": _profile_setter("name"),
    "getmyname": _profile_getter("name"),
    "getchat": get_chat,
    "sendchataction": send_chat_action,
    "pinchatmessage": pin_message,
    "unpinchatmessage": pin_message,
    "unpinallchatmessages": pin_message,
    "sendmessage": send_message,
    "getfile": get_file,
    "editmessagetext": edit_message_text,
    "editmessagecaption": edit_message_caption,
    "editmessagereplymarkup": edit_message_reply_markup,
    "deletemessage": delete_message,
    "answercallbackquery": answer_callback_query,
    **{method: _media_sender(kind) for method, kind in MEDIA_METHODS.items()},
}
