"""Helpers for delivery tests: queue messages, read the outbox, compare with the sandbox log."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from store import repo
from store.db import Sessions
from store.models import Outbox

SEND_METHODS = {
    "sendmessage",
    "editmessagetext",
    "editmessagereplymarkup",
    "sendphoto",
    "senddocument",
    "editmessagecaption",
}  # Bot API names are case-insensitive


async def queue(sessions: Sessions, chat_id: int, texts: list[str], *, priority: int = 0) -> None:
    """Commit one sendMessage per text for `chat_id`, as a transaction of the bot would."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        for text in texts:
            await repo.enqueue(
                session,
                chat_id=chat_id,
                method="sendMessage",
                payload={"chat_id": chat_id, "text": text},
                priority=priority,
                now=now,
            )


async def outbox(sessions: Sessions) -> list[Outbox]:
    """Every outbox row, oldest first."""
    async with sessions() as session:
        return list((await session.scalars(select(Outbox).order_by(Outbox.id))).all())


def delivered(log: list[dict[str, Any]]) -> dict[int, list[tuple[str, int]]]:
    """Per chat: the (method, message id) of every send Telegram accepted, in arrival order."""
    chats: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for entry in log:
        method = str(entry["method"]).lower()
        if method in SEND_METHODS and entry["outcome"] == "ok":
            chats[int(entry["chat_id"])].append((method, int(entry["message_id"])))
    return chats


def expected(rows: list[Outbox]) -> dict[int, list[tuple[str, int]]]:
    """Per chat: what the outbox says was sent, in queue order (edits name their target)."""
    chats: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for row, optional in _queued(rows):
        if not optional:
            chats[row[0]].append(row[1])
    return chats


def _queued(rows: list[Outbox]) -> list[tuple[tuple[int, tuple[str, int]], bool]]:
    """((chat, (method, target)), optional) per row, in queue order.

    An edit Telegram refused as "not modified" is optional: a no-op edit reaches nobody, but
    a repeated one (the bot's fast lane died between Telegram's answer and its record, and the
    sender sent it again) did reach the chat, once.
    """
    out = []
    for row in rows:
        target = (
            row.message_id if row.method.startswith("send") else int(row.payload["message_id"])
        )
        optional = bool(row.last_error and "not modified" in row.last_error)
        out.append(((row.chat_id, (row.method.lower(), int(target or 0))), optional))
    return out


def assert_each_sent_once_in_order(log: list[dict[str, Any]], rows: list[Outbox]) -> None:
    """Every outbox row reached its chat exactly once, in queue order, and nothing else did."""
    unsent = [
        (r.id, r.chat_id, r.method, r.status, r.last_error) for r in rows if r.status != "sent"
    ]
    assert unsent == [], f"not sent: {unsent}"
    got = delivered(log)
    queued: dict[int, list[tuple[tuple[str, int], bool]]] = defaultdict(list)
    for (chat_id, call), optional in _queued(rows):
        queued[chat_id].append((call, optional))
    for chat_id in sorted(set(got) | set(queued)):
        arrived = got.get(chat_id, [])
        position = 0
        for call, optional in queued.get(chat_id, []):
            if position < len(arrived) and arrived[position] == call:
                position += 1
            elif not optional:
                raise AssertionError(
                    f"chat {chat_id}: delivered {arrived}, queued {queued[chat_id]}; "
                    f"{call} missing or out of order"
                )
        assert position == len(arrived), (
            f"chat {chat_id}: delivered {arrived}, queued {queued.get(chat_id)}: "
            f"{arrived[position:]} not queued (or twice)"
        )


async def seed_class(sessions: Sessions, *, module: str = "wie-ben-ik") -> str:
    """A school, teacher and class with `module` assigned; returns the join code."""
    async with sessions.begin() as session:
        school = await repo.add_school(session, name="Sint-Jozef VTI")
        teacher = await repo.add_staff(
            session,
            school=school,
            email="an@school.be",
            name="An Peeters",
            role="teacher",
            password_hash=None,
        )
        klass = await repo.add_class(session, school=school, name="5A", teacher=teacher)
        await repo.assign(session, klass=klass, module_id=module, due=None)
        return klass.join_code


def assert_sent_in_order_at_least_once(
    log: list[dict[str, Any]], rows: list[Outbox]
) -> dict[int, int]:
    """Like `assert_each_sent_once_in_order`, but a message may have gone out twice: the copy
    Telegram accepted just before a crash, unrecorded. Returns such copies per chat.

    A repeated edit is refused by Telegram as "not modified", so the outbox row records that
    refusal although its first attempt reached the chat: edits of such targets are left out
    on both sides (the sends around them still show order and loss).
    """
    unsent = [(r.id, r.status) for r in rows if r.status != "sent"]
    assert unsent == [], f"not sent: {unsent}"
    got, want = delivered(log), expected(rows)
    refused = {
        (r.chat_id, int(r.payload["message_id"]))
        for r in rows
        if not r.method.startswith("send") and r.last_error and "not modified" in r.last_error
    }
    # Only sends create messages; an edit row's message_id is its target (the pupil may have
    # pressed a button on the unrecorded copy).
    recorded = {
        (r.chat_id, int(r.message_id))
        for r in rows
        if r.message_id is not None and r.method.lower().startswith("send")
    }
    copies: dict[int, int] = {}
    for chat_id in sorted(set(got) | set(want)):
        want[chat_id] = [
            (method, target)
            for method, target in want.get(chat_id, [])
            if method.startswith("send") or (chat_id, target) not in refused
        ]
        got[chat_id] = [
            (method, target)
            for method, target in got.get(chat_id, [])
            if method.startswith("send") or (chat_id, target) not in refused
        ]
        kept = [
            (method, message_id)
            for method, message_id in got.get(chat_id, [])
            if not method.startswith("send") or (chat_id, message_id) in recorded
        ]
        if len(kept) < len(got.get(chat_id, [])):
            copies[chat_id] = len(got[chat_id]) - len(kept)
        assert kept == want.get(chat_id, []), (
            f"chat {chat_id}: delivered {got.get(chat_id)}, queued {want.get(chat_id)}"
        )
    return copies
