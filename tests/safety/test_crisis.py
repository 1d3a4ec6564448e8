"""The crisis path on a real database: help lines, a paused module, an urgent flag, staff told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.models import FlagEvent, Outbox, Run
from tests.safety.world import AN, BART, DIRK, OTHER, SARA, PupilChat, World, build_world, text_of

CRISIS = "ik wil dood"
NO_PUPIL_TEXT = ("dood", "wil")


async def to_open_step(pupil: PupilChat) -> None:
    """Start "Wie ben ik?" and answer until the open question (the example)."""
    await pupil.press("🆕 Wie ben ik?")
    await pupil.press("Met mijn handen werken")
    await pupil.press("Klaar ✅")
    for label in ("Handig met mijn handen", "Goed met mensen", "Ik hou vol"):
        await pupil.press(label)
    got = await pupil.press("Klaar (3 van 3)")
    assert "Vraag 3 van 5" in text_of(got)


async def test_crisis_in_the_middle_of_a_module_gets_help_lines_and_an_urgent_flag(
    world: World,
) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await to_open_step(pupil)

    got = await pupil.send(CRISIS)

    said = text_of(got)
    assert "Dank je dat je mij dit vertelt." in said
    assert "Bel 112" in said
    assert "1813, dag en nacht" in said
    assert "102" in said
    assert "Je mag mij altijd opnieuw schrijven." in said
    assert got[-1].labels == [
        "Ik ben nu in gevaar",
        "Toon alle hulplijnen",
        "Ik wil verder praten",
    ]
    assert all(m.priority == 0 for m in got)
    assert "Vraag 4 van 5" not in said  # the module does not carry on
    async with world.conversation.sessions() as session:
        run = (await session.scalars(select(Run))).one()
    assert run.status == "paused"

    [flag] = await world.flags()
    assert (flag.kind, flag.urgent, flag.state) == ("crisis", True, "open")
    assert flag.category is not None
    assert flag.evidence["items"]
    assert flag.context["lines"][-1] == {
        "at": flag.context["lines"][-1]["at"],
        "dir": "in",
        "text": CRISIS,
    }
    assert flag.notified_at is not None

    # The counsellor with a linked Telegram account is told at once, without the pupil's words.
    [notice] = await world.messages(SARA)
    assert notice.priority == 1
    assert f"crisismelding #{flag.id}" in notice.text
    assert "Klas: 5A" in notice.text
    assert f"{world.settings.dashboard_url}/meldingen/{flag.id}" in notice.text
    assert not any(word in notice.text.lower() for word in NO_PUPIL_TEXT)
    assert notice.labels == ["Ik neem dit op"]
    # Teachers, the admin (before escalation) and the other school hear nothing.
    for chat in (AN, BART, DIRK, OTHER):
        assert await world.messages(chat) == []


async def test_a_crisis_in_a_photo_caption_is_caught_too(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()

    got = await pupil.photo(CRISIS)

    assert "1813, dag en nacht" in text_of(got)
    [flag] = await world.flags()
    assert flag.kind == "crisis"
    assert len(await world.messages(SARA)) == 1


async def test_the_help_lines_follow_the_school_region(database_url: str) -> None:
    world = await build_world(database_url, region="NL")
    try:
        pupil = world.pupil("Daan", 1002)
        await pupil.join()
        said = text_of(await pupil.send(CRISIS))
        assert "113" in said
        assert "0800-0113" in said
        assert "0800-0432" in said
        assert "1813" not in said
    finally:
        await world.engine.dispose()


async def test_help_buttons_still_work_after_the_crisis_reply(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)

    danger = text_of(await pupil.press("Ik ben nu in gevaar"))
    assert "Bel nu 112" in danger
    assert "101" in danger
    lines = text_of(await pupil.press("Toon alle hulplijnen"))
    assert "106" in lines
    assert "1712" in lines


async def test_a_second_crisis_message_updates_the_open_flag_without_new_notices(
    world: World,
) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    await world.messages(SARA)

    await pupil.send("ik ga er een einde aan maken")

    [flag] = await world.flags()
    assert flag.context["lines"][-1]["text"] == "ik ga er een einde aan maken"
    assert await world.messages(SARA) == []


async def test_an_unlinked_counsellor_gets_nothing_and_the_flag_still_stands(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)

    [flag] = await world.flags()
    async with world.conversation.sessions() as session:
        rows = (
            await session.scalars(select(Outbox).where(Outbox.staff_id == world.ids["mo"]))
        ).all()
    assert rows == []  # Mo has no linked Telegram account
    assert flag.state == "open"
    assert len(await world.messages(SARA)) == 1


async def test_a_crisis_nobody_acknowledges_is_escalated_once_to_counsellors_and_admins(
    world: World,
) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    await world.messages(SARA)

    world.clock.advance(minutes=14)
    assert await world.net.tick() == (0, 0)
    assert await world.messages(SARA) == []

    world.clock.advance(minutes=2)
    assert await world.net.tick() == (0, 1)
    [again] = await world.messages(SARA)
    [admin] = await world.messages(DIRK)
    for notice in (again, admin):
        assert "nog niet opgenomen" in notice.text
        assert "15 minuten" in notice.text
        assert notice.priority == 1
        assert notice.labels == ["Ik neem dit op"]
    assert await world.messages(AN) == []
    [flag] = await world.flags()
    assert flag.escalated_at is not None

    world.clock.advance(minutes=30)
    assert await world.net.tick() == (0, 0)  # once, not every tick
    assert await world.messages(SARA) == []
    async with world.conversation.sessions() as session:
        actions = (await session.scalars(select(FlagEvent.action).order_by(FlagEvent.id))).all()
    assert actions == ["opened", "escalated"]


async def test_an_acknowledged_crisis_is_not_escalated(world: World) -> None:
    from bot import relay

    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    [flag] = await world.flags()
    async with world.conversation.sessions.begin() as session:
        await relay.acknowledge(
            session, flag_id=flag.id, staff=await world.staff("sara"), now=world.clock()
        )

    world.clock.advance(minutes=20)
    assert await world.net.tick() == (0, 0)
    assert await world.messages(DIRK) == []


async def test_escalation_time_comes_from_the_settings(database_url: str) -> None:
    world = await build_world(database_url, escalation_minutes=0.05)
    try:
        assert world.net.escalation_after == timedelta(seconds=3)
        assert world.net.interval == 0.75
        pupil = world.pupil("Noor", 1001)
        await pupil.join()
        await pupil.send(CRISIS)
        world.clock.advance(seconds=4)
        assert await world.net.tick() == (0, 1)
    finally:
        await world.engine.dispose()


async def test_a_crisis_is_answered_without_waiting_for_a_hanging_rasa(world: World) -> None:
    import asyncio

    from nlu.types import Parse

    async def hanging(_text: str) -> Parse | None:
        await asyncio.sleep(30)
        return None

    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    world.conversation.parse = hanging
    try:
        got = await asyncio.wait_for(pupil.send(CRISIS), timeout=2)
    finally:
        world.conversation.parse = None
    assert "1813, dag en nacht" in text_of(got)


async def test_the_consent_tells_the_pupil_what_a_counsellor_will_see(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.send(f"/start {world.codes['5A']}")
    consent = text_of(await pupil.press("13 of ouder"))
    assert (
        "Schrijf je dat je niet veilig bent? Dan laat ik dat weten aan de "
        "leerlingenbegeleider. Ook als je het privé zet." in consent
    )
    assert (
        "Die ziet dan je laatste berichten aan mij, maar niet je antwoorden "
        "'alleen voor mij'." in consent
    )


async def test_text_after_the_crisis_reply_gets_help_not_a_puzzled_bot(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)

    [after] = await pupil.send("ik weet het echt niet meer")

    assert after.text.startswith("Dank je dat je het mij vertelt.")
    assert "1813, dag en nacht" in after.text
    assert "begrijp" not in after.text
    assert after.labels == [
        "Toon alle hulplijnen",
        "Ik wil met iemand praten",
        "Ik wil verder praten",
    ]
    assert "Met wie wil je praten?" in text_of(await pupil.press("Ik wil met iemand praten"))
    assert len(await world.flags()) == 1  # no second flag: the first one still stands


async def test_menu_still_works_after_the_crisis_reply(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.send(CRISIS)
    assert "Wat wil je doen?" in text_of(await pupil.send("menu"))
