"""/mijngegevens: the pupil gets one readable file with everything stored about them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy import select

from store import repo
from store.models import Flag, Outbox
from tests.privacy.conftest import answer_first_steps
from tests.support.ptb import BotRig

EXAMPLE = "Ik repareerde de fiets van mijn buurman Xantippe"
OTHER_EXAMPLE = "Ik hielp mijn zus met haar huiswerk Beatrix"
STAFF_NOTE = "Vader gebeld, thuissituatie moeilijk (intern)"


async def export_row(rig: BotRig, chat_id: int) -> Outbox:
    async with rig.runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(Outbox).where(Outbox.chat_id == chat_id, Outbox.method == "sendDocument")
            )
        ).all()
    assert len(rows) == 1, rows
    return rows[0]


async def test_mijngegevens_sends_own_data_without_staff_notes(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code, name="Noortje")
    other = await rig.join(code, name="Yusuf")
    await answer_first_steps(rig, other, OTHER_EXAMPLE)
    await rig.press(noor, "🆕 Wie ben ik?")
    await rig.press(noor, "Buiten zijn")
    await rig.press(noor, "Klaar ✅")
    for label in ("Ik leer snel", "Ik ben stipt", "Ik help graag"):
        await rig.press(noor, label)
    await rig.press(noor, "Klaar (3 van 3)")
    await rig.press(noor, "🔒 Alleen voor mij")
    await rig.say(noor, EXAMPLE)
    await rig.say(noor, "/praten")
    await rig.press(noor, "Leerlingenbegeleider")
    await rig.press(noor, "Sla over")
    await rig.press(noor, "Ja, het is dringend")
    now = datetime.now(UTC)
    async with rig.runtime.sessions.begin() as session:
        flag = (await session.scalars(select(Flag))).one()
        flag.close_note = STAFF_NOTE
        await repo.add_flag_event(
            session, flag=flag, action="note", staff_id=None, note=STAFF_NOTE, now=now
        )

    await rig.say(noor, "/mijngegevens")

    row = await export_row(rig, noor)
    assert row.payload["caption"] == (
        "Dit zijn al je gegevens bij Leerbot. Alleen jij krijgt dit bestand."
    )
    assert row.payload["filename"] == "mijn-gegevens-leerbot.txt"
    assert row.pupil_id is not None
    text = base64.b64decode(row.payload["document_b64"]).decode("utf-8")
    assert text.startswith("Jouw gegevens bij Leerbot\n")
    for expected in (
        "Voornaam: Noortje",
        "Klas: 5A",
        "School: Sint-Jozef VTI",
        "Leeftijd: 13 of ouder",
        "- Wie ben ik?: op pauze.",
        "- Wat doe je graag? Kies alles wat past. Druk dan op Klaar.\n"
        "  Jouw antwoord: Buiten zijn",
        "Ik leer snel, Ik ben stipt, Ik help graag",
        f"{EXAMPLE} (alleen voor jou)",
        "je wou met iemand praten. Nog open.",
        f"jij: {EXAMPLE}",
        "Leerbot: Vraag 1 van 5",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert STAFF_NOTE not in text
    assert OTHER_EXAMPLE not in text
    assert "Yusuf" not in text

    # Delivered as a document; the outbox keeps no second copy once it is sent.
    await rig.drain()
    timeline = await rig.client.chat_messages(noor)
    documents = [m for m in timeline["messages"] if m["kind"] == "document"]
    assert len(documents) == 1
    assert documents[0]["file_name"] == "mijn-gegevens-leerbot.txt"
    reply = await rig.client.http.get(documents[0]["file_url"])
    assert reply.content.decode("utf-8") == text
    sent = await export_row(rig, noor)
    assert sent.status == "sent"
    assert "document_b64" not in sent.payload
    assert rig.errors == []


async def test_mijngegevens_works_before_consent(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.sandbox_user("Noor")
    await rig.say(noor, f"/start {code}")
    await rig.press(noor, "Jonger dan 13")
    await rig.say(noor, "/mijngegevens")
    text = base64.b64decode((await export_row(rig, noor)).payload["document_b64"]).decode()
    assert "Leeftijd: jonger dan 13" in text
    assert "Toestemming: nog niet gegeven" in text
    assert "Je antwoorden\n-------------\n(niets)" in text
