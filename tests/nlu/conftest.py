"""NLU fixtures: the evaluation sets, and the real Rasa server (trained once, cached)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlu.lifecycle import rasa_server

NLU_DIR = Path(__file__).resolve().parents[2] / "nlu"


def load_yaml(relative: str) -> Any:
    """A YAML file under nlu/."""
    return yaml.safe_load((NLU_DIR / relative).read_text(encoding="utf-8"))


def nlu_examples(relative: str) -> list[tuple[str, str]]:
    """(intent, text) pairs from a Rasa nlu.yml-style file."""
    pairs: list[tuple[str, str]] = []
    for item in load_yaml(relative)["nlu"]:
        if "intent" in item:
            for line in item["examples"].splitlines():
                if line.strip():
                    pairs.append((item["intent"], line.strip()[2:].strip()))
    return pairs


@pytest.fixture(scope="session")
def crisis_set() -> dict[str, Any]:
    return load_yaml("tests/crisis_set.yml")


@pytest.fixture(scope="session")
def casual_set() -> list[str]:
    return list(load_yaml("tests/casual_set.yml")["casual"])


@pytest.fixture
def closed_port_url() -> str:
    """An http URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
async def rasa_url() -> AsyncIterator[str]:
    """The real Rasa server: trains on a cold cache (minutes), then starts in ~30 s."""
    async with rasa_server(ready_within=180) as url:
        yield url
