"""Callback data is opaque and signed: forged, foreign and replayed buttons change nothing."""

from __future__ import annotations

import logging

import pytest

from bot.callbacks import sign
from tests.support import updates
from tests.support.dbstate import diff, snapshot
from tests.support.ptb import BotRig

# What the pupil did and where they are; not the bot's reply to this very press (its outbox
# rows and transcript lines) nor the "last touched" timestamps.
DOMAIN_ONLY = {"outbox", "transcript", "processed_update", "pupil.last_seen_at", "run.updated_at"}


async def in_module(rig: BotRig) -> int:
    """A pupil halfway through question 1 of "Wie ben ik?"."""
    code = await rig.seed_class()
    noor = await rig.join(code)
    await rig.press(noor, "🆕 Wie ben ik?")
    return noor


def forgeries(rig: BotRig, chat_id: int, genuine: str) -> dict[str, str]:
    """Callback data a client could send that we never signed for this chat."""
    payload, _, sig = genuine.rpartition("|")
    other_chat = chat_id + 1
    return {
        "made_up": "1:m:wie-ben-ik|AAAAAAAAAAAA",
        "payload_changed": f"{payload.replace(':o:0', ':o:1')}|{sig}",
        "signature_flipped": f"{payload}|{sig[::-1]}",
        "unsigned": payload,
        "foreign_chat": sign(rig.secret, other_chat, payload),
        "old_secret_key": sign(b"the key before rotation " * 2, chat_id, payload),
        "empty": "",
        "separator_only": "|",
        "long_unicode": "🙂" * 16,
        "sql_like": "1:m:x'; DROP TABLE pupil;--|AAAAAAAAAAAA",
    }


async def test_forged_and_foreign_callback_data_change_nothing(
    rig: BotRig, caplog: pytest.LogCaptureFixture
) -> None:
    noor = await in_module(rig)
    pupil = await rig.pupil(noor)
    assert pupil is not None
    genuine, _ = (await rig.buttons(noor))["Met mijn handen werken"]
    before = await snapshot(rig.runtime.engine)
    caplog.set_level(logging.INFO, logger="leerbot")
    for name, data in forgeries(rig, noor, genuine).items():
        caplog.clear()
        await rig.feed(updates.callback(update_id=rig.next_update(), user_id=noor, data=data))
        changed = diff(before, await snapshot(rig.runtime.engine))
        assert changed == [], f"{name}: {changed}"
        rejected = [
            r.getMessage()
            for r in caplog.records
            if r.name == "leerbot.conversation" and r.levelno == logging.WARNING
        ]
        assert rejected == [
            f"rejected callback data from {pupil.pseudonym} (forged or foreign)"
        ], name
    assert rig.errors == []


async def test_a_button_from_another_chat_pressed_by_a_stranger_stores_nothing(
    rig: BotRig,
) -> None:
    noor = await in_module(rig)
    genuine, _ = (await rig.buttons(noor))["Met mijn handen werken"]
    stranger = await rig.sandbox_user("Mallory")
    before = await snapshot(rig.runtime.engine)
    # Mallory copies Noor's callback data into her own chat.
    await rig.feed(updates.callback(update_id=rig.next_update(), user_id=stranger, data=genuine))
    assert diff(before, await snapshot(rig.runtime.engine)) == []
    assert await rig.pupil(stranger) is None
    assert rig.errors == []


async def test_replayed_button_is_caught_by_the_turn_counter(
    rig: BotRig, caplog: pytest.LogCaptureFixture
) -> None:
    noor = await in_module(rig)
    pupil = await rig.pupil(noor)
    assert pupil is not None
    old = await rig.buttons(noor)
    await rig.press(noor, "Buiten zijn")
    await rig.press(noor, "Klaar ✅")  # question 2 now; question 1's buttons are old
    before = await snapshot(rig.runtime.engine, skip=DOMAIN_ONLY)
    mark = await rig.last_outbox_id()
    caplog.set_level(logging.INFO, logger="leerbot")
    for label in ("Met mijn handen werken", "Klaar ✅"):
        data, message_id = old[label]
        await rig.feed(
            updates.callback(
                update_id=rig.next_update(), user_id=noor, data=data, message_id=message_id
            )
        )
    assert diff(before, await snapshot(rig.runtime.engine, skip=DOMAIN_ONLY)) == []
    replies = await rig.texts(noor, after=mark)
    assert replies.count("Die knop is niet meer geldig. Hier is de vraag van nu.") == 2
    assert "Vraag 2 van 5\nWaar ben je goed in? Kies je top 3." in replies
    assert f"input rejected for {pupil.pseudonym}: stale_button" in caplog.messages
    assert rig.errors == []


async def test_a_redelivered_update_has_no_second_effect(rig: BotRig) -> None:
    noor = await in_module(rig)
    data, message_id = (await rig.buttons(noor))["Buiten zijn"]
    update = updates.callback(
        update_id=rig.next_update(), user_id=noor, data=data, message_id=message_id
    )
    await rig.feed(update)
    before = await snapshot(rig.runtime.engine)
    await rig.feed(update)  # Telegram delivers the same update again
    assert diff(before, await snapshot(rig.runtime.engine)) == []
    assert rig.errors == []
