"""End to end: the real bot process against the sandbox Bot API, driven like a pupil would."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from sandbox.driver import SimulatedPupil
from store.db import make_engine, make_sessions
from store.models import Answer, Pupil, Run, TranscriptLine
from tests.support.stack import Stack, running_stack, until

pytestmark = pytest.mark.e2e


def texts(messages: list) -> str:
    return "\n".join(m.text or m.caption or "" for m in messages)


async def join_and_consent(
    stack: Stack, name: str = "Noor", code: str | None = None
) -> SimulatedPupil:
    code = code or await stack.seed_class()
    pupil = await stack.pupil(name)
    await pupil.send(f"/start {code}")
    replies = await until(pupil, "Hoe oud ben je?")
    assert "Welkom! Je zit nu in de klas 5A." in texts(replies)
    await pupil.press("13 of ouder")
    await until(pupil, "Je leerkracht ziet alleen wat jij deelt")
    await pupil.press("Ja, dat is oké")
    replies = await until(pupil, "Wat wil je doen?")
    assert "Dank je! We kunnen beginnen." in texts(replies)
    return pupil


async def db_rows(url: str, pupil_user_id: int) -> dict:
    engine = make_engine(url)
    try:
        async with make_sessions(engine)() as s:
            pupil = (
                await s.scalars(select(Pupil).where(Pupil.telegram_user_id == pupil_user_id))
            ).one()
            answers = {
                a.step_id: a.value["v"]
                for a in (await s.scalars(select(Answer).where(Answer.pupil_id == pupil.id))).all()
            }
            runs = (await s.scalars(select(Run).where(Run.pupil_id == pupil.id))).all()
            lines = (
                await s.scalars(select(TranscriptLine).where(TranscriptLine.pupil_id == pupil.id))
            ).all()
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
        assert "Je bent goed in: Handig met mijn handen, Goed met mensen, Ik hou vol" in texts(
            replies
        )
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
        ("wie-ben-ik", "done", "alles")
    ]
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


async def test_bad_input_gets_kind_dutch_answers(sqlite_url: str) -> None:
    async with running_stack(sqlite_url) as stack:
        code = await stack.seed_class()
        stranger = await stack.pupil("Zoë")
        await stranger.send("/start 12")
        await until(stranger, "Die code klopt niet.")
        await stranger.send("/start ZZZZZZZZ")
        await until(stranger, "Ik vind geen klas met die code.")
        await stranger.send("hallo?")
        await until(stranger, "Vraag je leerkracht om de link")

        pupil = await join_and_consent(stack, "Jens", code)
        await pupil.press("🆕 Wie ben ik?")
        first = await until(pupil, "Vraag 1 van 5")
        await pupil.press("Met mijn handen werken")
        await until(pupil, "Vraag 1 van 5")
        await pupil.press("Klaar ✅")
        await until(pupil, "Vraag 2 van 5")
        # Text where a button is expected: the question again, with its buttons.
        await pupil.send("euh ja")
        replies = await until(pupil, "Vraag 2 van 5")
        assert "Kies een van de knoppen hieronder." in texts(replies)
        assert ["Ik hou vol"] in replies[-1].buttons
        # An old button from an earlier question: no state change, a short note.
        await pupil.press_on(first[-1], "Buiten zijn")
        replies = await until(pupil, "Vraag 2 van 5")
        assert "Die knop is niet meer geldig." in texts(replies)
        # Media: only text.
        await pupil.send_media("sticker")
        await until(pupil, "Ik kan alleen tekst lezen.")
        await pupil.send_media("voice")
        await until(pupil, "Ik kan alleen tekst lezen.")
        # A group chat: refused, nothing stored.
        await stack.client.send_group_message(
            user_id=pupil.user_id, chat_id=-100123, text=f"/start {code}"
        )
        group = await stack.client.wait_chat_messages(-100123)
        assert "Ik werk alleen in een privégesprek" in texts(group)
    rows = await db_rows(sqlite_url, pupil.user_id)
    assert rows["answers"] == {"graag": ["Met mijn handen werken"]}
    engine = make_engine(sqlite_url)
    async with make_sessions(engine)() as s:
        users = (await s.scalars(select(Pupil.telegram_user_id))).all()
    await engine.dispose()
    assert users == [pupil.user_id]  # the stranger with a bad code left no trace
    assert not any(
        line.text.startswith("/start") and "-100" in line.text for line in rows["lines"]
    )


async def test_every_pressed_button_is_answered_once(sqlite_url: str) -> None:
    # Each press stops its spinner with one answerCallbackQuery, straight from the bot (the
    # fast path, outside the outbox); a press past the limit gets its toast that way.
    async with running_stack(sqlite_url) as stack:
        pupil = await join_and_consent(stack)
        answered = len(pupil.callback_answers)  # the age and consent buttons
        await pupil.press("🆕 Wie ben ik?")
        await pupil.wait_for_reply()
        for label in ("Met mijn handen werken", "Buiten zijn", "✅ Met mijn handen werken"):
            await pupil.press(label)
            await pupil.wait_for_reply()
        await pupil.press("Klaar ✅")
        await until(pupil, "Vraag 2 van 5")
        for label in ("Handig met mijn handen", "Goed met mensen", "Ik hou vol"):
            await pupil.press(label)
            await pupil.wait_for_reply()
        await pupil.press("Ik leer snel")  # a fourth of three: a toast, nothing to redraw
        for _ in range(50):
            if len(pupil.callback_answers) == answered + 9:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # a second answer to any press would arrive by now
        assert len(pupil.callback_answers) == answered + 9
        assert pupil.callback_answers[-1] == "Je kan er maximaal 3 kiezen."
        assert pupil.callback_answers[answered:-1] == [None] * 8  # no toast for a plain pick
