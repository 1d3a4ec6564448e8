"""Engine messages → Bot API calls (JSON kept in the outbox until sent)."""

from __future__ import annotations

from typing import Any

from bot.callbacks import sign
from flows.types import Outbound

MAX_TEXT = 4096


def keyboard(secret: bytes, chat_id: int, outbound: Outbound) -> dict[str, Any] | None:
    """An inline keyboard with signed callback data, or None."""
    if not outbound.buttons:
        return None
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": sign(secret, chat_id, b.payload)} for b in row]
            for row in outbound.buttons
        ]
    }


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a long text at line breaks so no message passes Telegram's limit."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            parts.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) + 1 > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        parts.append(current)
    return parts


def render(
    secret: bytes, chat_id: int, outbound: Outbound, edit_message_id: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The Bot API calls (method, params) for one outbound message."""
    markup = keyboard(secret, chat_id, outbound)
    if outbound.kind == "photo":
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "caption": outbound.text[:1024],
            "attachment": outbound.attachment,
        }
        return [("sendPhoto", params)]
    if outbound.kind == "document":
        # The conversation renders the attachment ("export:<file name>") into document_b64.
        params = {
            "chat_id": chat_id,
            "caption": outbound.text[:1024],
            "attachment": outbound.attachment,
        }
        return [("sendDocument", params)]
    if not outbound.text:
        return []
    if outbound.edit and edit_message_id is not None:
        params = {"chat_id": chat_id, "message_id": edit_message_id, "text": outbound.text}
        if markup:
            params["reply_markup"] = markup
        return [("editMessageText", params)]
    calls: list[tuple[str, dict[str, Any]]] = []
    parts = split_text(outbound.text)
    for index, part in enumerate(parts):
        params = {"chat_id": chat_id, "text": part}
        if markup and index == len(parts) - 1:
            params["reply_markup"] = markup
        calls.append(("sendMessage", params))
    return calls
