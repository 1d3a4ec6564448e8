"""Product processes for crash tests: `leerbot bot`, `leerbot bot --webhook --workers N`,
`leerbot sender`, each a real subprocess whose log lines are collected."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Service:
    """A running `leerbot ...` process."""

    args: tuple[str, ...]
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, env: dict[str, str], *args: str, ready: str, count: int = 1, timeout: float = 40.0
    ) -> Service:
        """Start `leerbot ARGS` and wait until `ready` was logged `count` times."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "leerbot.cli",
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        service = cls(args, proc)
        service.reader = asyncio.create_task(service._read())
        await service.wait_for(ready, count=count, timeout=timeout)
        return service

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())

    def count(self, marker: str) -> int:
        """How often `marker` was logged so far."""
        return sum(marker in line for line in self.lines)

    async def wait_for(self, marker: str, *, count: int = 1, timeout: float = 40.0) -> None:
        """Until `marker` was logged `count` times in all."""
        deadline = time.monotonic() + timeout
        while self.count(marker) < count:
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"leerbot {' '.join(self.args)} exited:\n" + "\n".join(self.lines[-30:])
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {marker!r} x{count} from leerbot "
                    f"{' '.join(self.args)}:\n" + "\n".join(self.lines[-30:])
                )
            await asyncio.sleep(0.05)

    def workers(self) -> list[psutil.Process]:
        """uvicorn's worker processes (children running multiprocessing's spawn_main)."""
        return [
            child
            for child in self.children()
            if any("spawn_main" in part for part in child.cmdline())
        ]

    def children(self) -> list[psutil.Process]:
        """Processes this one started (a polling bot's sender, uvicorn's workers)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.proc.pid).children()
        return []

    async def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """SIGINT (a clean stop) or SIGKILL of this process alone (a crash); wait for it."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            await self.reader
