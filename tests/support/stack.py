"""The whole product for end-to-end tests: sandbox Bot API + the real `leerbot bot` process.

Usage (inside an async test):

    async with running_stack(database_url) as stack:
        code = await stack.seed_class()                 # CLI: school, teacher, class, assignment
        pupil = await stack.pupil("Noor")
        await pupil.send(f"/start {code}")
        replies = await pupil.wait_for_reply()
        await stack.restart_bot(kill=True)              # SIGKILL and start again

The bot runs as a subprocess (`python -m leerbot.cli bot`) so a restart is a real process
restart; the sandbox runs in the test's event loop. Rasa is off unless `rasa_url` is given
(a closed port makes the client fall back at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sandbox.driver import SandboxClient, SimulatedPupil
from tests.support.sandbox_server import running_sandbox

TOKEN = "424242:LEERBOT-TEST-TOKEN"
BOT_USERNAME = "leerbot_test_bot"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connects fail fast


async def until(pupil: SimulatedPupil, snippet: str, timeout: float = 8.0) -> list[Any]:
    """Wait for a bot message containing `snippet`; return every message since the last action."""
    start = pupil.log.mark
    await pupil.wait_for(lambda m: snippet in (m.text or m.caption or ""), timeout)
    return [m for m in pupil.log.events if start < m.seq <= pupil.log.mark]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CliResult:
    """The outcome of one `leerbot` command."""

    code: int
    stdout: str
    stderr: str


@dataclass
class BotProcess:
    """A running `leerbot bot` subprocess with its log lines collected."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while True:
            raw = await self.proc.stderr.readline()
            if not raw:
                return
            self.lines.append(raw.decode(errors="replace").rstrip())

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the Application has started polling."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("Application started" in line for line in self.lines):
                return
            if self.proc.returncode is not None:
                raise AssertionError("bot exited early:\n" + "\n".join(self.lines[-30:]))
            await asyncio.sleep(0.05)
        raise AssertionError("bot did not start in time:\n" + "\n".join(self.lines[-30:]))

    async def stop(self, *, kill: bool = False, timeout: float = 15.0) -> int:
        """SIGTERM (clean) or SIGKILL (crash) and wait for the exit."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        return int(self.proc.returncode or 0)


@dataclass
class Stack:
    """A sandbox, a database and (usually) a running bot."""

    database_url: str
    sandbox_url: str
    sandbox_app: Any
    client: SandboxClient
    rasa_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    bot: BotProcess | None = None

    @property
    def api_url(self) -> str:
        return f"{self.sandbox_url}/bot"

    def env(self) -> dict[str, str]:
        """The environment of every product process in this stack."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
        env.update(
            {
                "LEERBOT_DATABASE_URL": self.database_url,
                "LEERBOT_TELEGRAM_TOKEN": TOKEN,
                "LEERBOT_TELEGRAM_API_URL": self.api_url,
                "LEERBOT_BOT_USERNAME": BOT_USERNAME,
                "LEERBOT_RASA_URL": self.rasa_url,
                "LEERBOT_RASA_TIMEOUT": "0.5",
                "LEERBOT_LOG_LEVEL": "INFO",
                # Scripted pupils act instantly; pacing per chat is tested in tests/delivery.
                "LEERBOT_SEND_RATE_CHAT": "50",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    async def cli(self, *args: str, stdin: str | None = None) -> CliResult:
        """Run `leerbot ARGS` as an operator would."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "leerbot.cli",
            *args,
            env=self.env(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        return CliResult(int(proc.returncode or 0), out.decode(), err.decode())

    async def cli_ok(self, *args: str, stdin: str | None = None) -> str:
        """Run a command that must succeed; returns its stdout."""
        result = await self.cli(*args, stdin=stdin)
        assert result.code == 0, f"leerbot {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    async def start_bot(self) -> BotProcess:
        """Start `leerbot bot` and wait until it polls."""
        assert self.bot is None or self.bot.proc.returncode is not None, "bot already running"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "leerbot.cli",
            "bot",
            env=self.env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        bot = BotProcess(proc)
        bot.reader = asyncio.create_task(bot._read())
        self.bot = bot
        await bot.wait_ready()
        return bot

    async def stop_bot(self, *, kill: bool = False) -> None:
        """Stop the bot (SIGINT for a clean stop, SIGKILL for a crash)."""
        if self.bot is not None:
            await self.bot.stop(kill=kill)

    async def restart_bot(self, *, kill: bool = False) -> BotProcess:
        """Stop and start the bot process again."""
        await self.stop_bot(kill=kill)
        return await self.start_bot()

    async def pupil(self, name: str) -> SimulatedPupil:
        """A new simulated pupil in the sandbox."""
        return await self.client.create_pupil(name)

    async def seed_class(
        self,
        *,
        school: str = "Sint-Jozef VTI",
        teacher: str = "an@school.be",
        klass: str = "5A",
        module: str | None = "wie-ben-ik",
        due: str | None = None,
    ) -> str:
        """School, teacher, class and (optionally) an assignment through the CLI; the join code."""
        await self.cli("school", "add", school)
        await self.cli(
            "staff",
            "add",
            "--school",
            school,
            "--email",
            teacher,
            "--name",
            "An Peeters",
            "--role",
            "teacher",
            "--password-stdin",
            stdin="correct horse battery\n",
        )
        out = await self.cli_ok(
            "class", "add", "--school", school, "--name", klass, "--teacher", teacher
        )
        code = out.split("join code:")[1].split()[0]
        if module:
            args = ["assign", "--class", klass, "--module", module]
            if due:
                args += ["--due", due]
            await self.cli_ok(*args)
        return code


@asynccontextmanager
async def running_stack(
    database_url: str,
    *,
    start_bot: bool = True,
    rasa_url: str = CLOSED_PORT_URL,
    rate_limits: bool = False,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Sandbox + database (+ bot); everything is stopped on exit."""
    async with running_sandbox(rate_limits=rate_limits) as (url, app):
        client = SandboxClient(url)
        stack = Stack(
            database_url=database_url,
            sandbox_url=url,
            sandbox_app=app,
            client=client,
            rasa_url=rasa_url,
            extra_env=dict(extra_env or {}),
        )
        if not rate_limits:
            # A sandbox without Telegram's limits, a sender without them: scripted pupils tap
            # faster than one message a second (tests/delivery checks the limits themselves).
            stack.extra_env.setdefault("LEERBOT_SEND_RATE_CHAT", "1000")
        try:
            if start_bot:
                await stack.start_bot()
            yield stack
        finally:
            await stack.stop_bot()
            await client.aclose()
