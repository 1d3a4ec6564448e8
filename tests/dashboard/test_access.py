"""Who may open what: every route of the app, for every role, at the HTTP level (real DB).

The route list comes from the app itself: a new route without a case here fails
`test_every_route_has_an_access_case`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from content.loader import Catalog
from dashboard.app import create_app
from leerbot.settings import Settings
from tests.dashboard.conftest import Login, Recorder
from tests.dashboard.seed import NIETS_MARK, PRIVATE_LINE, PRIVATE_MARK, Seed

PathFn = Callable[[Seed], str]
ROLES_X = ("teacher_a", "counsellor_x", "admin_x")


@dataclass(frozen=True)
class Case:
    """How one route answers: `ok` users succeed, `denied` users get 404."""

    ok: tuple[tuple[str, PathFn, int], ...] = ()
    denied: tuple[tuple[str, PathFn], ...] = ()
    data: dict[str, str] = field(default_factory=dict)
    public: PathFn | None = None  # reachable without signing in (expected status below)
    public_status: int = 200


def fixed(path: str) -> PathFn:
    return lambda _seed: path


def klass(key: str, suffix: str = "") -> PathFn:
    return lambda seed: f"/klassen/{seed.classes[key]}{suffix}"


def flag(key: str, suffix: str = "") -> PathFn:
    return lambda seed: f"/meldingen/{seed.flags[key]}{suffix}"


def pupil(key: str) -> PathFn:
    return lambda seed: f"/signalen/{seed.pupils[key]}/contact"


def member(key: str, suffix: str) -> PathFn:
    return lambda seed: f"/beheer/personeel/{seed.staff[key]}{suffix}"


def only(role: str, path: PathFn, status: int = 200) -> tuple[tuple[str, PathFn, int], ...]:
    return ((role, path, status),)


def others(role: str, path: PathFn) -> tuple[tuple[str, PathFn], ...]:
    return tuple((r, path) for r in ROLES_X if r != role)


def class_case(suffix: str, status: int = 200, data: dict[str, str] | None = None) -> Case:
    """A teacher's class page: only the class's own teacher."""
    return Case(
        ok=only("teacher_a", klass("a", suffix), status),
        denied=(
            ("teacher_a", klass("b", suffix)),
            ("teacher_a", klass("y", suffix)),
            ("teacher_y", klass("a", suffix)),
            ("teacher_b", klass("a", suffix)),
            ("counsellor_x", klass("a", suffix)),
            ("admin_x", klass("a", suffix)),
        ),
        data=data or {},
    )


def flag_case(suffix: str, status: int = 200, data: dict[str, str] | None = None) -> Case:
    """A flag page: counsellors of the flag's school; a teacher only for a contact request
    addressed to them; never admins."""
    return Case(
        ok=(
            ("counsellor_x", flag("x", suffix), status),
            ("teacher_a", flag("x3", suffix), status),
        ),
        denied=(
            ("counsellor_x", flag("y", suffix)),
            ("counsellor_y", flag("x", suffix)),
            ("teacher_a", flag("x", suffix)),
            ("teacher_a", flag("x2", suffix)),
            ("teacher_b", flag("x3", suffix)),
            ("teacher_y", flag("x3", suffix)),
            ("admin_x", flag("x", suffix)),
            ("admin_x", flag("x3", suffix)),
        ),
        data=data or {},
    )


def staff_case(suffix: str, status: int, data: dict[str, str] | None = None) -> Case:
    """An admin action on a colleague: only admins of the colleague's school."""
    return Case(
        ok=only("admin_x", member("teacher_b", suffix), status),
        denied=(
            ("admin_x", member("teacher_y", suffix)),
            ("admin_y", member("teacher_b", suffix)),
            ("teacher_a", member("teacher_b", suffix)),
            ("counsellor_x", member("teacher_b", suffix)),
        ),
        data=data or {},
    )


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/healthz"): Case(public=fixed("/healthz")),
    ("GET", "/login"): Case(public=fixed("/login")),
    ("POST", "/login"): Case(
        public=fixed("/login"),
        public_status=403,
        data={"email": "an@sintjozef.be", "password": "x"},
    ),
    ("POST", "/logout"): Case(ok=tuple((r, fixed("/logout"), 303) for r in ROLES_X)),
    ("GET", "/uitnodiging/{token}"): Case(
        public=fixed("/uitnodiging/niet-geldig"), public_status=404
    ),
    ("POST", "/uitnodiging/{token}"): Case(
        public=fixed("/uitnodiging/niet-geldig"), public_status=403
    ),
    ("GET", "/"): Case(ok=tuple((r, fixed("/"), 303) for r in ROLES_X)),
    ("GET", "/klassen"): Case(
        ok=only("teacher_a", fixed("/klassen")), denied=others("teacher_a", fixed("/klassen"))
    ),
    ("POST", "/klassen"): Case(
        ok=only("teacher_a", fixed("/klassen"), 303),
        denied=others("teacher_a", fixed("/klassen")),
        data={"name": "Nieuwe klas"},
    ),
    ("GET", "/klassen/{class_id}"): class_case(""),
    ("GET", "/klassen/{class_id}/deelnemen"): class_case("/deelnemen"),
    ("POST", "/klassen/{class_id}/opdrachten"): class_case(
        "/opdrachten", 303, {"module": "wie-ben-ik", "due": "2026-12-18"}
    ),
    ("GET", "/klassen/{class_id}/modules/{module_id}"): class_case("/modules/wie-ben-ik"),
    ("GET", "/klassen/{class_id}/voortgang.csv"): class_case("/voortgang.csv"),
    ("GET", "/meldingen"): Case(
        ok=only("counsellor_x", fixed("/meldingen")),
        denied=others("counsellor_x", fixed("/meldingen")),
    ),
    ("GET", "/meldingen/lijst"): Case(
        ok=only("counsellor_x", fixed("/meldingen/lijst")),
        denied=others("counsellor_x", fixed("/meldingen/lijst")),
    ),
    ("GET", "/meldingen/{flag_id}"): flag_case(""),
    ("POST", "/meldingen/{flag_id}/gezien"): flag_case("/gezien", 303),
    ("POST", "/meldingen/{flag_id}/antwoord"): flag_case(
        "/antwoord", 303, {"text": "Ik spreek je morgen."}
    ),
    ("POST", "/meldingen/{flag_id}/sluiten"): flag_case(
        "/sluiten", 303, {"note": "Gesprek gehad."}
    ),
    ("GET", "/contactvragen"): Case(
        ok=only("teacher_a", fixed("/contactvragen")),
        denied=others("teacher_a", fixed("/contactvragen")),
    ),
    ("GET", "/signalen"): Case(
        ok=(("teacher_a", fixed("/signalen"), 200), ("counsellor_x", fixed("/signalen"), 200)),
        denied=(
            ("admin_x", fixed("/signalen")),
            ("teacher_a", lambda s: f"/signalen?klas={s.classes['b']}"),
            ("counsellor_x", lambda s: f"/signalen?klas={s.classes['y']}"),
        ),
    ),
    ("POST", "/signalen/{pupil_id}/contact"): Case(
        ok=(("teacher_a", pupil("kobe"), 303), ("counsellor_x", pupil("jens"), 303)),
        denied=(
            ("teacher_a", pupil("bo")),
            ("teacher_b", pupil("kobe")),
            ("counsellor_x", pupil("yara")),
            ("counsellor_y", pupil("kobe")),
            ("admin_x", pupil("kobe")),
        ),
    ),
    ("GET", "/beheer/personeel"): Case(
        ok=only("admin_x", fixed("/beheer/personeel")),
        denied=others("admin_x", fixed("/beheer/personeel")),
    ),
    ("POST", "/beheer/personeel"): Case(
        ok=only("admin_x", fixed("/beheer/personeel")),
        denied=others("admin_x", fixed("/beheer/personeel")),
        data={"name": "Nieuwe Collega", "email": "nieuw@sintjozef.be", "role": "teacher"},
    ),
    ("POST", "/beheer/personeel/{staff_id}/uitnodiging"): staff_case("/uitnodiging", 200),
    ("POST", "/beheer/personeel/{staff_id}/actief"): staff_case("/actief", 303, {"active": "0"}),
    ("POST", "/beheer/personeel/{staff_id}/koppelcode"): staff_case("/koppelcode", 200),
    ("GET", "/beheer/modules"): Case(
        ok=only("admin_x", fixed("/beheer/modules")),
        denied=others("admin_x", fixed("/beheer/modules")),
    ),
    ("GET", "/beheer/audit"): Case(
        ok=only("admin_x", fixed("/beheer/audit")),
        denied=others("admin_x", fixed("/beheer/audit")),
    ),
}
PUBLIC_MOUNTS = {"/static"}


