"""The containers' commands, run as processes with the containers' environment (no Docker).

Everything comes from docker-compose.yml and .env.example: the argv after the `leerbot`
entrypoint and the environment a container sees. Only what Docker would provide differs:
the database host (`postgres` → the test server), the Rasa host, the Telegram API (the
sandbox) and listen ports (free ports on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.deploy import compose
from tests.support.databases import PostgresFactory, _sa_url
from tests.support.sandbox_server import free_port, running_sandbox

TOKEN = "424242:LEERBOT-TEST-TOKEN"
START_TIMEOUT = 30.0


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def container_env(
    service: str, *, database_url: str, sandbox_url: str, **overrides: str
) -> dict[str, str]:
    """The environment of one container of `service`, pointed at this machine's services."""
    dotenv = {
        **compose.example_env(),
        "POSTGRES_PASSWORD": "unused",
        "LEERBOT_TELEGRAM_TOKEN": TOKEN,
        "LEERBOT_BOT_USERNAME": "leerbot_test_bot",
        "LEERBOT_SECRET_KEY": secrets.token_urlsafe(48),
    }
    env = compose.service_env(service, dotenv)
    env.update(
        {
            "LEERBOT_DATABASE_URL": database_url,
            "LEERBOT_TELEGRAM_API_URL": f"{sandbox_url}/bot",
            "LEERBOT_RASA_URL": "http://127.0.0.1:9",
            "LEERBOT_RASA_TIMEOUT": "0.3",
            **overrides,
        }
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
    return {**base, **env}


async def leerbot(argv: list[str], env: dict[str, str], *, timeout: float = 60) -> Result:
    """Run `leerbot ARGV` to the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leerbot.cli",
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Result(int(proc.returncode or 0), out.decode(), err.decode())


@contextlib.asynccontextmanager
async def running(
    argv: list[str], env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running `leerbot ARGV` process, stopped with SIGTERM like `docker stop`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leerbot.cli",
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_healthy(
    argv: list[str], env: dict[str, str], proc: asyncio.subprocess.Process
) -> None:
    """Run the service's health check until it passes (as Docker would)."""
    deadline = time.monotonic() + START_TIMEOUT
    last = Result(1, "", "")
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"exited with {proc.returncode}:\n{err.decode()[-3000:]}")
        last = await leerbot(argv, env)
        if last.code == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"leerbot {' '.join(argv)} never passed: {last.stderr}")


def health_argv(service: str, env: dict[str, str], **replace: str) -> list[str]:
    """The service's health check after `leerbot`, with values replaced (ports)."""
    test = compose.services()[service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "leerbot"], test
    return [replace.get(arg, compose.interpolate(str(arg), env)) for arg in test[2:]]


@pytest.fixture
async def pg_url(postgres_factory: PostgresFactory) -> str:
    """An empty PostgreSQL database, as the compose stack's starts (dropped after the run)."""
    name = f"{postgres_factory.prefix}_empty{len(postgres_factory.created)}"
    postgres_factory.created.append(name)
    await postgres_factory._exec(f'CREATE DATABASE "{name}"')
    return _sa_url(postgres_factory.url, name)


async def test_the_webhook_deployment_runs_without_docker(pg_url: str) -> None:
    async with running_sandbox() as (sandbox_url, _sandbox):

        def env_of(service: str, **overrides: str) -> dict[str, str]:
            return container_env(
                service, database_url=pg_url, sandbox_url=sandbox_url, **overrides
            )

        # migrate: `leerbot db upgrade`, then the database is healthy.
        migrate = await leerbot(compose.command("migrate", env_of("migrate")), env_of("migrate"))
        assert migrate.code == 0, migrate.stderr
        health = await leerbot(["health", "--component", "db"], env_of("migrate"))
        assert health.code == 0, health.stderr

        dash_port, bot_port, sender_port = free_port(), free_port(), free_port()
        dash_env = env_of("dashboard")
        dash_argv = [
            str(dash_port) if a == "8000" else a for a in compose.command("dashboard", dash_env)
        ]
        dash_argv = ["127.0.0.1" if a == "0.0.0.0" else a for a in dash_argv]
        bot_env = env_of(
            "bot",
            LEERBOT_WEBHOOK_LISTEN=f"127.0.0.1:{bot_port}",
            LEERBOT_WEBHOOK_URL=f"http://127.0.0.1:{bot_port}/telegram",
        )
        sender_env = env_of("sender")
        sender_argv = [
            f"127.0.0.1:{sender_port}" if a == "127.0.0.1:9464" else a
            for a in compose.command("sender", sender_env)
        ]
        dash_url = f"http://127.0.0.1:{dash_port}/healthz"

        async with (
            running(dash_argv, dash_env) as dashboard,
            running(compose.command("bot", bot_env), bot_env) as bot,
            running(sender_argv, sender_env) as sender,
        ):
            await wait_healthy(
                health_argv("dashboard", dash_env, **{"http://127.0.0.1:8000/healthz": dash_url}),
                dash_env,
                dashboard,
            )
            await wait_healthy(health_argv("bot", bot_env), bot_env, bot)
            await wait_healthy(health_argv("sender", sender_env), sender_env, sender)
            async with httpx.AsyncClient() as client:
                reply = await client.get(f"http://127.0.0.1:{sender_port}/healthz")
                assert reply.status_code == 200

            # A pupil writes; Telegram (the sandbox) POSTs to the webhook; `sender` answers.
            ops = env_of("migrate")
            for argv in (
                ["school", "add", "Sint-Jozef"],
                [
                    "staff",
                    "add",
                    "--school",
                    "Sint-Jozef",
                    "--email",
                    "an@sj.be",
                    "--name",
                    "An",
                    "--role",
                    "teacher",
                ],
                [
                    "class",
                    "add",
                    "--school",
                    "Sint-Jozef",
                    "--name",
                    "5A",
                    "--teacher",
                    "an@sj.be",
                ],
            ):
                done = await leerbot(argv, ops)
                assert done.code == 0, done.stderr
            code = done.stdout.split("join code:")[1].split()[0]
            from sandbox.driver import SandboxClient

            async with SandboxClient(sandbox_url) as client:
                pupil = await client.create_pupil("Noor")
                await pupil.send(f"/start {code}")
                replies = await pupil.wait_for_reply(timeout=20)
                assert any("Welkom! Je zit nu in de klas 5A." in m.content for m in replies)
        for proc in (dashboard, bot, sender):
            assert proc.returncode in {0, -signal.SIGTERM}, proc.returncode


WEAK_KEYS = ["", "changeme", "kort-en-zwak", "leerbot-local-demo-secret-key-not-for-production"]


async def test_production_containers_refuse_a_weak_secret_key(sqlite_url: str) -> None:
    # Settings are checked before anything connects: no database needed.
    async def attempt(service: str, key: str) -> tuple[str, str, Result]:
        env = container_env(
            service,
            database_url=sqlite_url,
            sandbox_url="http://127.0.0.1:9",
            LEERBOT_SECRET_KEY=key,
        )
        if not key:
            env.pop("LEERBOT_SECRET_KEY")
        return service, key, await leerbot(compose.command(service, env), env, timeout=60)

    results = await asyncio.gather(
        *(attempt(service, key) for key in WEAK_KEYS for service in compose.app_services())
    )
    assert len(results) == 4 * len(compose.app_services())
    for service, key, result in results:
        assert result.code == 2, f"{service} started with secret key {key!r}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("leerbot: configuration error: LEERBOT_SECRET_KEY:")
