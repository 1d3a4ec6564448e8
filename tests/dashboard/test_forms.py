"""Bad input gives the form again, with the message next to the field and nothing lost."""

from __future__ import annotations

import re

import pytest

from tests.dashboard.conftest import Login
from tests.dashboard.seed import Seed


def field_error(html: str, field: str) -> str:
    """The error text shown next to one field (empty when none)."""
    found = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', html)
    return found.group(1) if found else ""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Geef de klas een naam, bijvoorbeeld 5BSO-A."),
        ("   ", "Geef de klas een naam, bijvoorbeeld 5BSO-A."),
        ("5A", "Er is al een klas met de naam 5A in je school. Kies een andere naam."),
        ("5B", "Er is al een klas met de naam 5B in je school. Kies een andere naam."),
        ("x" * 41, "Die naam is te lang. Gebruik maximaal 40 tekens."),
    ],
)
async def test_bad_class_name_shows_the_form_again(
    login: Login, seeded: Seed, name: str, message: str
) -> None:
    client = await login("teacher_a")
    response = await client.post("/klassen", data={"name": name, "csrf": client.csrf})
    assert response.status_code == 400
    assert field_error(response.text, "name") == message
    assert f'value="{name.strip()}"' in response.text
    assert 'aria-invalid="true"' in response.text


async def test_class_name_of_another_school_is_fine(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    response = await client.post("/klassen", data={"name": "6Y", "csrf": client.csrf})
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("due", "message"),
    [
        ("2026-13-45", "Die datum klopt niet. Kies een dag in de kalender (dd/mm/jjjj)."),
        ("morgen", "Die datum klopt niet. Kies een dag in de kalender (dd/mm/jjjj)."),
        ("2026-11-24", "Die datum is al voorbij. Kies vandaag of een dag later."),
        ("2028-01-01", "Kies een datum binnen het komende jaar."),
    ],
)
async def test_bad_due_date_keeps_what_was_typed(
    login: Login, seeded: Seed, due: str, message: str
) -> None:
    client = await login("teacher_a")
    response = await client.post(
        f"/klassen/{seeded.classes['a']}/opdrachten",
        data={"module": "wie-ben-ik", "due": due, "csrf": client.csrf},
    )
    assert response.status_code == 400
    assert field_error(response.text, "due") == message
    assert f'value="{due}"' in response.text
    assert '<option value="wie-ben-ik" selected>' in response.text


async def test_unknown_module_is_refused(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    response = await client.post(
        f"/klassen/{seeded.classes['a']}/opdrachten",
        data={"module": "bestaat-niet", "due": "", "csrf": client.csrf},
    )
    assert response.status_code == 400
    assert field_error(response.text, "module") == "Kies een module uit de lijst."


async def test_due_date_today_and_empty_are_fine(login: Login, seeded: Seed) -> None:
    client = await login("teacher_a")
    for due in ("2026-11-25", ""):
        response = await client.post(
            f"/klassen/{seeded.classes['a']}/opdrachten",
            data={"module": "wie-ben-ik", "due": due, "csrf": client.csrf},
        )
        assert response.status_code == 303
    page = await client.get(f"/klassen/{seeded.classes['a']}")
    assert "De deadline van Wie ben ik? is aangepast." in page.text


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"name": "", "email": "x@sintjozef.be", "role": "teacher"}, "name", "Vul een naam in."),
        (
            {"name": "Ann", "email": "geen-adres", "role": "teacher"},
            "email",
            "Dit is geen geldig e-mailadres.",
        ),
        (
            {"name": "Ann", "email": "AN@sintjozef.be", "role": "teacher"},
            "email",
            "Er is al een account met dit e-mailadres.",
        ),
        (
            {"name": "Ann", "email": "ann@sintjozef.be", "role": "directeur"},
            "role",
            "Kies een rol.",
        ),
    ],
)
async def test_bad_invite_shows_the_form_again(
    login: Login, seeded: Seed, values: dict[str, str], field: str, message: str
) -> None:
    client = await login("admin_x")
    response = await client.post("/beheer/personeel", data={**values, "csrf": client.csrf})
    assert response.status_code == 400
    assert field_error(response.text, field) == message
    if values["name"]:
        assert f'value="{values["name"]}"' in response.text


async def test_empty_reply_and_note_keep_the_flag_page(login: Login, seeded: Seed) -> None:
    client = await login("counsellor_x")
    flag = seeded.flags["x"]
    response = await client.post(
        f"/meldingen/{flag}/antwoord", data={"text": "  ", "csrf": client.csrf}
    )
    assert response.status_code == 400
    assert field_error(response.text, "text") == "Schrijf eerst een bericht."
    response = await client.post(
        f"/meldingen/{flag}/sluiten", data={"note": "", "csrf": client.csrf}
    )
    assert response.status_code == 400
    assert field_error(response.text, "note") == "Schrijf kort wat er gebeurd is."
