"""Teacher pages: classes, join page with QR, progress, assigning, shared answers, CSV."""

from __future__ import annotations

from sqlalchemy import func, select

from store.db import make_engine, make_sessions
from store.models import Assignment, Outbox, SchoolClass
from tests.dashboard.conftest import BOT, Login
from tests.dashboard.seed import (
    NIETS_MARK,
    PRIVATE_MARK,
    SUMMARY_ONLY_HIDDEN,
    Seed,
)


async def count(url: str, stmt: object) -> int:
    engine = make_engine(url)
    try:
        async with make_sessions(engine)() as session:
            return int(await session.scalar(stmt) or 0)  # type: ignore[call-overload]
    finally:
        await engine.dispose()


async def test_teacher_sees_only_own_classes(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    page = await client.get("/klassen")
    assert page.status_code == 200
    assert ">5A</a>" in page.text
    assert ">5B<" not in page.text
    assert ">6Y<" not in page.text


async def test_teacher_creates_class_and_sees_qr_and_deep_link(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    response = await client.post("/klassen", data={"name": "  6 BSO  ", "csrf": client.csrf})
    assert response.status_code == 303
    join = await client.get(response.headers["location"])
    assert join.status_code == 200
    assert "Klas 6 BSO is gemaakt." in join.text
    assert "<svg" in join.text
    assert 'class="qr"' in join.text
    code = join.text.split("/start ")[1][:8]
    assert f"https://t.me/{BOT}?start={code}" in join.text
    assert (
        await count(
            seeded.url,
            select(func.count()).select_from(SchoolClass).where(SchoolClass.name == "6 BSO"),
        )
        == 1
    )


async def test_class_page_shows_progress_per_pupil(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    page = await client.get(f"/klassen/{seeded.classes['a']}")
    assert page.status_code == 200
    text = page.text
    for name in ("Noor", "Yusuf", "Lotte", "Jens", "Amira", "Kobe"):
        assert name in text
    assert ">Bo <" not in text
    assert text.count('badge done">klaar') >= 4
    assert "pauze 3/5" in text
    assert "nog niet" in text
    assert 'aria-label="Afgewerkte modules per module"' in text  # 6 pupils: chart shown


async def test_shared_answers_respect_share_choice_and_private(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    page = await client.get(f"/klassen/{seeded.classes['a']}/modules/wie-ben-ik")
    assert page.status_code == 200
    text = page.text
    assert "Ik heb een fiets gemaakt" in text  # Amira: alles
    assert "Ik hielp een klant zoeken" in text  # Yusuf: samenvatting includes voorbeeld
    assert SUMMARY_ONLY_HIDDEN not in text  # ...but not his scale answer
    assert NIETS_MARK not in text  # Lotte: niets
    assert "Deelt niets, alleen dat het klaar is." in text
    assert PRIVATE_MARK not in text  # Noor's private answer
    assert "Antwoord van klas B" not in text


async def test_csv_export_has_progress_and_no_answers(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    response = await client.get(f"/klassen/{seeded.classes['a']}/voortgang.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "leerling;pseudoniem;laatste activiteit;Wie ben ik?;Hoe gaat het op school?"
    rows = {line.split(";")[0]: line.split(";") for line in lines[1:]}
    assert rows["Noor"][3] == "klaar"
    assert rows["Jens"][3] == "3/5"
    assert rows["Kobe"][3] == "nog niet"
    assert PRIVATE_MARK not in response.text


async def test_assigning_a_module_queues_a_notice_for_each_pupil(
    login: Login, seeded: Seed
) -> None:
    client = await login("teacher_b")
    before = await count(seeded.url, select(func.count()).select_from(Outbox))
    response = await client.post(
        f"/klassen/{seeded.classes['b']}/opdrachten",
        data={"module": "hoe-gaat-het-op-school", "due": "2026-12-18", "csrf": client.csrf},
    )
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    assert (
        "Hoe gaat het op school? is gegeven aan 5B. 1 leerling(en) kregen een bericht."
        in page.text
    )
    assert "tegen 18/12/2026" in page.text
    assert (
        await count(
            seeded.url,
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.class_id == seeded.classes["b"]),
        )
        == 2
    )
    assert await count(seeded.url, select(func.count()).select_from(Outbox)) == before + 1
