"""Dashboard fixtures: a seeded database per test, the app on it, signed-in httpx clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette

from content.loader import Catalog
from dashboard.app import create_app
from leerbot.settings import Settings
from tests.dashboard.seed import NOW, PASSWORD, Seed, seed, seeded_catalog

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
BOT = "leerbot_test_bot"


class Client(httpx.AsyncClient):
    """An httpx client that remembers its session's CSRF token."""

    csrf: str = ""


Login = Callable[[str], Awaitable[Client]]


def csrf_in(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return seeded_catalog()


@pytest.fixture
async def seeded(database_url: str) -> Seed:
    return await seed(database_url)


@pytest.fixture
async def app(seeded: Seed, catalog: Catalog) -> AsyncIterator[Starlette]:
    settings = Settings(database_url=seeded.url, bot_username=BOT)
    application = create_app(settings, catalog=catalog, clock=lambda: NOW)
    yield application
    await application.state.web.engine.dispose()


class Recorder:
    """Every response body the tests saw (to prove some text never appears anywhere)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.bodies.append(
            (f"{response.request.method} {response.request.url.path}", response.text)
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def anon(app: Starlette, recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    """A browser without a session."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        event_hooks={"response": [recorder]},
    ) as client:
        yield client


@pytest.fixture
async def login(app: Starlette, seeded: Seed, recorder: Recorder) -> AsyncIterator[Login]:
    """`await login("teacher_a")`: a client signed in as that seeded staff member."""
    clients: list[Client] = []

    async def make(key: str) -> Client:
        client = Client(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            event_hooks={"response": [recorder]},
        )
        clients.append(client)
        page = await client.get("/login")
        response = await client.post(
            "/login",
            data={"email": seeded.emails[key], "password": PASSWORD, "csrf": csrf_in(page.text)},
        )
        assert response.status_code == 303, response.text
        home = await client.get(response.headers["location"])
        client.csrf = csrf_in(home.text)
        return client

    yield make
    for client in clients:
        await client.aclose()
