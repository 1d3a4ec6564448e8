"""Consent that fits the age (BE digital consent age 13), end to end: real bot, sandbox chat."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sandbox.driver import BotMessage
from store.db import make_engine, make_sessions
from store.models import Pupil, Run
from tests.support.stack import running_stack, until

pytestmark = pytest.mark.e2e

UNDER_13 = (
    "Je bent jonger dan 13. Dan moet een ouder het goed vinden dat je Leerbot gebruikt. "
    "Je school vraagt dat aan je ouders."
)


def texts(messages: list[BotMessage]) -> str:
    return "\n".join(m.content for m in messages)


async def pupil_row(url: str, user_id: int) -> tuple[Pupil, int]:
    engine = make_engine(url)
    try:
        async with make_sessions(engine)() as session:
            pupil = (
                await session.scalars(select(Pupil).where(Pupil.telegram_user_id == user_id))
            ).one()
            runs = len((await session.scalars(select(Run).where(Run.pupil_id == pupil.id))).all())
            return pupil, runs
    finally:
        await engine.dispose()


async def test_consent_fits_the_age(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        code = await stack.seed_class()

        # Under 13: a parent must agree, and the school asks them.
        lotte = await stack.pupil("Lotte")
        await lotte.send(f"/start {code}")
        await until(lotte, "Hoe oud ben je?")
        await lotte.press("Jonger dan 13")
        shown = texts(await until(lotte, "Is dat oké voor jou?"))
        assert UNDER_13 in shown
        assert lotte.last_buttons == [["Ja, dat is oké"], ["Vertel meer", "Nee"]]
        # Nothing opens before the answer: the question comes back.
        await lotte.send("/menu")
        shown = texts(await until(lotte, "Is dat oké voor jou?"))
        assert "Eerst moet je ja of nee zeggen" in shown
        assert UNDER_13 in shown
        await lotte.press("Vertel meer")
        shown = texts(await until(lotte, "Is dat oké voor jou?"))
        assert "/vergeetmij" in shown
        assert UNDER_13 in shown
        await lotte.press("Ja, dat is oké")
        shown = texts(await until(lotte, "Wat wil je doen?"))
        assert "Dank je! We kunnen beginnen." in shown
        assert "Wat wil je doen?" in shown

        # 13 or older: the pupil agrees alone; a "no" keeps everything closed.
        jamal = await stack.pupil("Jamal")
        await jamal.send(f"/start {code}")
        await until(jamal, "Hoe oud ben je?")
        await jamal.press("13 of ouder")
        shown = texts(await until(jamal, "Is dat oké voor jou?"))
        assert "Je leerkracht ziet alleen wat jij deelt" in shown
        assert "jonger dan 13" not in shown
        await jamal.press("Nee")
        shown = texts(await until(jamal, "Is dat oké voor jou?"))
        assert "Zonder jouw ja kan ik niet starten." in shown
        await jamal.send("/praten")
        shown = texts(await until(jamal, "Is dat oké voor jou?"))
        assert "Eerst moet je ja of nee zeggen" in shown
        assert "Met wie wil je praten?" not in shown

    pupil, _ = await pupil_row(database_url, lotte.user_id)
    assert pupil.age_band == "u13"
    assert pupil.consent_at is not None
    pupil, runs = await pupil_row(database_url, jamal.user_id)
    assert pupil.age_band is None  # stored with the consent only
    assert pupil.consent_at is None
    assert runs == 0
