"""The test run itself fails when a test leaves a product process running (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

LEAKY_TEST = """
PID_FILE = {pid_file!r}
import subprocess, sys, time, urllib.request
from tests.support.sandbox_server import free_port

def test_leaks_a_sandbox():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leerbot.cli", "sandbox", "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    open(PID_FILE, "w").write(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
"""


def test_a_leaked_product_process_fails_the_run_and_is_killed(
    tmp_path: Path, repo_root: Path
) -> None:
    test_file = tmp_path / "test_leaky.py"
    pid_file = tmp_path / "pid"
    test_file.write_text(LEAKY_TEST.replace("{pid_file!r}", repr(str(pid_file))))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-p",
            "tests.conftest",  # the test file lies outside tests/: load our conftest as a plugin
            str(test_file),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "1 passed" in output, output  # the leaky test itself passed ...
    assert done.returncode == 1, output  # ... but the run failed
    assert "left product processes running (now killed): -m leerbot.cli sandbox" in output
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
