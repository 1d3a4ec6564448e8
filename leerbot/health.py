"""`leerbot health --component X`: one check per container, for docker-compose health checks.

Each check returns None when healthy, else one line saying what is wrong.
- db: the database answers and its schema is at the newest migration;
- sender: db, and no message waits longer than `max_lag` seconds past its send time;
- bot: webhook mode: its /healthz answers; polling mode: db;
- dashboard, rasa: their HTTP status endpoint answers 200.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit

import httpx
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from leerbot.settings import Settings
from store import repo
from store.db import alembic_config, make_engine, make_sessions

HTTP_TIMEOUT = 5.0


class Component(StrEnum):
    """What `leerbot health` can check."""

    DB = "db"
    SENDER = "sender"
    BOT = "bot"
    DASHBOARD = "dashboard"
    RASA = "rasa"


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def check_db(url: str) -> str | None:
    """The database answers and is migrated to the newest revision."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(_revision)
    except Exception as exc:  # any driver error means: not healthy
        return f"database unreachable: {str(exc).splitlines()[0][:200]}"
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if current != head:
        return f"schema at {current or 'nothing'}, newest is {head}: run 'leerbot db upgrade'"
    return None


async def check_sender(url: str, *, max_lag: float, now: datetime | None = None) -> str | None:
    """The outbox is being drained: nothing due waits longer than `max_lag` seconds."""
    problem = await check_db(url)
    if problem:
        return problem
    now = now or datetime.now(UTC)
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessions(engine)() as session:
            oldest = await repo.oldest_due_message(session, now=now)
    finally:
        await engine.dispose()
    if oldest is not None and (now - oldest).total_seconds() > max_lag:
        return (
            f"outbox not drained: a message waits {int((now - oldest).total_seconds())} s "
            f"(limit {int(max_lag)} s)"
        )
    return None


async def check_http(url: str) -> str | None:
    """GET `url` answers 200."""
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            reply = await client.get(url)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    if reply.status_code != 200:
        return f"{url}: HTTP {reply.status_code}"
    return None


def bot_health_url(settings: Settings) -> str | None:
    """The webhook server's /healthz on this host, or None in polling mode."""
    if not settings.webhook_url:
        return None
    host, _, port = settings.webhook_listen.rpartition(":")
    host = "127.0.0.1" if host in {"", "0.0.0.0", "::", "[::]"} else host  # noqa: S104 (a listen address, compared, not bound)
    return f"http://{host}:{port}/healthz"


def default_url(component: Component, settings: Settings) -> str | None:
    """Where the HTTP check of a component looks when no --url is given."""
    if component is Component.DASHBOARD:
        parts = urlsplit(settings.dashboard_url)
        return f"http://127.0.0.1:{parts.port or 8000}/healthz"
    if component is Component.RASA:
        return f"{settings.rasa_url}/status"
    if component is Component.BOT:
        return bot_health_url(settings)
    return None


async def check(
    component: Component, settings: Settings, *, url: str | None = None, max_lag: float = 300.0
) -> str | None:
    """Run the check for one component."""
    if component is Component.DB:
        return await check_db(settings.database_url)
    if component is Component.SENDER:
        return await check_sender(settings.database_url, max_lag=max_lag)
    target = url or default_url(component, settings)
    if target is None:  # a polling bot has no HTTP endpoint: its database must answer
        return await check_db(settings.database_url)
    return await check_http(target)
