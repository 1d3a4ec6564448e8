"""Every other kind of update is handled without an exception, and changes only what it may."""

from __future__ import annotations

from tests.support import updates
from tests.support.dbstate import diff, snapshot
from tests.support.ptb import BotRig

# Updates that carry nothing for us: nothing at all may change.
IGNORED = {
    "edited_message",
    "poll_update",
    "poll_answer",
    "inline_query",
    "chosen_inline_result",
    "callback_inline",
    "callback_game",
    "message_reaction",
    "chat_join_request",
    "shipping_query",
    "unknown_type",
    "empty_update",
    "message_without_sender",
}
TEXT_ONLY = "Ik kan alleen tekst lezen. Typ je antwoord of druk op een knop."
# A reply may add outbox rows, transcript lines and move the menu's turn counter.
REPLY_ONLY = {"outbox", "transcript", "processed_update", "pupil.last_seen_at", "pupil.state"}


async def test_every_odd_update_from_a_pupil(rig: BotRig) -> None:
    code = await rig.seed_class()
    kinds = updates.odd_updates(update_id=0, user_id=1)
    assert len(kinds) >= 25
    for kind in sorted(kinds):
        noor = await rig.join(code, name=f"Noor {kind}")
        strict = await snapshot(rig.runtime.engine)
        loose = await snapshot(rig.runtime.engine, skip=REPLY_ONLY | {"pupil.blocked"})
        mark = await rig.last_outbox_id()
        await rig.feed(updates.odd_updates(update_id=rig.next_update(), user_id=noor)[kind])
        assert rig.errors == [], kind
        if kind in IGNORED:
            assert diff(strict, await snapshot(rig.runtime.engine)) == [], kind
            continue
        assert (
            diff(loose, await snapshot(rig.runtime.engine, skip=REPLY_ONLY | {"pupil.blocked"}))
            == []
        ), kind
        replies = await rig.texts(noor, after=mark)
        if kind.startswith("media_") or kind == "new_chat_title":
            assert replies[0] == TEXT_ONLY, kind
        pupil = await rig.pupil(noor)
        assert pupil is not None
        assert pupil.blocked is (kind == "my_chat_member"), kind  # they blocked the bot


async def test_odd_updates_from_a_stranger_store_nothing(rig: BotRig) -> None:
    stranger = await rig.sandbox_user("Mallory")
    before = await snapshot(rig.runtime.engine, skip={"outbox", "processed_update"})
    for kind, update in updates.odd_updates(update_id=rig.next_update(), user_id=stranger).items():
        update["update_id"] = rig.next_update()
        await rig.feed(update)
        changed = diff(
            before, await snapshot(rig.runtime.engine, skip={"outbox", "processed_update"})
        )
        assert changed == [], kind
    assert rig.errors == []
    assert await rig.pupil(stranger) is None
