"""Shared fixtures: databases on SQLite always and on PostgreSQL with --postgres URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.databases import PostgresFactory, SqliteFactory, check_postgres, in_thread

BACKENDS = ["sqlite", "postgres"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        default=None,
        metavar="URL",
        help="PostgreSQL URL (postgresql+asyncpg://user@host/db) to also test on",
    )
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files")


def pytest_configure(config: pytest.Config) -> None:
    url = config.getoption("--postgres")
    if url and not str(url).startswith("postgresql+asyncpg://"):
        raise pytest.UsageError(f"--postgres must be a postgresql+asyncpg:// URL, got {url!r}")


@pytest.fixture(scope="session")
def sqlite_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteFactory]:
    factory = SqliteFactory(tmp_path_factory.mktemp("sqlite"))
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def postgres_factory(request: pytest.FixtureRequest) -> Iterator[PostgresFactory]:
    url = request.config.getoption("--postgres")
    if not url:
        pytest.skip("PostgreSQL not requested (give --postgres URL)")
    problem = in_thread(lambda: asyncio.run(check_postgres(url)))
    if problem:
        pytest.fail(f"--postgres {url}: server not reachable: {problem}")
    factory = PostgresFactory(url)
    yield factory
    factory.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, migrated database on each backend (PostgreSQL only with --postgres)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_factory").new()
    else:
        factory: PostgresFactory = request.getfixturevalue("postgres_factory")
        yield await factory.new_async()


@pytest.fixture
def sqlite_url(sqlite_factory: SqliteFactory) -> str:
    """A fresh, migrated SQLite database (for tests that need one backend only)."""
    return sqlite_factory.new()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
