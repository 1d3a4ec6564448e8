"""Webhook mode: Telegram POSTs each update to us; a Starlette app hands it to the PTB Application.

    leerbot bot --webhook                 # one process on LEERBOT_WEBHOOK_LISTEN
    leerbot bot --webhook --workers 4     # four uvicorn worker processes sharing that socket
    leerbot sender                        # the one process that talks to Telegram's send API

An update is answered 200 only after its transaction committed (or it was found to be a
duplicate), so a worker that dies mid-update leaves Telegram to deliver it again, to any worker.
A database that is down answers 503 for the same reason. Workers keep no state between updates:
per-pupil order comes from Telegram's one-request-per-chat delivery and the pupil row lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application, ContextTypes

from bot.app import Runtime, build_application, build_runtime
from bot.ops import DeliveryMetrics, ops_routes, split_listen
from leerbot.settings import Settings, load_settings

log = logging.getLogger("leerbot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
DEFAULT_PATH = "/telegram"
# Failures a retry can cure: the update is answered 503 and Telegram sends it again.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

SenderMode = Literal["external", "child", "inline"]

_errors: ContextVar[list[BaseException] | None] = ContextVar(
    "leerbot_webhook_errors", default=None
)


def webhook_secret(settings: Settings) -> str:
    """LEERBOT_WEBHOOK_SECRET, or one derived from the secret key (the same in every worker)."""
    if settings.webhook_secret is not None and settings.webhook_secret.get_secret_value():
        return settings.webhook_secret.get_secret_value()  # never empty: that would accept all
    return hmac.new(settings.secret, b"telegram-webhook", hashlib.sha256).hexdigest()[:48]


def webhook_path(settings: Settings) -> str:
    """The path Telegram POSTs to: the path of LEERBOT_WEBHOOK_URL, else /telegram."""
    if settings.webhook_url:
        path = urlsplit(settings.webhook_url).path.rstrip("/")
        if path:
            return path
    return DEFAULT_PATH


@dataclass
class WebhookState:
    """What the lifespan builds and the routes use."""

    runtime: Runtime | None = None
    application: Application | None = None  # type: ignore[type-arg]  # PTB generics
    metrics: DeliveryMetrics = field(default_factory=DeliveryMetrics)


async def _note_error(_update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Remember the error of the update being handled in this request (see TRANSIENT)."""
    box = _errors.get()
    if box is not None and context.error is not None:
        box.append(context.error)


def create_app(
    settings: Settings, *, sender_mode: SenderMode = "external", runtime: Runtime | None = None
) -> Starlette:
    """The webhook ASGI app: POST <path>, /healthz, /readyz, /metrics.

    `sender_mode` (see bot/features.py): "external" for workers next to `leerbot sender`,
    "child" for one process that sends too, "inline" for tests in one event loop.
    """
    state = WebhookState()
    secret = webhook_secret(settings).encode()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        built = runtime or build_runtime(settings)
        built.extras["sender_mode"] = sender_mode
        built.extras["metrics"] = state.metrics
        application = build_application(built, webhook=True)
        application.add_error_handler(_note_error)  # after the bot's own: it logs and answers
        await application.initialize()
        if application.post_init is not None:
            await application.post_init(application)  # features, sender, safety, NLU
        await application.start()
        state.runtime, state.application = built, application
        log.info("webhook worker ready (sender: %s)", sender_mode)
        try:
            yield
        finally:
            state.application = None
            await application.stop()
            await application.shutdown()
            if application.post_shutdown is not None:
                await application.post_shutdown(application)

    async def telegram(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return JSONResponse({"error": "wrong or missing secret token"}, 403)
        application = state.application
        if application is None:
            return JSONResponse({"error": "starting"}, 503)
        try:
            data: Any = await request.json()
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, 400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return JSONResponse({"error": "not a Telegram update"}, 400)
        update = Update.de_json(data, application.bot)
        errors: list[BaseException] = []
        token = _errors.set(errors)
        started = time.monotonic()
        try:
            await application.process_update(update)
        finally:
            _errors.reset(token)
            state.metrics.update_seconds.observe(time.monotonic() - started)
        if any(isinstance(e, TRANSIENT) for e in errors):
            state.metrics.updates.labels(outcome="retry").inc()
            return JSONResponse({"error": "try again"}, 503)
        state.metrics.updates.labels(outcome="error" if errors else "ok").inc()
        return Response(status_code=200)

    def sessions() -> Any:
        return state.runtime.sessions if state.runtime is not None else None

    routes = [
        Route(webhook_path(settings), telegram, methods=["POST"]),
        *ops_routes(metrics=state.metrics, sessions=sessions, rasa_url=settings.rasa_url),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.webhook = state
    return app


def worker_app() -> Starlette:
    """uvicorn factory for worker processes: settings from the environment, no sender."""
    from leerbot.cli import setup_logging  # a spawned worker starts with bare logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    return create_app(settings)


async def register_webhook(settings: Settings) -> None:
    """setWebhook(url, secret_token) when LEERBOT_WEBHOOK_URL is set; Telegram then POSTs."""
    if not settings.webhook_url:
        log.warning("LEERBOT_WEBHOOK_URL is not set: register the webhook yourself")
        return
    from telegram import Bot

    bot = Bot(settings.token, base_url=settings.telegram_api_url, base_file_url=settings.file_url)
    async with bot:
        await bot.set_webhook(
            settings.webhook_url,
            secret_token=webhook_secret(settings),
            allowed_updates=Update.ALL_TYPES,
            max_connections=40,
        )
    log.info("webhook registered")


def run_webhook(settings: Settings, *, workers: int = 1, with_sender: bool = False) -> None:
    """`leerbot bot --webhook`: register the webhook, then serve it (N worker processes)."""
    import uvicorn

    from leerbot.loop import uvicorn_loop

    host, port = split_listen(settings.webhook_listen)
    if with_sender and workers > 1:
        raise ValueError(
            "--with-sender needs --workers 1: the 30 messages/s limit is per bot, "
            "so one process sends (run `leerbot sender`)"
        )
    asyncio.run(register_webhook(settings))
    # Telegram retries until we listen, so registering first loses nothing.
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "loop": uvicorn_loop(settings.event_loop),
    }
    if workers == 1:
        mode: SenderMode = "child" if with_sender else "external"
        uvicorn.run(create_app(settings, sender_mode=mode), **common)
    else:
        uvicorn.run("bot.webhook:worker_app", factory=True, workers=workers, **common)
