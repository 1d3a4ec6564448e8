"""docker-compose.yml as data: services, the leerbot commands they run, their environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
APP_IMAGE = "leerbot:latest"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")


def load() -> dict[str, Any]:
    """The compose file, YAML merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def services() -> dict[str, dict[str, Any]]:
    """Service name → definition."""
    found: dict[str, dict[str, Any]] = load()["services"]
    return found


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run the Leerbot image (their entrypoint is `leerbot`)."""
    return {name: s for name, s in services().items() if s.get("image") == APP_IMAGE}


def variables() -> set[str]:
    """Every ${VARIABLE} the compose file reads from the environment / .env."""
    return {m.group(1) for m in VARIABLE.finditer(COMPOSE_FILE.read_text(encoding="utf-8"))}


def example_env() -> dict[str, str]:
    """KEY=value pairs of .env.example (comments skipped)."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with `env` as the .env file."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if kind == "-":
            return rest or ""
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return ""

    return VARIABLE.sub(one, value)


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """What a container of this service sees: the .env file, then `environment:`."""
    service = services()[name]
    result = dict(env) if service.get("env_file") else {}
    for key, value in (service.get("environment") or {}).items():
        result[key] = interpolate(str(value), env)
    return result


def command(name: str, env: dict[str, str]) -> list[str]:
    """The argv after the image's `leerbot` entrypoint."""
    return [interpolate(str(arg), env) for arg in services()[name].get("command", [])]
