"""`leerbot up` (what `make run` starts) stops everything it started on Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from tests.support.demo import READY, kill_demo, start_demo
from tests.support.sandbox_server import free_port


def test_ctrl_c_stops_the_demo_also_when_started_as_a_background_job(tmp_path: Path) -> None:
    """A shell starts a background job (`make run &`) with SIGINT ignored; Python keeps it
    ignored, so `up` and its children never stopped on Ctrl-C. They must stop anyway."""
    proc, output = start_demo(
        tmp_path,
        sandbox_port=free_port(),
        dashboard_port=free_port(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert READY in output, output[-4000:]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # sandbox, bot (with its sender), dashboard
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=25) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        kill_demo(proc)
