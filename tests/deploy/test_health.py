"""`leerbot health --component X`: exit 0 when healthy, else one line saying what is wrong."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from leerbot.cli import app as cli
from store import repo
from store.db import make_engine, make_sessions


def health(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["health", *args], env={"LEERBOT_DATABASE_URL": url})
    return result.exit_code, result.output.strip()


def test_database_must_answer_and_be_migrated(tmp_path: Path, sqlite_url: str) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    code, output = health(empty, "--component", "db")
    assert code == 1
    assert output.startswith("leerbot: db unhealthy: schema at nothing")
    assert "run 'leerbot db upgrade'" in output
    assert health(sqlite_url, "--component", "db") == (0, "db ok")
    nobody = "postgresql+asyncpg://leerbot@127.0.0.1:9/leerbot"  # nothing listens there
    code, output = health(nobody, "--component", "db")
    assert code == 1
    assert "database unreachable" in output


def test_sender_is_unhealthy_when_a_message_waits_too_long(sqlite_url: str) -> None:
    assert health(sqlite_url, "--component", "sender") == (0, "sender ok")

    async def queue_old_message() -> None:
        engine = make_engine(sqlite_url)
        try:
            async with make_sessions(engine).begin() as session:
                await repo.enqueue(
                    session,
                    chat_id=1,
                    method="sendMessage",
                    payload={"chat_id": 1, "text": "hoi"},
                    now=datetime.now(UTC) - timedelta(minutes=20),
                )
        finally:
            await engine.dispose()

    asyncio.run(queue_old_message())
    code, output = health(sqlite_url, "--component", "sender")
    assert code == 1
    assert "outbox not drained: a message waits 12" in output
    assert health(sqlite_url, "--component", "sender", "--max-lag", "3600") == (0, "sender ok")


def test_http_components_and_unknown_names(sqlite_url: str) -> None:
    code, output = health(
        sqlite_url, "--component", "dashboard", "--url", "http://127.0.0.1:9/healthz"
    )
    assert code == 1
    assert output.startswith("leerbot: dashboard unhealthy: http://127.0.0.1:9/healthz")
    code, output = health(sqlite_url, "--component", "kettle")
    assert code == 1
    assert "unknown component 'kettle'" in output
    # A polling bot has no HTTP endpoint: its health is the database's.
    assert health(sqlite_url, "--component", "bot") == (0, "bot ok")
