"""`leerbot up` (what `make run` starts) as a subprocess in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

READY = "NLU (Rasa):"  # the last line `up` prints once everything runs


def start_demo(
    tmp_path: Path,
    *,
    sandbox_port: int,
    dashboard_port: int,
    preexec_fn: Callable[[], object] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start `leerbot up --no-nlu` on SQLite in tmp_path; return it and what it printed.

    Returns once it printed its URLs (or stopped, or 90 s passed: the caller checks the
    output). Its output is read on after that: the demo's children log to the same pipe, and a
    full pipe would block them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
    env |= {
        "LEERBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "LEERBOT_DASHBOARD_URL": f"http://127.0.0.1:{dashboard_port}",
        "LEERBOT_RASA_URL": "http://127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leerbot.cli",
            "up",
            "--no-nlu",
            "--sandbox-port",
            f"{sandbox_port}",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: teardown can reach every child
        preexec_fn=preexec_fn,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if READY in line:
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, "".join(lines)


def kill_demo(proc: subprocess.Popen[str]) -> None:
    """Whatever is left of the demo's process group dies."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
