"""Counsellor pages: the queue by urgency, live updates, one flag, reply and close."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from starlette.applications import Starlette

from bot.flags import raise_flag
from flows.types import FlagRaised
from store.models import AuditLog, Flag, Outbox, Pupil
from tests.dashboard.conftest import Login
from tests.dashboard.seed import NOW, PRIVATE_LINE, Seed


async def add_flag(app: Starlette, pupil_id: int, level: str, hours_ago: float) -> int:
    async with app.state.web.sessions.begin() as session:
        pupil = await session.get(Pupil, pupil_id)
        flag, _ = await raise_flag(
            session,
            pupil,
            FlagRaised(level=level, reason=f"test_{level}"),
            NOW - timedelta(hours=hours_ago),
        )
        return flag.id


async def test_queue_is_ordered_by_urgency_then_age(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    p = seeded.pupils
    aandacht = await add_flag(app, p["lotte"], "aandacht", 30)
    zorg_new = await add_flag(app, p["jens"], "zorg", 0.5)
    zorg_old = await add_flag(app, p["amira"], "zorg", 10)
    crisis_new = await add_flag(app, p["kobe"], "crisis", 0.1)
    client = await login("counsellor_x")
    page = await client.get("/meldingen")
    order = [int(part.split('"')[0]) for part in page.text.split('data-flag="')[1:]]
    # crisis (older Noor, newer Kobe) > zorg (old, new) > aandacht > contactvraag
    assert order == [
        seeded.flags["x"],
        crisis_new,
        zorg_old,
        zorg_new,
        aandacht,
        seeded.flags["x2"],
        seeded.flags["x3"],
    ]
    assert "ze pesten mij" not in page.text  # school Y's flag


async def test_queue_fragment_answers_204_until_something_changes(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    client = await login("counsellor_x")
    first = await client.get("/meldingen/lijst")
    stamp = first.headers["x-queue-stamp"]
    assert first.headers["x-queue-crisis"] == "1"
    same = await client.get("/meldingen/lijst", params={"stamp": stamp})
    assert same.status_code == 204
    new = await add_flag(app, seeded.pupils["kobe"], "crisis", 0)
    changed = await client.get("/meldingen/lijst", params={"stamp": stamp})
    assert changed.status_code == 200
    assert f'data-flag="{new}"' in changed.text
    assert changed.headers["x-queue-crisis"] == "2"


async def test_flag_page_shows_context_and_writes_an_audit_row(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    client = await login("counsellor_x")
    page = await client.get(f"/meldingen/{seeded.flags['x']}")
    assert page.status_code == 200
    text = page.text
    assert "Crisis" in text
    assert "5A" in text
    assert "ik zie het niet meer zitten" in text  # evidence
    assert "gemeld door de bot" in text  # history
    assert PRIVATE_LINE not in text
    async with app.state.web.sessions() as session:
        rows = (
            await session.scalars(
                select(AuditLog).where(AuditLog.staff_id == seeded.staff["counsellor_x"])
            )
        ).all()
    assert any(str(seeded.flags["x"]) in row.target for row in rows if row.action != "login")


async def test_reply_reaches_the_pupils_outbox_and_close_ends_the_flag(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    client = await login("counsellor_x")
    flag_id = seeded.flags["x"]
    response = await client.post(f"/meldingen/{flag_id}/gezien", data={"csrf": client.csrf})
    assert response.status_code == 303
    response = await client.post(
        f"/meldingen/{flag_id}/antwoord",
        data={
            "text": "Dag, ik ben Sara. Ik kom morgen om 9 uur naar je klas.",
            "csrf": client.csrf,
        },
    )
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    assert "Je bericht is verstuurd." in page.text
    async with app.state.web.sessions() as session:
        noor = await session.get(Pupil, seeded.pupils["noor"])
        assert noor is not None
        sent = await session.scalars(select(Outbox).where(Outbox.chat_id == noor.chat_id))
        texts = " ".join(str(row.payload.get("text", "")) for row in sent.all())
    assert "Ik kom morgen om 9 uur naar je klas." in texts
    response = await client.post(
        f"/meldingen/{flag_id}/sluiten",
        data={"note": "Gesprek gehad, CLB ingeschakeld.", "csrf": client.csrf},
    )
    assert response.status_code == 303
    async with app.state.web.sessions() as session:
        flag = await session.get(Flag, flag_id)
        assert flag is not None
        assert flag.state == "closed"
    queue = await client.get("/meldingen")
    open_part = queue.text.split("Onlangs gesloten")[0]
    assert f'data-flag="{flag_id}"' not in open_part
    assert f'href="/meldingen/{flag_id}"' in queue.text.split("Onlangs gesloten")[1]


async def test_teacher_answers_a_contact_request_addressed_to_them(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    teacher = await login("teacher_a")
    listing = await teacher.get("/contactvragen")
    flag_id = seeded.flags["x3"]
    assert f'data-flag="{flag_id}"' in listing.text
    assert f'data-flag="{seeded.flags["x"]}"' not in listing.text  # the crisis flag
    page = await teacher.get(f"/meldingen/{flag_id}")
    assert page.status_code == 200
    assert "Kan ik eens praten over mijn stage?" in page.text
    assert "Gesprek rond de melding" not in page.text  # no transcript for teachers
    response = await teacher.post(
        f"/meldingen/{flag_id}/antwoord",
        data={"text": "Natuurlijk, morgen na de les?", "csrf": teacher.csrf},
    )
    assert response.status_code == 303
    page = await teacher.get(f"/meldingen/{flag_id}")
    assert "Natuurlijk, morgen na de les?" in page.text
