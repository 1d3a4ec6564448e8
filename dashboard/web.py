"""What every dashboard page shares: the app state, the signed-in staff member, CSRF, rendering."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from content.loader import Catalog
from dashboard.security import (
    Invitations,
    LoginThrottle,
    fingerprint,
    new_csrf_token,
    same_token,
)
from leerbot.settings import Settings
from store import dashboard_queries as q
from store.db import Sessions
from store.models import Staff

HERE = Path(__file__).resolve().parent
ROLES = ("teacher", "counsellor", "admin")
ROLE_NAMES = {"teacher": "leerkracht", "counsellor": "leerlingenbegeleider", "admin": "beheerder"}
HOME = {"teacher": "/klassen", "counsellor": "/meldingen", "admin": "/beheer/personeel"}

Clock = Callable[[], datetime]
Handler = Callable[[Request, Staff, AsyncSession], Awaitable[Response]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Web:
    """Everything a request handler needs, built once per app."""

    settings: Settings
    engine: AsyncEngine
    sessions: Sessions
    catalog: Catalog
    templates: Jinja2Templates
    bot_username: str
    clock: Clock = _utcnow
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    poll_seconds: float = 4.0
    invitations: Invitations = field(init=False)

    def __post_init__(self) -> None:
        self.invitations = Invitations(self.settings.secret)

    @property
    def zone(self) -> ZoneInfo:
        """The school's time zone for dates on pages."""
        return ZoneInfo(self.settings.timezone)

    def today(self) -> date:
        """Today's date in the school's time zone."""
        return self.clock().astimezone(self.zone).date()


def web(request: Request) -> Web:
    """The app's shared state."""
    state: Web = request.app.state.web
    return state


# ---------------------------------------------------------------- session and CSRF


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = new_csrf_token()
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> FormData:
    """The posted form, after checking its CSRF token (403 without a valid one)."""
    form = await request.form()
    if not same_token(request.session.get("csrf"), form.get("csrf")):
        raise HTTPException(403, "Dit formulier is verlopen. Laad de pagina opnieuw.")
    return form


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A one-time message shown on the next page."""
    messages = list(request.session.get("flash", []))
    messages.append([kind, message])
    request.session["flash"] = messages[-5:]


def sign_in(request: Request, staff: Staff) -> None:
    """Start a fresh session for this staff member (a new CSRF token, too)."""
    request.session.clear()
    request.session["sid"] = staff.id
    request.session["fp"] = fingerprint(staff.password_hash)
    request.session["csrf"] = new_csrf_token()


def safe_next(target: str | None, default: str) -> str:
    """Only local paths are followed after login (no open redirects)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or urlsplit(target).netloc
    ):
        return default
    return target


async def signed_in_staff(request: Request, session: AsyncSession) -> Staff | None:
    """The active staff member of this session, if the session is still valid."""
    staff_id = request.session.get("sid")
    if not isinstance(staff_id, int):
        return None
    staff = await q.staff_by_id(session, staff_id)
    if staff is None or not staff.active or staff.role not in ROLES:
        return None
    if request.session.get("fp") != fingerprint(staff.password_hash):
        return None  # the password changed since: sign in again
    return staff


def login_redirect(request: Request) -> RedirectResponse:
    """To the login page, coming back here afterwards (for GET pages)."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    suffix = f"?next={quote(target)}" if request.method == "GET" else ""
    return RedirectResponse(f"/login{suffix}", status_code=303)


def staff_page(*roles: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: one transaction, a signed-in staff member of these roles, CSRF on POST.

    Anonymous visitors go to the login page; other roles get 404, so a page's existence is
    not revealed to someone who may not see it.
    """
    allowed = set(roles or ROLES)

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            async with web(request).sessions.begin() as session:
                staff = await signed_in_staff(request, session)
                if staff is None:
                    if "sid" in request.session:
                        request.session.clear()
                    return login_redirect(request)
                if staff.role not in allowed:
                    raise HTTPException(404)
                if request.method == "POST":
                    await checked_form(request)
                return await handler(request, staff, session)

        return endpoint

    return wrap


# ---------------------------------------------------------------- rendering


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    staff: Staff | None = None,
    status_code: int = 200,
) -> Response:
    """A page from `templates/`, with the navigation, CSRF token and one-time messages."""
    messages = request.session.pop("flash", []) if "flash" in request.session else []
    data: dict[str, Any] = {
        "staff": staff,
        "role_name": ROLE_NAMES.get(staff.role, "") if staff else "",
        "csrf": csrf_token(request),
        "messages": messages,
        "path": request.url.path,
    }
    data.update(context or {})
    response = web(request).templates.TemplateResponse(
        request, template, data, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def int_param(request: Request, name: str) -> int:
    """A path parameter that must be a positive number (404 otherwise)."""
    value = request.path_params.get(name)
    if isinstance(value, int):
        return value
    try:
        number = int(str(value))
    except ValueError:
        raise HTTPException(404) from None
    if number <= 0:
        raise HTTPException(404)
    return number
