"""Contact requests: from the menu and from free text, to the right person, one flag each."""

from __future__ import annotations

from nlu.types import Parse
from tests.safety.world import AN, BART, DIRK, SARA, World, text_of

REQUEST = Parse("request_contact", 0.95)


async def test_a_contact_request_from_the_menu_reaches_the_class_teacher(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()

    assert "Met wie wil je praten?" in text_of(await pupil.press("Ik wil met iemand praten"))
    await pupil.press("Mijn klastitularis")
    await pupil.send("over mijn stage")
    got = await pupil.press("Ja, het is dringend")

    said = text_of(got)
    assert "Ik heb je vraag doorgegeven aan je klastitularis." in said
    assert "zo snel mogelijk" in said
    assert "'s Avonds en in het weekend kan dat niet." in said
    assert "Wat wil je doen?" in said  # back in the menu
    [flag] = await world.flags()
    assert (flag.kind, flag.target, flag.urgent, flag.about) == (
        "contactvraag",
        "leerkracht",
        True,
        "over mijn stage",
    )
    [notice] = await world.messages(AN)
    assert f"Dringende contactvraag #{flag.id}" in notice.text
    assert "de klastitularis" in notice.text
    assert "Klas: 5A" in notice.text
    assert "stage" not in notice.text  # what it is about is pupil text: dashboard only
    assert notice.labels == ["Ik neem dit op"]
    for chat in (SARA, DIRK, BART):
        assert await world.messages(chat) == []


async def test_free_text_asking_for_the_teacher_starts_the_same_request(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()

    got = await pupil.send("kan ik met mijn leerkracht praten", parse=REQUEST)
    assert "Met wie wil je praten?" in text_of(got)
    await pupil.press("Mijn klastitularis")
    await pupil.press("Sla over")
    got = await pupil.press("Nee, het kan wachten")

    assert "Dat kan een paar dagen duren." in text_of(got)
    [flag] = await world.flags()
    assert (flag.kind, flag.target, flag.urgent) == ("contactvraag", "leerkracht", False)
    [notice] = await world.messages(AN)
    assert notice.text.startswith(f"Contactvraag #{flag.id}")
    assert notice.priority == 3


async def test_a_request_for_the_counsellor_or_clb_goes_to_the_counsellors(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.press("Ik wil met iemand praten")
    await pupil.press("Het CLB")
    await pupil.press("Sla over")
    said = text_of(await pupil.press("Nee, het kan wachten"))

    assert "Die brengt het CLB op de hoogte." in said
    [flag] = await world.flags()
    assert flag.target == "clb"
    [notice] = await world.messages(SARA)
    assert "het CLB" in notice.text
    assert await world.messages(AN) == []


async def test_asking_again_updates_the_open_request_and_urgency_tells_the_teacher_again(
    world: World,
) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    for urgency in ("Nee, het kan wachten", "Nee, het kan wachten", "Ja, het is dringend"):
        await pupil.press("Ik wil met iemand praten")
        await pupil.press("Mijn klastitularis")
        await pupil.press("Sla over")
        await pupil.press(urgency)

    [flag] = await world.flags()
    assert flag.urgent
    notices = await world.messages(AN)
    assert [n.text.split(" #")[0] for n in notices] == ["Contactvraag", "Dringende contactvraag"]


async def test_a_class_without_a_teacher_account_sends_the_request_to_the_counsellors(
    world: World,
) -> None:
    from store.models import SchoolClass

    async with world.conversation.sessions.begin() as session:
        klass = await session.get(SchoolClass, world.ids["class:5A"])
        assert klass is not None
        klass.teacher_id = None
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.press("Ik wil met iemand praten")
    await pupil.press("Mijn klastitularis")
    await pupil.press("Sla over")
    await pupil.press("Nee, het kan wachten")

    assert len(await world.messages(SARA)) == 1
    assert await world.messages(AN) == []
