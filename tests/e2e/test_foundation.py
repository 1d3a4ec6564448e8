"""End to end: the real bot process against the sandbox Bot API, driven like a pupil would."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sandbox.driver import SimulatedPupil
from store.db import make_engine, make_sessions
from store.models import Answer, Pupil, Run, TranscriptLine
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e


def texts(messages: list) -> str:
    return "\n".join(m.text or m.caption or "" for m in messages)


async def join_and_consent(stack: Stack, name: str = "Noor") -> SimulatedPupil:
    code = await stack.seed_class()
    pupil = await stack.pupil(name)
    await pupil.send(f"/start {code}")
    replies = await pupil.wait_for_reply()
    assert "Welkom! Je zit nu in de klas 5A." in texts(replies)
    assert "Hoe oud ben je?" in texts(replies)
    await pupil.press("13 of ouder")
    replies = await pupil.wait_for_reply()
    assert "Je leerkracht ziet alleen wat jij deelt" in texts(replies)
    await pupil.press("Ja, dat is oké")
    replies = await pupil.wait_for_reply()
    assert "Wat wil je doen?" in texts(replies)
    return pupil


async def db_rows(url: str, pupil_user_id: int) -> dict:
    engine = make_engine(url)
    try:
        async with make_sessions(engine)() as s:
            pupil = (await s.scalars(select(Pupil).where(
                Pupil.telegram_user_id == pupil_user_id))).one()
            answers = {a.step_id: a.value["v"] for a in (await s.scalars(
                select(Answer).where(Answer.pupil_id == pupil.id))).all()}
            runs = (await s.scalars(select(Run).where(Run.pupil_id == pupil.id))).all()
            lines = (await s.scalars(select(TranscriptLine).where(
                TranscriptLine.pupil_id == pupil.id))).all()
            return {"pupil": pupil, "answers": answers, "runs": runs, "lines": lines}
    finally:
        await engine.dispose()


async def test_pupil_joins_finishes_module_and_survives_a_bot_restart(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        pupil = await join_and_consent(stack)
        await pupil.press("🆕 Wie ben ik?")
        replies = await pupil.wait_for_reply()
        assert "Vraag 1 van 5" in texts(replies)
        await pupil.press("Met mijn handen werken")
        await pupil.wait_for_reply()
        await pupil.press("Buiten zijn")
        await pupil.wait_for_reply()
        await pupil.press("Klaar ✅")
        replies = await pupil.wait_for_reply()
        assert "Vraag 2 van 5" in texts(replies)
        for label in ("Handig met mijn handen", "Goed met mensen", "Ik hou vol"):
            await pupil.press(label)
            await pupil.wait_for_reply()
        await pupil.press("Klaar (3 van 3)")
        replies = await pupil.wait_for_reply()
        assert "Vraag 3 van 5" in texts(replies)

        # The bot process dies in the middle of the module and comes back.
        await stack.restart_bot(kill=True)
        await pupil.send("Ik heb thuis een fiets gemaakt")
        replies = await pupil.wait_for_reply()
        assert "Vraag 4 van 5" in texts(replies)
        await pupil.press("Dat ik hard werk")
        await pupil.wait_for_reply()
        await pupil.press("🙂 Fijn")
        replies = await pupil.wait_for_reply()
        assert "Je bent goed in: Handig met mijn handen, Goed met mensen, Ik hou vol" in \
            texts(replies)
        await pupil.press("Alles")
        await pupil.wait_for_reply()
        await pupil.press("Nee, dank je")
        replies = await pupil.wait_for_reply()
        assert 'Goed gedaan! Je bent klaar met "Wie ben ik?".' in texts(replies)

    rows = await db_rows(database_url, pupil.user_id)
    assert rows["answers"] == {
        "graag": ["Met mijn handen werken", "Buiten zijn"],
        "sterk": ["handig", "mensen", "volhouden"],
        "voorbeeld": "Ik heb thuis een fiets gemaakt",
        "anderen": "Dat ik hard werk",
        "gevoel": 4,
    }
    assert [(r.module_id, r.status, r.share) for r in rows["runs"]] == [
        ("wie-ben-ik", "done", "alles")]
    assert rows["pupil"].consent_at is not None
    directions = {line.direction for line in rows["lines"]}
    assert directions == {"in", "out"}
    assert any(line.text == "Ik heb thuis een fiets gemaakt" for line in rows["lines"])


async def test_answer_given_before_a_clean_restart_is_kept(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        pupil = await join_and_consent(stack, "Yusuf")
        await pupil.press("🆕 Wie ben ik?")
        await pupil.wait_for_reply()
        await pupil.press("Met computers")
        await pupil.wait_for_reply()
        await pupil.press("Klaar ✅")
        await pupil.wait_for_reply()
        await stack.restart_bot()
        await pupil.send("/verder")
        replies = await pupil.wait_for_reply()
        assert "Vraag 2 van 5" in texts(replies)
    rows = await db_rows(database_url, pupil.user_id)
    assert rows["answers"]["graag"] == ["Met computers"]


@pytest.mark.parametrize("backend_independent", [True])
async def test_bad_input_gets_kind_dutch_answers(sqlite_url: str,
                                                 backend_independent: bool) -> None:
    async with running_stack(sqlite_url) as stack:
        code = await stack.seed_class()
        stranger = await stack.pupil("Zoë")
        await stranger.send("/start 12")
        assert "Die code klopt niet." in texts(await stranger.wait_for_reply())
        await stranger.send("/start ZZZZZZZZ")
        assert "Ik vind geen klas met die code." in texts(await stranger.wait_for_reply())
        await stranger.send("hallo?")
        assert "Vraag je leerkracht om de link" in texts(await stranger.wait_for_reply())

        pupil = await join_and_consent(stack, "Jens")
        await pupil.press("🆕 Wie ben ik?")
        first = await pupil.wait_for_reply()
        # Text where a button is expected: the question again, with its buttons.
        await pupil.press("Met mijn handen werken")
        await pupil.wait_for_reply()
        await pupil.press("Klaar ✅")
        await pupil.wait_for_reply()
        await pupil.send("euh ja")
        replies = await pupil.wait_for_reply()
        assert "Kies een van de knoppen hieronder." in texts(replies)
        assert "Vraag 2 van 5" in texts(replies)
        assert any("Ik hou vol" in row for row in replies[-1].buttons)
        # An old button from an earlier question: no state change, a short note.
        old = first[-1]
        await pupil.press_on(old, "Buiten zijn")
        replies = await pupil.wait_for_reply()
        assert "Die knop is niet meer geldig." in texts(replies)
        assert "Vraag 2 van 5" in texts(replies)
        # Media: only text.
        await pupil.send_media("sticker")
        assert "Ik kan alleen tekst lezen." in texts(await pupil.wait_for_reply())
        await pupil.send_media("voice")
        assert "Ik kan alleen tekst lezen." in texts(await pupil.wait_for_reply())
        # A group chat: refused, nothing stored.
        await stack.client.send_group_message(user_id=pupil.user_id, chat_id=-100123,
                                              text=f"/start {code}")
        group = await stack.client.wait_chat_messages(-100123)
        assert "Ik werk alleen in een privégesprek" in texts(group)
    rows = await db_rows(sqlite_url, pupil.user_id)
    assert rows["answers"] == {"graag": ["Met mijn handen werken"]}
    assert not any(line.text.startswith("/start") and "-100" in line.text
                   for line in rows["lines"])