def app_routes(app: Starlette) -> set[tuple[str, str]]:
    """(method, path) for every route of the app; mounts must be known public ones."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path in PUBLIC_MOUNTS, f"unknown mount {route.path}: add it to the matrix"
            continue
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path.replace(":int", "").replace(":str", "")))
    return found


def test_every_route_has_an_access_case(catalog: Catalog) -> None:
    app = create_app(
        Settings(database_url="sqlite+aiosqlite:///:memory:", bot_username="x_bot"),
        catalog=catalog,
    )
    routes = app_routes(app)
    assert routes - CASES.keys() == set(), "routes without an access case"
    assert CASES.keys() - routes == set(), "access cases for routes that no longer exist"


def assert_private_text_never_shown(recorder: Recorder) -> None:
    for where, body in recorder.bodies:
        for mark in (PRIVATE_MARK, PRIVATE_LINE, NIETS_MARK):
            assert mark not in body, f"{where} shows text the pupil did not share"


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_route_access(
    route: tuple[str, str], seeded: Seed, login: Login, anon: httpx.AsyncClient, recorder: Recorder
) -> None:
    method, _ = route
    case = CASES[route]
    if case.public is not None:
        response = await anon.request(
            method, case.public(seeded), data=case.data if method == "POST" else None
        )
        assert response.status_code == case.public_status, response.text[:300]
        return

    # Anonymous: to the login page, whatever the method.
    path = case.ok[0][1](seeded)
    response = await anon.request(method, path, data=case.data if method == "POST" else None)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")

    # Signed in, but not theirs: 404 (even with a valid CSRF token).
    for user, path_fn in case.denied:
        client = await login(user)
        data = {**case.data, "csrf": client.csrf} if method == "POST" else None
        response = await client.request(method, path_fn(seeded), data=data)
        assert response.status_code == 404, f"{user} on {path_fn(seeded)}: {response.status_code}"

    # Theirs: POST without or with a wrong CSRF token is refused, with the token it works.
    for user, path_fn, status in case.ok:
        client = await login(user)
        if method == "POST":
            for bad in ({}, {"csrf": "vervalst"}):
                response = await client.post(path_fn(seeded), data={**case.data, **bad})
                assert response.status_code == 403, f"{user} without CSRF: {response.status_code}"
            response = await client.post(path_fn(seeded), data={**case.data, "csrf": client.csrf})
        else:
            response = await client.get(path_fn(seeded))
        assert response.status_code == status, (
            f"{user} on {path_fn(seeded)}: {response.status_code} {response.text[:300]}"
        )
    assert_private_text_never_shown(recorder)
