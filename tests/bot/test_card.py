"""The loopbaankaart: the pupil's own words on one readable portrait image."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import select

from bot.app import Runtime, build_runtime
from bot.card import _font, _wrap, card_content, render_card
from content.loader import load_texts
from leerbot.settings import Settings
from store import repo
from store.models import Outbox, Pupil, Run
from tests.support.ptb import bot_rig

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
TEXTS = load_texts()


@pytest.fixture
async def runtime(sqlite_url: str) -> AsyncIterator[Runtime]:
    rt = build_runtime(Settings(database_url=sqlite_url))
    yield rt
    await rt.engine.dispose()


async def pupil_with(
    runtime: Runtime, user_id: int, answers: dict[tuple[str, str], tuple], *, at: datetime = NOW
) -> Pupil:
    """A pupil with finished runs holding these (value, display, private) answers."""
    async with runtime.sessions.begin() as session:
        pupil = await repo.create_pupil(
            session, telegram_user_id=user_id, chat_id=user_id, first_name="Noor"
        )
        runs: dict[str, Run] = {}
        for (module, step), (value, display, private) in answers.items():
            if module not in runs:
                runs[module] = Run(pupil_id=pupil.id, module_id=module, version="x", status="done")
                session.add(runs[module])
                await session.flush()
            await repo.save_answer(
                session,
                run=runs[module],
                step_id=step,
                value=value,
                display=display,
                private=private,
                now=at,
            )
        return pupil


async def content_for(runtime: Runtime, pupil: Pupil) -> dict[str, str | None]:
    async with runtime.sessions() as session:
        answers = await repo.answers_for_pupil(session, pupil.id)
    content = card_content(answers, texts=TEXTS, lang="nl", name=pupil.first_name)
    return dict(content.blocks)


async def test_the_card_shows_the_pupils_own_answers_private_ones_included(
    runtime: Runtime,
) -> None:
    noor = await pupil_with(
        runtime,
        1,
        {
            ("wie-ben-ik", "sterk"): (["handig"], "Handig met mijn handen, Ik hou vol", False),
            ("wat-vind-ik-belangrijk", "waarden"): (["helpen"], "Mensen helpen", False),
            ("beroepen-ontdekken", "beroep"): ("kok", "kok", False),
            ("beroepen-ontdekken", "beroep2"): ("kapper", "kapper", False),
            ("terugblik", "trots"): ("Mijn attest", "Mijn attest", True),
            ("terugblik", "stap"): (None, "weet ik niet", False),
            ("mijn-volgende-stap", "actie"): ("Ik maak een cv", "Ik maak een cv", False),
        },
    )
    await pupil_with(runtime, 2, {("wie-ben-ik", "sterk"): (["stipt"], "Ik ben stipt", False)})
    assert await content_for(runtime, noor) == {
        "Waar ik goed in ben": "Handig met mijn handen, Ik hou vol",
        "Wat ik belangrijk vind": "Mensen helpen",
        "Jobs die ik wil ontdekken": "kok, kapper",
        "Waar ik trots op ben": "Mijn attest",  # private: still the pupil's own card
        "Mijn volgende stap": "Ik maak een cv",  # "weet ik niet" is not a next step
    }


async def test_the_newest_answer_wins_and_empty_parts_say_so(runtime: Runtime) -> None:
    noor = await pupil_with(
        runtime, 1, {("wie-ben-ik", "sterk"): (["handig"], "Handig met mijn handen", False)}
    )
    async with runtime.sessions.begin() as session:
        run = Run(pupil_id=noor.id, module_id="wie-ben-ik", version="y", status="done")
        session.add(run)
        await session.flush()
        await repo.save_answer(
            session,
            run=run,
            step_id="sterk",
            value=["mensen"],
            display="Goed met mensen",
            private=False,
            now=NOW + timedelta(days=30),
        )
    blocks = await content_for(runtime, noor)
    assert blocks["Waar ik goed in ben"] == "Goed met mensen"
    assert blocks["Wat ik belangrijk vind"] is None


async def test_render_card_gives_a_portrait_png_or_nothing(runtime: Runtime) -> None:
    empty = await pupil_with(runtime, 1, {})
    noor = await pupil_with(runtime, 2, {("terugblik", "trots"): ("x" * 300, "x" * 300, False)})
    async with runtime.sessions() as session:
        assert await render_card(session, empty, "card:terugblik") is None
        png = await render_card(session, noor, "card:terugblik")
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (1080, 1350))


def test_long_answers_are_cut_with_an_ellipsis_to_stay_readable() -> None:
    font = _font(44)
    lines = _wrap("ik ben elke dag op tijd gekomen " * 10, font, 900, 3)
    assert len(lines) == 3
    assert lines[-1].endswith("…")
    assert all(font.getlength(line) <= 900 for line in lines)


async def test_finishing_terugblik_sends_the_card_as_a_photo(sqlite_url: str) -> None:
    async with bot_rig(sqlite_url) as rig:
        code = await rig.seed_class(module="terugblik")
        noor = await rig.join(code)
        for label in ("🆕 Terugblik", "🙂 Goed", "😐 Gaat wel", "🙂 Best goed", "😄 Heel goed"):
            await rig.press(noor, label)
        await rig.say(noor, "Ik ben elke dag op tijd gekomen")
        await rig.say(noor, "Ik zoek een stageplaats")
        await rig.press(noor, "Alles")
        await rig.press(noor, "Nee, dank je")
        assert rig.errors == []
        async with rig.runtime.sessions() as session:
            photos = (
                await session.scalars(
                    select(Outbox).where(Outbox.chat_id == noor, Outbox.method == "sendPhoto")
                )
            ).all()
    [photo] = photos
    assert photo.payload["caption"] == (
        "Dit is jouw loopbaankaart. Je mag ze bewaren of tonen aan wie jij wil."
    )
    image = Image.open(io.BytesIO(base64.b64decode(photo.payload["photo_b64"])))
    assert image.size == (1080, 1350)
