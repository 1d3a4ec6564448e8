"""Runtime configuration: the only place that reads the environment."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org/bot"
DEV_SECRET_KEY = "leerbot-local-demo-secret-key-not-for-production"  # noqa: S105 (demo only; refused in production)
PLACEHOLDER_SECRETS = {"", "changethis", "changeme", "secret", DEV_SECRET_KEY}
SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}


class Environment(StrEnum):
    """Where the program runs: production refuses unsafe defaults."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All `LEERBOT_*` variables (see design.md, operator contract)."""

    # An empty variable (`LEERBOT_WEBHOOK_SECRET=` in an .env file) means "not set": an empty
    # webhook secret would otherwise let requests without Telegram's token through.
    model_config = SettingsConfigDict(env_prefix="LEERBOT_", extra="ignore", env_ignore_empty=True)

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite+aiosqlite:///leerbot.db"
    telegram_token: SecretStr = SecretStr("123456:LEERBOT-SANDBOX-TOKEN")
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    telegram_file_url: str | None = None
    bot_username: str | None = None
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout: Annotated[float, Field(gt=0, le=30)] = 0.8
    secret_key: SecretStr | None = None
    dashboard_url: str = "http://127.0.0.1:8000"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1:8443"
    webhook_secret: SecretStr | None = None
    timezone: str = "Europe/Brussels"
    region: str = "BE"
    reminder_start: str = "08:30"
    reminder_end: str = "17:00"
    # School holidays without reminders: JSON list of "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD".
    reminder_holidays: list[str] = []
    escalation_minutes: Annotated[float, Field(gt=0)] = 15.0
    retention_days: Annotated[int, Field(ge=0)] | None = None
    send_rate_global: Annotated[float, Field(gt=0)] = 28.0
    send_rate_chat: Annotated[float, Field(gt=0)] = 1.0
    fast_lane: bool = True  # the bot sends pressed-button edits itself (bot/fastlane.py)
    quick_presses: bool = True  # a press that only redraws, on the driver (store/lean.py)
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"  # Bot API transport (bot/http.py)
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"  # leerbot/loop.py
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"unsupported database URL {value!r}: use sqlite+aiosqlite:///FILE "
                "or postgresql+asyncpg://USER@HOST/DB"
            )
        return value

    @field_validator(
        "telegram_api_url", "rasa_url", "dashboard_url", "telegram_file_url", "webhook_url"
    )
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/") if not value.endswith("/bot") else value

    @field_validator("telegram_token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        head, _, tail = token.partition(":")
        if not head.isdigit() or not tail:
            raise ValueError("a bot token looks like 123456:ABC... (digits, colon, secret)")
        return value

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if key in PLACEHOLDER_SECRETS or len(key) < 32:
                raise ValueError(
                    "LEERBOT_SECRET_KEY must be set to a random value of at least 32 "
                    "characters in production (python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')"
                )
        return self

    @property
    def secret(self) -> bytes:
        """The key for signing callback data and cookies (a fixed demo key in development)."""
        key = self.secret_key.get_secret_value() if self.secret_key else DEV_SECRET_KEY
        return key.encode()

    @property
    def token(self) -> str:
        """The bot token in plain text."""
        return self.telegram_token.get_secret_value()

    @property
    def file_url(self) -> str:
        """The Bot API file base URL, derived from the API URL unless set."""
        if self.telegram_file_url:
            return self.telegram_file_url
        base = self.telegram_api_url
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base + "/file/bot"


def load_settings(**overrides: object) -> Settings:
    """Build settings, or exit with one line naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic accepts field kwargs
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        name = f"LEERBOT_{str(loc[0]).upper()}" if loc else "LEERBOT_SECRET_KEY"
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        print(f"leerbot: configuration error: {name}: {msg}", file=sys.stderr)  # noqa: T201 (operator message)
        raise SystemExit(2) from None
