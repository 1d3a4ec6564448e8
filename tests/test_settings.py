"""Settings: a wrong value stops the program with one line naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leerbot.settings import Environment, Settings, load_settings


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leerbot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def base_env(tmp_path: object) -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LEERBOT_DATABASE_URL", "mysql://root@localhost/x", "LEERBOT_DATABASE_URL: unsupported"),
        ("LEERBOT_DATABASE_URL", "sqlite:///x.db", "LEERBOT_DATABASE_URL: unsupported"),
        ("LEERBOT_TELEGRAM_API_URL", "not a url", "LEERBOT_TELEGRAM_API_URL: not an http(s) URL"),
        ("LEERBOT_RASA_URL", "ftp://x", "LEERBOT_RASA_URL: not an http(s) URL"),
        ("LEERBOT_TELEGRAM_TOKEN", "abc", "LEERBOT_TELEGRAM_TOKEN: a bot token looks like"),
    ],
)
def test_bad_value_stops_with_one_line_naming_the_variable(
    base_env: dict[str, str], name: str, value: str, expected: str
) -> None:
    result = run_cli(base_env | {name: value}, "flags", "list")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leerbot: configuration error: ")
    assert expected in lines[0]


def test_production_refuses_missing_or_short_secret_key(base_env: dict[str, str]) -> None:
    result = run_cli(base_env | {"LEERBOT_ENV": "production"}, "flags", "list")
    assert result.returncode == 2
    assert "LEERBOT_SECRET_KEY" in result.stderr
    result = run_cli(
        base_env | {"LEERBOT_ENV": "production", "LEERBOT_SECRET_KEY": "changethis"},
        "flags",
        "list",
    )
    assert result.returncode == 2
    assert "at least 32" in result.stderr


def test_local_demo_runs_without_secret_key_and_production_accepts_a_real_one() -> None:
    dev = Settings()
    assert dev.env is Environment.DEVELOPMENT
    assert len(dev.secret) >= 32
    prod = load_settings(env="production", secret_key="x" * 40)
    assert prod.secret == b"x" * 40


def test_file_url_follows_the_api_url() -> None:
    s = Settings(telegram_api_url="http://127.0.0.1:8081/bot")
    assert s.file_url == "http://127.0.0.1:8081/file/bot"
    assert Settings().file_url == "https://api.telegram.org/file/bot"
