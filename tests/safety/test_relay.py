"""The relay API the dashboard and the staff chat use: access, handover, close, audit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot import relay
from bot.app import Runtime
from bot.conversation import Incoming
from bot.staff import StaffChat, StaffCommands
from flows.types import PupilState
from store.models import AuditLog, Flag, FlagEvent, Outbox, TranscriptLine
from tests.safety.world import AN, BART, OTHER, SARA, PupilChat, World, text_of

CRISIS = "ik wil dood"


async def crisis_flag(world: World, pupil: PupilChat) -> Flag:
    await pupil.join()
    await pupil.send(CRISIS)
    [flag] = [f for f in await world.flags() if f.kind == "crisis"]
    await world.messages(SARA)
    return flag


async def act(world: World, name: str, *args: Any) -> Flag:
    """Run one relay call as staff member `name` in its own transaction (as the dashboard)."""
    action, kw = args[0], dict(args[1])
    staff = await world.staff(name)
    async with world.conversation.sessions.begin() as session:
        if action in {relay.reply, relay.close}:
            kw |= {"catalog": world.catalog, "secret": world.settings.secret}
        flag: Flag = await action(session, staff=staff, now=world.clock(), **kw)
        return flag


async def test_counsellor_acknowledges_replies_pupil_answers_and_counsellor_closes(
    world: World,
) -> None:
    pupil = world.pupil("Noor", 1001)
    flag = await crisis_flag(world, pupil)

    flag = await act(world, "sara", relay.acknowledge, {"flag_id": flag.id})
    assert (flag.state, flag.assigned_staff_id) == ("acknowledged", world.ids["sara"])

    flag = await act(
        world,
        "sara",
        relay.reply,
        {"flag_id": flag.id, "text": "Hoi Noor, ik ben Sara. Ik ben er voor je."},
    )
    assert flag.state == "in_conversation"
    got = await world.messages(pupil.user_id)
    assert got[0].text == (
        "Bericht van Sara, leerlingenbegeleider:\nHoi Noor, ik ben Sara. Ik ben er voor je."
    )
    assert "Je kan hier gewoon terugschrijven. Je bericht gaat naar Sara." in got[1].text
    assert all(m.priority == 0 and m.flag_id == flag.id for m in got)

    # The pupil answers: it goes to Sara's Telegram chat (she is in the conversation).
    assert await pupil.send("ok, morgen na de les?") == []
    [forwarded] = await world.messages(SARA)
    assert forwarded.text == f"Melding #{flag.id} · {flag.pupil_pseudonym}:\nok, morgen na de les?"
    async with world.conversation.sessions() as session:
        messages = await relay.pupil_messages(session, flag=flag)
    assert [(m["dir"], m["text"]) for m in messages][-2:] == [
        ("out", "Je kan hier gewoon terugschrijven. Je bericht gaat naar Sara."),
        ("in", "ok, morgen na de les?"),
    ]
    assert messages[0]["dir"] == "staff"
    assert "Ik ben er voor je." in messages[0]["text"]

    flag = await act(
        world,
        "sara",
        relay.close,
        {"flag_id": flag.id, "note": "Gesprek gepland, opvolging met CLB."},
    )
    assert (flag.state, flag.close_note) == ("closed", "Gesprek gepland, opvolging met CLB.")
    said = text_of(await world.messages(pupil.user_id))
    assert "Het gesprek is afgesloten. Je mag mij altijd opnieuw schrijven." in said
    assert "Wat wil je doen?" in said
    state = PupilState.load((await pupil.pupil_row()).state)
    assert (state.mode, state.handover) == ("menu", None)

    async with world.conversation.sessions() as session:
        events = (
            await session.scalars(
                select(FlagEvent).where(FlagEvent.flag_id == flag.id).order_by(FlagEvent.id)
            )
        ).all()
    assert [(e.action, e.staff_id) for e in events] == [
        ("opened", None),
        ("acknowledged", world.ids["sara"]),
        ("replied", world.ids["sara"]),
        ("pupil_message", None),
        ("closed", world.ids["sara"]),
    ]

    # After the close, the pupil's text is the bot's again: nothing goes to Sara.
    await pupil.send("dank je")
    assert await world.messages(SARA) == []


async def test_reading_a_flag_writes_an_audit_row(world: World) -> None:
    flag = await crisis_flag(world, world.pupil("Noor", 1001))
    await act(world, "sara", relay.flag_for_staff, {"flag_id": flag.id})
    async with world.conversation.sessions() as session:
        rows = (await session.scalars(select(AuditLog))).all()
    assert [(r.staff_id, r.action, r.target) for r in rows] == [
        (world.ids["sara"], "flag.view", f"flag:{flag.id}")
    ]


async def test_replying_to_a_closed_flag_is_refused_and_nothing_is_sent(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    flag = await crisis_flag(world, pupil)
    await act(world, "sara", relay.close, {"flag_id": flag.id, "note": "Opgevolgd op school."})
    await world.messages(pupil.user_id)

    with pytest.raises(relay.RelayError) as refused:
        await act(world, "sara", relay.reply, {"flag_id": flag.id, "text": "Hoi"})
    assert str(refused.value) == "Deze melding is al gesloten. Je bericht is niet verstuurd."
    assert await world.messages(pupil.user_id) == []


async def test_staff_of_another_school_cannot_see_or_answer_the_flag(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    flag = await crisis_flag(world, pupil)

    for action, kw in (
        (relay.flag_for_staff, {}),
        (relay.acknowledge, {}),
        (relay.reply, {"text": "Hoi"}),
        (relay.close, {"note": "x"}),
    ):
        with pytest.raises(relay.FlagNotFound) as refused:
            await act(world, "other", action, {"flag_id": flag.id, **kw})
        assert str(refused.value) == "Die melding bestaat niet, of je mag ze niet zien."
    assert await world.messages(pupil.user_id) == []
    [unchanged] = await world.flags()
    assert unchanged.state == "open"


async def test_teachers_see_only_contact_requests_to_them(world: World) -> None:
    noor = world.pupil("Noor", 1001)
    crisis = await crisis_flag(world, noor)
    await noor.press("Ik wil verder praten")
    await noor.press("Ik wil met iemand praten")
    await noor.press("Mijn klastitularis")
    await noor.press("Sla over")
    await noor.press("Nee, het kan wachten")
    [contact] = [f for f in await world.flags() if f.kind == "contactvraag"]

    with pytest.raises(relay.FlagNotFound):
        await act(world, "an", relay.flag_for_staff, {"flag_id": crisis.id})
    with pytest.raises(relay.FlagNotFound):
        await act(world, "bart", relay.flag_for_staff, {"flag_id": contact.id})
    flag = await act(
        world, "an", relay.reply, {"flag_id": contact.id, "text": "Morgen om 10 uur?"}
    )
    assert flag.state == "in_conversation"
    said = text_of(await world.messages(noor.user_id))
    assert "Bericht van An, leerkracht:\nMorgen om 10 uur?" in said


async def test_a_staff_contact_request_goes_to_the_counsellors_without_transcript(
    world: World,
) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    pupil_id = (await pupil.pupil_row()).id

    flag = await act(
        world,
        "an",
        relay.open_contact_flag,
        {"pupil_id": pupil_id, "reason": "vroegtijdig signaal"},
    )
    assert (flag.kind, flag.target, flag.context) == ("contactvraag", "begeleider", {"lines": []})
    with pytest.raises(relay.FlagNotFound):  # the teacher asked, but never sees the flag
        await act(world, "an", relay.flag_for_staff, {"flag_id": flag.id})
    with pytest.raises(relay.FlagNotFound) as refused:
        await act(world, "other", relay.open_contact_flag, {"pupil_id": pupil_id, "reason": "x"})
    assert str(refused.value) == "Die leerling vind ik niet in jouw school."

    assert await world.net.tick() == (1, 0)  # the bot process tells the counsellors
    [notice] = await world.messages(SARA)
    assert "An Peeters vraagt dat iemand contact opneemt met een leerling." in notice.text
    assert await world.messages(AN) == []
    assert await world.net.tick() == (0, 0)


async def test_a_private_answer_is_not_part_of_the_flag_context(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.press("🆕 Wie ben ik?")
    await pupil.press("Met mijn handen werken")
    await pupil.press("Klaar ✅")
    for label in ("Handig met mijn handen", "Goed met mensen", "Ik hou vol"):
        await pupil.press(label)
    await pupil.press("Klaar (3 van 3)")
    await pupil.press("🔒 Alleen voor mij")
    await pupil.send("GEHEIM: ik heb mijn broer geholpen met zijn huiswerk")
    await pupil.send(CRISIS)

    [flag] = await world.flags()
    texts = [line["text"] for line in flag.context["lines"]]
    assert CRISIS in texts
    assert not any("GEHEIM" in t for t in texts)
    async with world.conversation.sessions() as session:
        private = (
            await session.scalars(select(TranscriptLine).where(TranscriptLine.private.is_(True)))
        ).all()
    assert [line.text for line in private] == [
        "GEHEIM: ik heb mijn broer geholpen met zijn huiswerk"
    ]


def staff_runtime(world: World) -> StaffChat:
    runtime = Runtime(
        settings=world.settings,
        engine=world.engine,
        sessions=world.conversation.sessions,
        catalog=world.catalog,
        conversation=world.conversation,
    )
    runtime.extras["staff_commands"] = StaffCommands(runtime)
    return StaffChat(runtime)


async def staff_says(
    world: World,
    chat: StaffChat,
    user_id: int,
    text: str = "",
    *,
    button: str = "",
    on: int | None = None,
) -> str:
    if button:
        incoming = Incoming(
            update_id=world.next_update(),
            user_id=user_id,
            chat_id=user_id,
            kind="callback",
            callback_data=button,
            message_id=on,
        )
    else:
        head, _, args = text[1:].partition(" ")
        incoming = Incoming(
            update_id=world.next_update(),
            user_id=user_id,
            chat_id=user_id,
            kind="command",
            command=head,
            args=args,
            text=text,
        )
    assert await chat.handle(incoming)
    return text_of(await world.messages(user_id))


async def test_counsellor_works_the_flag_from_telegram(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    [notice] = await world.messages(SARA)
    [flag] = await world.flags()
    chat = staff_runtime(world)

    said = await staff_says(
        world, chat, SARA, button=notice.buttons["Ik neem dit op"], on=notice.row_id
    )
    assert f"Je neemt melding #{flag.id} op." in said
    async with world.conversation.sessions() as session:
        edit = (
            await session.scalars(select(Outbox).where(Outbox.method == "editMessageReplyMarkup"))
        ).one()
    assert edit.payload["reply_markup"] == {"inline_keyboard": []}

    said = await staff_says(world, chat, SARA, f"/antwoord {flag.id} Hoi Noor, hier Sara.")
    assert said == f"Verstuurd naar {flag.pupil_pseudonym} (melding #{flag.id})."
    assert "Bericht van Sara, leerlingenbegeleider:\nHoi Noor, hier Sara." in text_of(
        await world.messages(pupil.user_id)
    )

    await pupil.send("ja graag")
    assert "ja graag" in text_of(await world.messages(SARA))

    said = await staff_says(world, chat, SARA, f"/sluit #{flag.id} Gesprek gehad.")
    assert said == f"Melding #{flag.id} is gesloten. De leerling is terug in het menu."
    assert "Het gesprek is afgesloten." in text_of(await world.messages(pupil.user_id))

    said = await staff_says(world, chat, SARA, f"/antwoord {flag.id} nog iets")
    assert said == "Deze melding is al gesloten. Je bericht is niet verstuurd."
    said = await staff_says(world, chat, SARA, "/antwoord")
    assert said.startswith("Zo stuur je een bericht: /antwoord NUMMER tekst.")


async def test_staff_of_another_school_gets_a_clear_refusal_in_telegram(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    [flag] = await world.flags()
    chat = staff_runtime(world)

    said = await staff_says(world, chat, OTHER, f"/antwoord {flag.id} Hallo")
    assert said == "Die melding bestaat niet, of je mag ze niet zien."
    assert "Hallo" not in text_of(await world.messages(pupil.user_id))


async def test_a_second_counsellor_pressing_the_button_hears_who_took_it(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    [notice] = await world.messages(SARA)
    [flag] = await world.flags()
    await act(world, "dirk", relay.acknowledge, {"flag_id": flag.id})
    chat = staff_runtime(world)

    said = await staff_says(
        world, chat, SARA, button=notice.buttons["Ik neem dit op"], on=notice.row_id
    )
    assert f"Melding #{flag.id} is al opgenomen door Dirk Claes." in said


async def test_teacher_chat_help_lists_the_commands(world: World) -> None:
    said = await staff_says(world, staff_runtime(world), AN, "/help")
    assert "Je bent gekoppeld als leerkracht." in said
    assert "/antwoord NUMMER tekst" in said
    assert await world.messages(BART) == []


async def test_a_crisis_during_the_conversation_reaches_the_counsellor_in_it(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.press("Ik wil met iemand praten")
    await pupil.press("Leerlingenbegeleider")
    await pupil.press("Sla over")
    await pupil.press("Nee, het kan wachten")
    [contact] = await world.flags()
    await world.messages(SARA)
    await act(world, "sara", relay.reply, {"flag_id": contact.id, "text": "Hoe gaat het?"})
    await world.messages(pupil.user_id)

    got = await pupil.send("slecht, ik wil dood")

    assert "1813, dag en nacht" in text_of(got)  # the pupil gets the help lines first
    notices = await world.messages(SARA)
    alert = next(n for n in notices if n.text.startswith(f"Melding #{contact.id}"))
    assert "de leerling kreeg de hulplijnen" in alert.text
    assert alert.text.endswith("slecht, ik wil dood")
    assert any("DRINGEND: crisismelding" in n.text for n in notices)
    state = PupilState.load((await pupil.pupil_row()).state)
    assert state.mode == "handover"  # still talking with Sara


async def test_a_reply_dropped_because_the_pupil_blocked_the_bot_shows_on_the_flag(
    world: World,
) -> None:
    from store import repo

    pupil = world.pupil("Noor", 1001)
    flag = await crisis_flag(world, pupil)
    await act(world, "sara", relay.reply, {"flag_id": flag.id, "text": "Hoi, ik ben Sara."})

    # Telegram tells the bot the pupil blocked it before the reply went out.
    async with world.conversation.sessions.begin() as session:
        await repo.mark_chat_blocked(session, pupil.user_id, now=world.clock())

    [flag] = await world.flags()
    assert flag.delivery_failed
    async with world.conversation.sessions() as session:
        actions = (
            await session.scalars(
                select(FlagEvent.action).where(FlagEvent.flag_id == flag.id).order_by(FlagEvent.id)
            )
        ).all()
    assert actions[-1] == "delivery_failed"
