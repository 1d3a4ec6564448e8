"""The staff web app: Starlette, server-rendered pages, one transaction per request."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from content.check import check_module
from content.loader import (
    MODULES_DIR,
    Catalog,
    ContentError,
    load_catalog,
    load_module_file,
    load_texts,
)
from dashboard import admin, auth, counsellor, formats, signals, teacher
from dashboard.security import derive_key
from dashboard.web import HERE, Clock, Web, render, web
from leerbot.links import bot_username_async
from leerbot.settings import Settings
from store.db import make_engine, make_sessions
from store.models import utcnow

log = logging.getLogger("leerbot.dashboard")

SESSION_COOKIE = "leerbot_session"
SESSION_MAX_AGE = 12 * 3600  # one school day; sign in again tomorrow
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
ERROR_TEXTS = {
    403: "Dit formulier is verlopen of niet geldig. Laad de pagina opnieuw en probeer nog eens.",
    404: "Deze pagina bestaat niet, of je mag ze niet zien.",
    405: "Dat kan op deze pagina niet.",
}


class SecurityHeaders:
    """Adds a strict content policy and no-framing headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(_request: Request) -> Response:
    """Plain 'ok' for load balancers and `leerbot up`."""
    return PlainTextResponse("ok")


async def http_error(request: Request, exc: Exception) -> Response:
    """Error pages in Dutch (never a traceback)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = ERROR_TEXTS.get(status, "Er ging iets mis. Probeer het zo opnieuw.")
    if request.url.path.endswith(".csv") or request.headers.get("x-requested-with"):
        return PlainTextResponse(message, status_code=status)
    return render(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


def _templates(zone: ZoneInfo, clock: Clock) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.trim_blocks = True
    env.lstrip_blocks = True

    def when(value: datetime | str | None) -> str:
        return formats.when(value, zone)

    def ago(value: datetime | None) -> str:
        return formats.ago(value, clock())

    env.filters.update(when=when, day=formats.day, ago=ago)
    return templates


def load_content() -> Catalog:
    """All modules; with invalid content, the valid ones (the modules page shows the rest).

    The bot refuses to start on invalid content; the dashboard still starts, so an author
    can see what `leerbot content check` says and staff can keep working.
    """
    try:
        return load_catalog()
    except ContentError as exc:
        for line in exc.problems:
            log.warning("content: %s", line)
    catalog = Catalog(texts=load_texts())
    for path in sorted(MODULES_DIR.glob("*.yaml")):
        try:
            module = load_module_file(path)
        except ContentError:
            continue
        if not check_module(module):
            catalog.add(module)
    return catalog


def create_app(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    bot_username: str | None = None,
    clock: Clock | None = None,
    poll_seconds: float = 4.0,
    freeze_gc: bool = False,
) -> Starlette:
    """The dashboard app; the database engine opens lazily and closes on shutdown.

    `freeze_gc` (for the dashboard's own process) moves everything loaded at start-up out of
    the garbage collector's sight: full collections then stay short, so a 500-row flag queue
    does not stall for tens of milliseconds now and then.
    """
    engine = make_engine(settings.database_url)
    now = clock or utcnow
    state = Web(
        settings=settings,
        engine=engine,
        sessions=make_sessions(engine),
        catalog=catalog if catalog is not None else load_content(),
        templates=_templates(ZoneInfo(settings.timezone), now),
        bot_username=bot_username or (settings.bot_username or "").lstrip("@"),
        clock=now,
        poll_seconds=poll_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if not state.bot_username:
            state.bot_username = await bot_username_async(settings)
        if freeze_gc:
            _warm_templates(state)
            gc.collect()
            gc.freeze()
        log.info("dashboard ready (bot @%s)", state.bot_username)
        try:
            yield
        finally:
            await engine.dispose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *auth.ROUTES,
        *teacher.ROUTES,
        *counsellor.ROUTES,
        *signals.ROUTES,
        *admin.ROUTES,
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=derive_key(settings.secret, "dashboard-session"),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE,
            same_site="lax",
            https_only=settings.dashboard_url.startswith("https://"),
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.state.web = state
    return app


def _warm_templates(state: Web) -> None:
    """Compile every template now, so the compiled code is frozen with the rest."""
    env = state.templates.env
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)


def run(settings: Settings, *, host: str, port: int) -> None:
    """Serve the dashboard (behind the school's reverse proxy in production)."""
    app = create_app(settings, freeze_gc=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        access_log=False,
    )


__all__ = ["create_app", "run", "web"]
