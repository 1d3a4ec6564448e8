"""docker-compose.yml and the Dockerfile hold together (Docker itself is not needed)."""

from __future__ import annotations

import re
import tomllib

import pytest
from typer.testing import CliRunner

from leerbot.cli import app as cli
from tests.deploy import compose
from tests.deploy.compose import ROOT

ONE_SHOT = {"migrate", "rasa-train"}
CONDITIONS = {"service_healthy", "service_completed_successfully", "service_started"}
TEST_ENV = {"POSTGRES_PASSWORD": "pw", "LEERBOT_WEBHOOK_WORKERS": ""}


def test_every_part_of_the_design_is_a_service() -> None:
    services = compose.services()
    assert {
        "postgres",
        "migrate",
        "rasa-train",
        "rasa",
        "bot",
        "sender",
        "bot-polling",
        "dashboard",
    } <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("rasa", "rasa-train"):
        assert re.fullmatch(r"rasa/rasa:3\.6\.\d+(-full)?", services[name]["image"]), name
    assert set(compose.app_services()) == {"migrate", "bot", "sender", "bot-polling", "dashboard"}


def test_ports_are_published_on_localhost_only() -> None:
    published = {name: s.get("ports", []) for name, s in compose.services().items()}
    assert {name for name, ports in published.items() if ports} == {"bot", "dashboard"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to the world"


def test_start_order_uses_conditions() -> None:
    for name, service in compose.services().items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for other, spec in depends.items():
            assert other in compose.services(), f"{name} depends on unknown {other}"
            assert spec.get("condition") in CONDITIONS, f"{name} → {other}"
    for name, service in compose.app_services().items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert (
                service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            ), name
    assert (
        compose.services()["rasa"]["depends_on"]["rasa-train"]["condition"]
        == "service_completed_successfully"
    )


def test_long_running_services_have_health_checks_and_restart() -> None:
    for name, service in compose.services().items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def _cli_accepts(argv: list[str]) -> tuple[int, str]:
    """Parse `leerbot ARGV` up to --help: unknown commands and options fail."""
    result = CliRunner().invoke(cli, [*argv, "--help"])
    return result.exit_code, result.output


def test_every_container_command_is_a_real_leerbot_command() -> None:
    env = {**compose.example_env(), **TEST_ENV}
    checked = []
    for name in compose.app_services():
        argv = compose.command(name, env)
        code, output = _cli_accepts(argv)
        assert code == 0, f"{name}: leerbot {' '.join(argv)}\n{output}"
        checked.append(argv[0])
    for name, service in compose.services().items():
        test = service.get("healthcheck", {}).get("test", [])
        if len(test) > 1 and test[1] == "leerbot":
            argv = [compose.interpolate(str(a), env) for a in test[2:]]
            code, output = _cli_accepts(argv)
            assert code == 0, f"{name} health check: leerbot {' '.join(argv)}\n{output}"
            checked.append("health")
    assert {"db", "bot", "sender", "dashboard", "health"} <= set(checked)


def test_exactly_one_sending_process_per_profile() -> None:
    services = compose.services()
    profiles = {name: s.get("profiles", []) for name, s in services.items()}
    assert profiles["bot"] == profiles["sender"] == ["webhook"]
    assert profiles["bot-polling"] == ["polling"]
    assert services["bot"]["command"][:2] == ["bot", "--webhook"]
    assert "--with-sender" not in services["bot"]["command"]  # `sender` sends
    assert services["bot-polling"]["command"] == ["bot"]  # polling sends itself
    assert compose.example_env()["COMPOSE_PROFILES"] in {"webhook", "polling"}


def test_secrets_come_from_the_environment_only() -> None:
    text = compose.COMPOSE_FILE.read_text(encoding="utf-8")
    for name, service in compose.services().items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"
        if name in compose.app_services():
            assert service.get("env_file") == ".env", name
    assert "LEERBOT_SECRET_KEY" not in text
    assert "LEERBOT_TELEGRAM_TOKEN" not in text
    example = compose.example_env()
    missing = compose.variables() - set(example)
    assert not missing, f"documented in .env.example? {sorted(missing)}"
    for key in ("LEERBOT_SECRET_KEY", "LEERBOT_TELEGRAM_TOKEN", "POSTGRES_PASSWORD"):
        assert example[key] == "", f".env.example must not carry a value for {key}"
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose.service_env("bot", {})  # compose refuses to start without it
    for ignore_file in (".gitignore", ".dockerignore"):
        lines = (ROOT / ignore_file).read_text(encoding="utf-8").splitlines()
        assert ".env" in lines, f"{ignore_file} must list .env"


def test_production_mode_is_on_in_every_app_container() -> None:
    env = {**compose.example_env(), **TEST_ENV}
    for name in compose.app_services():
        seen = compose.service_env(name, env)
        assert seen["LEERBOT_ENV"] == "production", name
        assert seen["LEERBOT_DATABASE_URL"].startswith("postgresql+asyncpg://leerbot:pw@postgres")
        assert seen["LEERBOT_RASA_URL"] == "http://rasa:5005", name


def test_dockerfile_ships_every_package_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["leerbot"]' in dockerfile
    assert "LEERBOT_ENV=production" in dockerfile
    assert "python:3.11" in dockerfile  # the app's Python (Rasa has its own image)
