"""Shared fixtures: databases on SQLite always and on PostgreSQL with --postgres URL."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.databases import PostgresFactory, SqliteFactory, check_postgres, in_thread

BACKENDS = ["sqlite", "postgres"]
_BEFORE = pytest.StashKey[frozenset[int]]()  # processes that ran before this test run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        default=None,
        metavar="URL",
        help="PostgreSQL URL (postgresql+asyncpg://user@host/db) to also test on",
    )
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_BEFORE] = frozenset(psutil.pids())
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


def _leftover_processes(before: frozenset[int]) -> list[psutil.Process]:
    """Our own product processes (this interpreter, `leerbot.cli`) started by this test run."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline = proc.info["cmdline"] or [""]
        if (
            proc.info["pid"] != os.getpid()
            and proc.info["pid"] not in before
            and any("leerbot" in part for part in cmdline[1:3])  # -m leerbot.cli, bin/leerbot
            # this virtualenv's interpreter: a test run in another clone is not ours
            and os.path.join(proc.info["cwd"] or "/", cmdline[0]).startswith(sys.prefix)
        ):
            found.append(proc)
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A test that leaves a bot, sender or sandbox running would disturb every later test and
    # benchmark on the machine: such a leak fails the run (after cleaning it up).
    before = session.config.stash.get(_BEFORE, frozenset())
    leftovers = _leftover_processes(before)
    if not leftovers:
        return
    deadline = time.monotonic() + 5
    while leftovers and time.monotonic() < deadline:  # a child may still be on its way out
        time.sleep(0.2)
        leftovers = [p for p in leftovers if p.is_running() and p.status() != "zombie"]
    if not leftovers:
        return
    names = ", ".join(" ".join(p.info["cmdline"][1:4]) for p in leftovers)
    for proc in leftovers:
        proc.kill()
    sys.stderr.write(f"\nthe tests left product processes running (now killed): {names}\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
