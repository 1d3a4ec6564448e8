"""`leerbot nlu parse` as an operator runs it: a real process, Rasa unreachable."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINES = [
    b"ik wil dood",
    b"",
    b"pauze",
    ("a" * 10_000).encode(),
    "😂😂😂".encode(),
    "я хочу домой, ik ben moe".encode(),
    b"\x01\x02 control \x1b[31m red",
    b"\xff\xfe broken utf-8",
    b"kweet ni",
    b"mijn vriendin wil dood",
]


def leerbot_nlu(*args: str, rasa_url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LEERBOT_RASA_URL=rasa_url, LEERBOT_RASA_TIMEOUT="0.3")
    return subprocess.Popen(
        [sys.executable, "-m", "leerbot.cli", "nlu", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_parse_prints_one_json_object_per_line_without_rasa(closed_port_url: str) -> None:
    proc = leerbot_nlu("parse", rasa_url=closed_port_url)
    out, err = proc.communicate(b"\n".join(LINES) + b"\n", timeout=120)
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in out.decode("utf-8").splitlines()]
    assert len(rows) == len(LINES)
    for row in rows:
        assert set(row) >= {"text", "intent", "confidence", "crisis", "category", "source"}
        assert row["source"] == "fallback"
        assert isinstance(row["crisis"], bool)
    assert (rows[0]["crisis"], rows[0]["category"]) == (True, "suicidal")
    assert rows[0]["intent"] == "crisis"
    assert (rows[1]["intent"], rows[1]["crisis"]) == ("out_of_scope", False)
    assert rows[2]["intent"] == "pause"
    assert len(rows[3]["text"]) == 10_000
    assert rows[6]["text"].startswith("\x01\x02")
    assert rows[8]["intent"] == "dont_know"
    assert (rows[9]["crisis"], rows[9]["category"]) == (False, "worry_other")
    assert "Rasa unavailable, using fallback" in err.decode()


def test_parse_answers_each_line_as_it_comes(closed_port_url: str) -> None:
    proc = leerbot_nlu("parse", rasa_url=closed_port_url)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        for text, intent in (("merci", "thanks"), ("ik snij mezelf", "crisis")):
            proc.stdin.write(text.encode() + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no answer before the next line was sent"
            assert json.loads(proc.stdout.readline())["intent"] == intent
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0
