"""Fresh, migrated databases per test: SQLite files and PostgreSQL databases from a template."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from store.db import upgrade

T = TypeVar("T")
DROP_LANES = 8  # connections dropping the run's PostgreSQL databases at the end


def _pg_dsn(url: str, database: str | None = None) -> str:
    """asyncpg DSN from a SQLAlchemy URL, optionally for another database."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking set-up (Alembic, asyncio.run) off the test's running event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def _sa_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


class SqliteFactory:
    """Copies one migrated SQLite file per test (a migration runs once per session)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        in_thread(lambda: upgrade(f"sqlite+aiosqlite:///{self.template}"))

    def new(self) -> str:
        """A URL to a fresh, migrated database."""
        path = self.root / f"t-{uuid.uuid4().hex[:10]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"

    def close(self) -> None:
        """Nothing to drop: pytest removes tmp folders."""


class PostgresFactory:
    """A template database migrated once; each test gets `CREATE DATABASE ... TEMPLATE`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"leerbot_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tpl"
        self.created: list[str] = [self.template]
        in_thread(lambda: asyncio.run(self._exec(f'CREATE DATABASE "{self.template}"')))
        in_thread(lambda: upgrade(_sa_url(url, self.template)))

    async def _exec(self, *sql: str) -> None:
        conn = await asyncpg.connect(_pg_dsn(self.url), timeout=10)
        try:
            for statement in sql:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def new_async(self) -> str:
        """A URL to a fresh, migrated database (async, for use inside a running loop)."""
        name = f"{self.prefix}_{len(self.created)}"
        self.created.append(name)
        await self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return _sa_url(self.url, name)

    def close(self) -> None:
        """Drop every database this run made.

        Each DROP DATABASE waits for a checkpoint; several at once share one, so a run's
        hundreds of databases go in a few seconds instead of twenty.
        """
        names = list(reversed(self.created))
        lanes = [names[i::DROP_LANES] for i in range(DROP_LANES)]

        async def drop_all() -> None:
            await asyncio.gather(
                *(
                    self._exec(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in lane))
                    for lane in lanes
                    if lane
                )
            )

        in_thread(lambda: asyncio.run(drop_all()))


async def check_postgres(url: str) -> str | None:
    """None when the server answers, else the reason."""
    try:
        conn = await asyncpg.connect(_pg_dsn(url), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return str(exc)
    await conn.close()
    return None
