"""Signing in: one message for every failure, throttling, cookie flags, sessions that end."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from content.loader import Catalog
from dashboard.app import create_app
from dashboard.security import MAX_FAILURES, LoginThrottle
from leerbot.settings import Settings
from tests.dashboard.conftest import Login, csrf_in
from tests.dashboard.seed import NOW, PASSWORD, Seed

WRONG = "Dit e-mailadres of wachtwoord klopt niet."


async def attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf": csrf_in(page.text)}
    )


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    anon: httpx.AsyncClient, seeded: Seed
) -> None:
    unknown = await attempt(anon, "niemand@sintjozef.be", PASSWORD)
    wrong = await attempt(anon, "an@sintjozef.be", "fout wachtwoord")
    assert unknown.status_code == wrong.status_code == 400
    assert WRONG in unknown.text
    assert WRONG in wrong.text
    # What was typed stays in the form, except the password.
    assert 'value="an@sintjozef.be"' in wrong.text
    assert "fout wachtwoord" not in wrong.text


async def test_deactivated_account_cannot_sign_in(
    login: Login, anon: httpx.AsyncClient, seeded: Seed
) -> None:
    admin = await login("admin_x")
    await admin.post(
        f"/beheer/personeel/{seeded.staff['teacher_b']}/actief",
        data={"active": "0", "csrf": admin.csrf},
    )
    response = await attempt(anon, "bert@sintjozef.be", PASSWORD)
    assert response.status_code == 400
    assert WRONG in response.text


async def test_sixth_try_waits_per_email(anon: httpx.AsyncClient, seeded: Seed) -> None:
    for _ in range(MAX_FAILURES):
        response = await attempt(anon, "an@sintjozef.be", "fout")
        assert response.status_code == 400
    # Even the right password waits now.
    response = await attempt(anon, "an@sintjozef.be", PASSWORD)
    assert response.status_code == 429
    assert "Te veel mislukte pogingen. Wacht 1 minuut" in response.text


async def test_throttle_per_ip_covers_many_emails(anon: httpx.AsyncClient, seeded: Seed) -> None:
    for i in range(MAX_FAILURES):
        await attempt(anon, f"gok{i}@sintjozef.be", "fout")
    response = await attempt(anon, "an@sintjozef.be", PASSWORD)
    assert response.status_code == 429


def test_throttle_waits_longer_after_each_extra_failure() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(MAX_FAILURES):
        throttle.failed("email:a")
    assert throttle.wait_seconds("email:a") == 60
    now[0] += 61
    assert throttle.wait_seconds("email:a") == 0
    throttle.failed("email:a")
    assert throttle.wait_seconds("email:a") == 120
    throttle.succeeded("email:a")
    assert throttle.wait_seconds("email:a") == 0


async def test_login_needs_csrf_token(anon: httpx.AsyncClient, seeded: Seed) -> None:
    await anon.get("/login")
    response = await anon.post("/login", data={"email": "an@sintjozef.be", "password": PASSWORD})
    assert response.status_code == 403


async def test_login_sets_a_fresh_http_only_lax_cookie_and_follows_next(
    anon: httpx.AsyncClient, seeded: Seed
) -> None:
    page = await anon.get("/login?next=/klassen/1")
    before = anon.cookies.get("leerbot_session")
    response = await anon.post(
        "/login",
        data={
            "email": "AN@sintjozef.be ",
            "password": PASSWORD,
            "csrf": csrf_in(page.text),
            "next": f"/klassen/{seeded.classes['a']}",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/klassen/{seeded.classes['a']}"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # http dashboard URL in tests
    assert anon.cookies.get("leerbot_session") != before


async def test_login_never_redirects_off_site(anon: httpx.AsyncClient, seeded: Seed) -> None:
    page = await anon.get("/login")
    response = await anon.post(
        "/login",
        data={
            "email": "an@sintjozef.be",
            "password": PASSWORD,
            "csrf": csrf_in(page.text),
            "next": "//evil.example/steal",
        },
    )
    assert response.headers["location"] == "/klassen"


async def test_cookie_is_secure_behind_https(seeded: Seed, catalog: Catalog) -> None:
    settings = Settings(
        database_url=seeded.url, bot_username="x_bot", dashboard_url="https://leerbot.school.be"
    )
    app = create_app(settings, catalog=catalog, clock=lambda: NOW)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        ) as client:
            page = await client.get("/login")
            assert "secure" in page.headers["set-cookie"].lower()
    finally:
        await app.state.web.engine.dispose()


async def test_logout_ends_the_session(login: Login) -> None:
    client = await login("teacher_a")
    response = await client.post("/logout", data={"csrf": client.csrf})
    assert response.status_code == 303
    page = await client.get("/klassen")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


async def test_a_new_password_ends_older_sessions(
    login: Login, app: Starlette, seeded: Seed
) -> None:
    client = await login("teacher_a")
    from store import dashboard_queries as q

    async with app.state.web.sessions.begin() as session:
        staff = await q.staff_by_id(session, seeded.staff["teacher_a"])
        assert staff is not None
        await q.set_password_hash(session, staff, "$argon2id$v=19$other")
    page = await client.get("/klassen")
    assert page.status_code == 303


async def test_security_headers_and_health(anon: httpx.AsyncClient) -> None:
    health = await anon.get("/healthz")
    assert health.status_code == 200
    assert health.text == "ok"
    page = await anon.get("/login")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/static/app.css", "/static/app.js"])
async def test_static_files_are_served_locally(anon: httpx.AsyncClient, path: str) -> None:
    response = await anon.get(path)
    assert response.status_code == 200
    assert "http" not in response.text.split("*/", 1)[-1]  # no CDN or remote fetches
