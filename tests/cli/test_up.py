"""`leerbot up` (what `make run` starts) stops everything it started on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from tests.support.sandbox_server import free_port


def test_ctrl_c_stops_the_demo_also_when_started_as_a_background_job(tmp_path: Path) -> None:
    """A shell starts a background job (`make run &`) with SIGINT ignored; Python keeps it
    ignored, so `up` and its children never stopped on Ctrl-C. They must stop anyway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
    env |= {
        "LEERBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "LEERBOT_DASHBOARD_URL": f"http://127.0.0.1:{free_port()}",
        "LEERBOT_RASA_URL": "http://127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "leerbot.cli", "up", "--no-nlu"]
    proc = subprocess.Popen(
        [*command, "--sandbox-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "NLU (Rasa):" in line:
                break
        assert "NLU (Rasa):" in "".join(lines), "".join(lines[-30:])
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # sandbox, bot (with its sender), dashboard
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=25) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
