"""Admin pages: inviting colleagues, one-time links, deactivating, Telegram codes, modules, log."""

from __future__ import annotations

import re

import httpx

from tests.dashboard.conftest import Login, csrf_in
from tests.dashboard.seed import Seed

NEW_PASSWORD = "een lang nieuw wachtwoord"


def invite_path(html: str) -> str:
    found = re.search(r'<code id="invite-link">http://[^/]+(/uitnodiging/[^<]+)</code>', html)
    assert found, "no invitation link on the page"
    return found.group(1)


async def test_invited_colleague_chooses_a_password_once(
    login: Login, anon: httpx.AsyncClient, seeded: Seed
) -> None:
    admin = await login("admin_x")
    page = await admin.post(
        "/beheer/personeel",
        data={
            "name": "Lien Vos",
            "email": "lien@sintjozef.be",
            "role": "counsellor",
            "csrf": admin.csrf,
        },
    )
    assert page.status_code == 200
    assert "Link voor Lien Vos" in page.text
    assert "uitgenodigd" in page.text
    path = invite_path(page.text)

    form = await anon.get(path)
    assert form.status_code == 200
    assert "Welkom, Lien Vos" in form.text
    short = await anon.post(
        path, data={"password": "kort", "repeat": "kort", "csrf": csrf_in(form.text)}
    )
    assert short.status_code == 400
    assert "minstens 10 tekens" in short.text
    done = await anon.post(
        path, data={"password": NEW_PASSWORD, "repeat": NEW_PASSWORD, "csrf": csrf_in(form.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/meldingen"
    queue = await anon.get("/meldingen")
    assert queue.status_code == 200
    # The link is used up.
    assert (await anon.get(path)).status_code == 404


async def test_admin_cannot_deactivate_self_but_can_others(login: Login, seeded: Seed) -> None:
    admin = await login("admin_x")
    own = await admin.post(
        f"/beheer/personeel/{seeded.staff['admin_x']}/actief",
        data={"active": "0", "csrf": admin.csrf},
    )
    page = await admin.get(own.headers["location"])
    assert "Je kunt je eigen account niet uitzetten." in page.text
    other = await admin.post(
        f"/beheer/personeel/{seeded.staff['teacher_b']}/actief",
        data={"active": "0", "csrf": admin.csrf},
    )
    page = await admin.get(other.headers["location"])
    assert "Bert Claes kan niet meer aanmelden." in page.text


async def test_deactivated_staff_loses_an_open_session(login: Login, seeded: Seed) -> None:
    teacher = await login("teacher_b")
    admin = await login("admin_x")
    await admin.post(
        f"/beheer/personeel/{seeded.staff['teacher_b']}/actief",
        data={"active": "0", "csrf": admin.csrf},
    )
    assert (await teacher.get("/klassen")).status_code == 303


async def test_telegram_link_code_is_shown_with_deep_link(login: Login, seeded: Seed) -> None:
    admin = await login("admin_x")
    page = await admin.post(
        f"/beheer/personeel/{seeded.staff['counsellor_x']}/koppelcode", data={"csrf": admin.csrf}
    )
    assert page.status_code == 200
    code = re.search(r"/start (st_[A-Z0-9]+)", page.text)
    assert code
    assert f"https://t.me/leerbot_test_bot?start={code.group(1)}" in page.text


async def test_modules_page_shows_check_status(login: Login, seeded: Seed) -> None:
    admin = await login("admin_x")
    page = await admin.get("/beheer/modules")
    assert "Wie ben ik?" in page.text
    assert "wie-ben-ik.yaml" in page.text
    assert "in orde" in page.text


async def test_audit_log_shows_who_did_what_in_own_school_only(login: Login, seeded: Seed) -> None:
    teacher = await login("teacher_a")
    await teacher.get(f"/klassen/{seeded.classes['a']}/modules/wie-ben-ik")
    await login("teacher_y")
    admin = await login("admin_x")
    page = await admin.get("/beheer/audit")
    assert "antwoorden bekeken" in page.text
    assert "An Peeters" in page.text
    assert "Yves Maes" not in page.text
