"""Callback data is opaque and authenticated: an HMAC binds each button to its chat."""

from __future__ import annotations

import base64
import hashlib
import hmac

SEPARATOR = "|"
SIG_BYTES = 9  # 12 base64 characters: forgery odds 2^-72, and room left in Telegram's 64 bytes


def _sig(secret: bytes, chat_id: int, payload: str) -> str:
    mac = hmac.new(secret, f"{chat_id}{SEPARATOR}{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:SIG_BYTES]).decode()


def sign(secret: bytes, chat_id: int, payload: str) -> str:
    """Callback data for a button in this chat (at most 64 bytes, checked by content check)."""
    data = f"{payload}{SEPARATOR}{_sig(secret, chat_id, payload)}"
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over 64 bytes: {payload!r}")
    return data


def verify(secret: bytes, chat_id: int, data: str) -> str | None:
    """The payload when the data was signed by us for this chat, else None."""
    payload, sep, sig = data.rpartition(SEPARATOR)
    if not sep or not payload:
        return None
    # Bytes: compare_digest refuses str with non-ASCII characters, which a client may send.
    if not hmac.compare_digest(sig.encode(), _sig(secret, chat_id, payload).encode()):
        return None
    return payload
