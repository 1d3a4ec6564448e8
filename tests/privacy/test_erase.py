"""/vergeetmij: after one confirmation nothing of the pupil remains but a pseudonymised flag."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from store import repo
from store.models import Base, Flag, FlagEvent, Outbox, Pupil
from tests.privacy.conftest import answer_first_steps
from tests.support.dbstate import dump_text, snapshot
from tests.support.ptb import BotRig

EXAMPLE = "Ik repareerde de fiets van mijn buurman Xantippe"
CONTACT_ABOUT = "het gaat over mijn stage bij garage Quirinus"
CRISIS = "ik wil dood"
OTHER_EXAMPLE = "Ik hielp mijn zus met haar huiswerk Beatrix"


async def close_with_staff_note(rig: BotRig, note: str) -> None:
    """A counsellor closes every flag with a note (the school's record of its care)."""
    now = datetime.now(UTC)
    async with rig.runtime.sessions.begin() as session:
        school = await repo.school_by_name(session, "Sint-Jozef VTI")
        assert school is not None
        counsellor = await repo.add_staff(
            session,
            school=school,
            email="sara@school.be",
            name="Sara",
            role="counsellor",
            password_hash=None,
        )
        for flag in (await session.scalars(select(Flag))).all():
            flag.state = "closed"
            flag.closed_at = now
            flag.close_note = note
            await repo.add_flag_event(
                session, flag=flag, action="closed", staff_id=counsellor.id, note=note, now=now
            )


async def rows_of(rig: BotRig, pupil_id: int) -> dict[str, int]:
    """How many rows each table with a pupil_id column holds for this pupil."""
    counts = {}
    async with rig.runtime.sessions() as session:
        for mapper in Base.registry.mappers:
            table = mapper.local_table
            if "pupil_id" in table.c:
                counts[table.name] = int(
                    await session.scalar(
                        select(func.count()).select_from(table).where(table.c.pupil_id == pupil_id)
                    )
                    or 0
                )
    return counts


async def test_vergeetmij_leaves_only_a_pseudonymised_flag(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code, name="Noortje")
    other = await rig.join(code, name="Yusuf")
    await answer_first_steps(rig, other, OTHER_EXAMPLE)
    await answer_first_steps(rig, noor, EXAMPLE)
    await rig.say(noor, CRISIS)
    await rig.press(noor, "Ik wil verder praten")
    await rig.say(noor, "/praten")
    await rig.press(noor, "Leerlingenbegeleider")
    await rig.say(noor, CONTACT_ABOUT)
    await rig.press(noor, "Nee, het kan wachten")
    await close_with_staff_note(rig, "Gesprek gehad op 12/3, verder met het CLB.")
    pupil = await rig.pupil(noor)
    assert pupil is not None
    pupil_id, pseudonym = pupil.id, pupil.pseudonym
    assert sum((await rows_of(rig, pupil_id)).values()) > 10
    text_before = await dump_text(rig.runtime.engine)
    assert EXAMPLE in text_before
    assert CONTACT_ABOUT in text_before
    other_before = await rows_of(rig, (await rig.pupil(other)).id)  # type: ignore[union-attr]

    mark = await rig.last_outbox_id()
    await rig.say(noor, "/vergeetmij")
    asked = await rig.texts(noor, after=mark)
    assert "een melding aan de leerlingenbegeleider blijft bewaard" in asked[0]
    assert asked[-1].startswith("Wil je dat ik alles over jou wis?")
    await rig.press(noor, "Ja, wis alles")

    assert rig.errors == []
    assert await rig.pupil(noor) is None
    assert set((await rows_of(rig, pupil_id)).values()) == {0}
    everything = await dump_text(rig.runtime.engine)
    for gone in (EXAMPLE, CONTACT_ABOUT, CRISIS, "Noortje"):
        assert gone not in everything, f"{gone!r} is still stored"
    # The other pupil keeps everything.
    assert await rows_of(rig, (await rig.pupil(other)).id) == other_before  # type: ignore[union-attr]
    assert OTHER_EXAMPLE in everything

    async with rig.runtime.sessions() as session:
        flags = (await session.scalars(select(Flag).order_by(Flag.id))).all()
        notes = [e.note for e in (await session.scalars(select(FlagEvent))).all()]
        goodbye = (await session.scalars(select(Outbox).where(Outbox.chat_id == noor))).all()
    assert {f.kind for f in flags} == {"crisis", "contactvraag"}
    for flag in flags:
        assert flag.pupil_id is None
        assert flag.pupil_pseudonym == pseudonym
        assert flag.context == {"lines": []}
        assert set(flag.evidence.get("items", [])) <= {repo.ERASED}
        assert flag.close_note == "Gesprek gehad op 12/3, verder met het CLB."
        assert flag.class_id is not None
    assert next(f for f in flags if f.kind == "contactvraag").about == repo.ERASED
    assert "Gesprek gehad op 12/3, verder met het CLB." in notes
    # Only the goodbye waits for the chat, tied to nobody.
    assert [(r.pupil_id, r.payload["text"]) for r in goodbye] == [
        (
            None,
            "Je gegevens zijn gewist. Wil je later opnieuw starten? "
            "Open dan de link van je leerkracht.",
        )
    ]


async def test_pupil_who_says_no_keeps_everything(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code)
    await answer_first_steps(rig, noor, EXAMPLE)
    await rig.say(noor, "/vergeetmij")  # pauses the module, like /menu
    before = await snapshot(
        rig.runtime.engine, skip={"outbox", "transcript", "processed_update", "pupil"}
    )
    mark = await rig.last_outbox_id()
    await rig.press(noor, "Nee, toch niet")
    assert (await rig.texts(noor, after=mark))[:2] == [
        "Oké, ik wis niets.",
        "Wat wil je doen? Kies hieronder.",
    ]
    after = await snapshot(
        rig.runtime.engine, skip={"outbox", "transcript", "processed_update", "pupil"}
    )
    assert after == before
    assert await rig.pupil(noor) is not None


async def test_erased_pupil_is_a_stranger_afterwards(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.join(code)
    await rig.say(noor, "/vergeetmij")
    await rig.press(noor, "Ja, wis alles")
    mark = await rig.last_outbox_id()
    await rig.say(noor, "hallo?")
    assert await rig.texts(noor, after=mark) == [
        "Hoi! Ik ben Leerbot. Om te starten heb je de link van je leerkracht nodig. "
        "Vraag je leerkracht om de link of de QR-code."
    ]
    assert await rig.pupil(noor) is None
    # Joining again starts from nothing.
    await rig.join(code, user_id=noor)
    pupil = await rig.pupil(noor)
    assert pupil is not None
    assert pupil.consent_at is not None
    async with rig.runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Pupil)) == 1


async def test_vergeetmij_before_consent_keeps_the_consent_question(rig: BotRig) -> None:
    code = await rig.seed_class()
    noor = await rig.sandbox_user("Noor")
    await rig.say(noor, f"/start {code}")
    await rig.press(noor, "13 of ouder")
    await rig.say(noor, "/vergeetmij")
    mark = await rig.last_outbox_id()
    await rig.press(noor, "Nee, toch niet")
    texts = await rig.texts(noor, after=mark)
    assert texts[0] == "Oké, ik wis niets."
    assert "Is dat oké voor jou?" in texts[-1]
    pupil = await rig.pupil(noor)
    assert pupil is not None
    assert pupil.consent_at is None
    # Declining consent and then erasing leaves nothing behind either.
    await rig.press(noor, "Nee")
    await rig.say(noor, "/vergeetmij")
    await rig.press(noor, "Ja, wis alles")
    assert await rig.pupil(noor) is None
    assert rig.errors == []
