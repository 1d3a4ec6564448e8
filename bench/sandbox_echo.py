"""Baseline benchmark: a bare PTB echo bot against the sandbox, pupils pressing closed-loop.

    python bench/sandbox_echo.py --pupils 50 --seconds 5           # spawns its own sandbox
    python bench/sandbox_echo.py --url http://127.0.0.1:8081 ...   # or uses a running one

`drive_presses` is the reusable part: give it pupils whose chats show an inline keyboard and it
keeps every pupil pressing (press → wait for the bot's answer → press again) for a while.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from leerbot.loop import run as run_loop  # noqa: E402  # after the path fix
from sandbox.driver import SandboxClient, SimulatedPupil  # noqa: E402
from sandbox.echo import PressReply, build_echo_application, start_echo, stop_echo  # noqa: E402
from sandbox.server import running  # noqa: E402

ECHO_TOKEN = "777001:ECHO-BENCH"  # noqa: S105  # a sandbox token, not a secret


@dataclass
class PressStats:
    """What `drive_presses` measured."""

    pupils: int
    seconds: float
    presses: int
    errors: int
    updates_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON results)."""
        return asdict(self)


def first_button(pupil: SimulatedPupil) -> str:
    """Default choice: the first inline button of the newest bot message that has buttons."""
    rows = pupil.last_buttons
    if not rows or not rows[0]:
        raise AssertionError(f"{pupil.name}: no inline buttons to press")
    return rows[0][0]


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def prepare_pupils(
    client: SandboxClient, count: int, *, text: str = "hoi", reply_timeout: float = 30.0
) -> list[SimulatedPupil]:
    """`count` new pupils who each sent `text` and got an answer (so they have buttons)."""
    pupils = await client.create_pupils(count)

    async def open_chat(pupil: SimulatedPupil) -> None:
        await pupil.send(text)
        await pupil.wait_for_reply(timeout=reply_timeout, quiet=0)

    await asyncio.gather(*(open_chat(p) for p in pupils))
    return pupils


async def drive_presses(
    client: SandboxClient,
    pupils: list[SimulatedPupil],
    duration_s: float,
    *,
    choose: Callable[[SimulatedPupil], str] = first_button,
    reply_timeout: float = 10.0,
    think_s: float = 0.0,
) -> PressStats:
    """Every pupil presses a button, waits for the bot's answer, and repeats for `duration_s`.

    One press is one update; updates_per_s counts presses that got an answer. With `think_s`
    each pupil pauses that long (±50 %, random) between presses, so 1,000 pupils offer a
    realistic load instead of saturating the bot. `client` is the SandboxClient the pupils
    came from (it carries their feed).
    """
    del client  # the pupils hold their client; the parameter keeps call sites explicit
    latencies: list[float] = []
    errors = 0
    samples: list[str] = []
    deadline = time.monotonic() + duration_s

    async def keep_pressing(pupil: SimulatedPupil) -> None:
        nonlocal errors
        if think_s > 0:  # spread the first presses over one think time
            await asyncio.sleep(random.uniform(0, think_s))
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                await pupil.press(choose(pupil))
                await pupil.wait_for_reply(timeout=reply_timeout, quiet=0)
            except AssertionError as exc:
                errors += 1
                if len(samples) < 5:
                    samples.append(str(exc)[:200])
                await asyncio.sleep(0.1)  # no hot loop when the bot stops answering
                continue
            latencies.append(time.monotonic() - started)
            if think_s > 0:
                await asyncio.sleep(think_s * random.uniform(0.5, 1.5))

    started = time.monotonic()
    await asyncio.gather(*(keep_pressing(p) for p in pupils))
    elapsed = time.monotonic() - started
    return PressStats(
        pupils=len(pupils),
        seconds=round(elapsed, 3),
        presses=len(latencies),
        errors=errors,
        updates_per_s=round(len(latencies) / elapsed, 1),
        latency_p50_ms=round(_percentile(latencies, 0.5) * 1000, 1),
        latency_p95_ms=round(_percentile(latencies, 0.95) * 1000, 1),
        latency_max_ms=round(max(latencies, default=0.0) * 1000, 1),
        error_samples=samples,
    )


async def run_echo_bench(
    base_url: str,
    n_pupils: int,
    duration_s: float,
    *,
    token: str = ECHO_TOKEN,
    press_reply: PressReply = "edit",
    bot_process: bool = False,
    app: Starlette | None = None,
    think_s: float = 0.0,
) -> dict[str, Any]:
    """Echo bot + `n_pupils` pressing for `duration_s`; returns the numbers.

    The bot polls from this process, or with `bot_process=True` from its own process (like
    `leerbot bot` in the end-to-end stack), so the driver and the bot do not share a core.
    Give `app` when the sandbox runs in this event loop: the driver then skips HTTP.
    """
    async with (
        echo_bot(base_url, token=token, press_reply=press_reply, own_process=bot_process),
        SandboxClient(
            base_url, token=token, max_connections=max(20, n_pupils // 4), app=app
        ) as client,
    ):
        pupils = await prepare_pupils(client, n_pupils)
        before = await client.stats()
        stats = await drive_presses(client, pupils, duration_s, think_s=think_s)
        after = await client.stats()
    sandbox = {
        key: after[key] - before.get(key, 0)
        for key in ("updates_queued", "updates_delivered", "sends_ok", "http_429")
    }
    return {
        "bench": "sandbox_echo",
        "press_reply": press_reply,
        "bot_process": bot_process,
        **stats.as_dict(),
        "sandbox": sandbox,
    }


@asynccontextmanager
async def echo_bot(
    base_url: str, *, token: str, press_reply: PressReply, own_process: bool
) -> AsyncIterator[None]:
    if not own_process:
        app = build_echo_application(
            api_url=f"{base_url}/bot", token=token, press_reply=press_reply
        )
        await start_echo(app)
        try:
            yield
        finally:
            await stop_echo(app)
        return
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.echo",
        "--api-url",
        f"{base_url}/bot",
        "--token",
        token,
        "--press-reply",
        press_reply,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def sandbox_process(port: int | None = None) -> AsyncIterator[str]:
    """`sandbox.server.run` in its own process (its own core), as in production tests."""
    port = port or _free_port()
    code = (
        "from sandbox.server import run; "
        f"run(host='127.0.0.1', port={port}, token=None, rate_limits=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/sandbox/api/stats")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the sandbox process did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    if args.in_process:
        async with running() as (url, app):
            return await run_echo_bench(
                url,
                args.pupils,
                args.seconds,
                app=app,
                press_reply=args.press_reply,
                bot_process=args.bot_process,
                think_s=args.think,
            )
    if args.url:
        return await run_echo_bench(
            args.url,
            args.pupils,
            args.seconds,
            press_reply=args.press_reply,
            bot_process=args.bot_process,
            think_s=args.think,
        )
    async with sandbox_process() as url:
        return await run_echo_bench(
            url,
            args.pupils,
            args.seconds,
            press_reply=args.press_reply,
            bot_process=args.bot_process,
            think_s=args.think,
        )


def main() -> None:
    """Command line entry point; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running sandbox (default: start one)")
    parser.add_argument("--pupils", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--press-reply", choices=["edit", "new"], default="edit")
    parser.add_argument(
        "--bot-process", action="store_true", help="run the echo bot in its own process"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve the sandbox in this process; the driver skips HTTP",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds each pupil pauses between presses (±50 %%)",
    )
    result = run_loop(_main(parser.parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
