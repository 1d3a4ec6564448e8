"""Early warning: who shows up, in which order, for whom, and the contact button."""

from __future__ import annotations

from sqlalchemy import select
from starlette.applications import Starlette

from store.models import Flag
from tests.dashboard.conftest import Login
from tests.dashboard.seed import Seed


async def test_teacher_sees_concerns_sorted_and_only_shared_checkins(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    client = await login("teacher_a")
    page = await client.get("/signalen")
    assert page.status_code == 200
    text = page.text
    assert "Denkt vaak aan stoppen met school" in text
    assert "Voelt zich niet goed op school (1 op 5)" in text
    assert "Was meer dan 5 dagen afwezig" in text
    assert "Gestopt in Wie ben ik? bij vraag 3/5, 5 dagen geleden" in text
    assert "Al 20 dagen niets van gehoord" in text
    names = [line.split("</th>")[0] for line in text.split('<th scope="row">')[1:]]
    assert [n.split(" <small")[0] for n in names] == ["Amira", "Kobe", "Jens"]
    # Lotte said "Vaak" too, but shared nothing: not on the teacher's list.
    assert "Lotte" not in text


async def test_counsellor_sees_the_whole_school_with_pseudonyms(
    login: Login, seeded: Seed
) -> None:
    client = await login("counsellor_x")
    page = await client.get("/signalen")
    assert "Amira" not in page.text  # pseudonyms only for counsellors
    assert "Denkt vaak aan stoppen met school" in page.text
    other = await login("counsellor_y")
    page_y = await other.get("/signalen")
    assert "Al 30 dagen niets van gehoord" in page_y.text  # Yara, school Y
    assert "Denkt vaak aan stoppen" not in page_y.text


async def test_contact_button_makes_a_contact_flag_for_counsellors(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    teacher = await login("teacher_a")
    response = await teacher.post(
        f"/signalen/{seeded.pupils['kobe']}/contact", data={"csrf": teacher.csrf}
    )
    assert response.status_code == 303
    page = await teacher.get(response.headers["location"])
    assert "Gevraagd: de leerlingenbegeleider neemt contact op met Kobe." in page.text
    async with app.state.web.sessions() as session:
        flags = (
            await session.scalars(select(Flag).where(Flag.pupil_id == seeded.pupils["kobe"]))
        ).all()
    assert [f.kind for f in flags] == ["contactvraag"]
    counsellor = await login("counsellor_x")
    queue = await counsellor.get("/meldingen")
    assert f'data-flag="{flags[0].id}"' in queue.text
    # The teacher never sees the flag itself.
    assert (await teacher.get(f"/meldingen/{flags[0].id}")).status_code == 404
