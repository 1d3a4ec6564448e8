"""Signing in and out, and choosing a password from an invitation link."""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dashboard import security
from dashboard.web import (
    HOME,
    checked_form,
    flash,
    render,
    safe_next,
    sign_in,
    signed_in_staff,
    staff_page,
    web,
)
from store import dashboard_queries as q
from store import repo
from store.models import Staff

WRONG_LOGIN = "Dit e-mailadres of wachtwoord klopt niet."


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


def _wait_text(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minuut" if minutes == 1 else "minuten"
    return f"Te veel mislukte pogingen. Wacht {minutes} {unit} en probeer dan opnieuw."


async def login_form(request: Request) -> Response:
    """The login page (signed-in staff go straight to their start page)."""
    async with web(request).sessions.begin() as session:
        staff = await signed_in_staff(request, session)
    target = safe_next(request.query_params.get("next"), "")
    if staff is not None:
        return RedirectResponse(target or HOME[staff.role], status_code=303)
    return render(request, "login.html", {"email": "", "next": target, "error": None})


async def login(request: Request) -> Response:
    """Check e-mail and password; the same message for an unknown e-mail and a wrong password."""
    state = web(request)
    form = await checked_form(request)
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")), "")
    keys = (f"email:{email}", f"ip:{_client_ip(request)}")

    def again(error: str, status_code: int) -> Response:
        return render(
            request,
            "login.html",
            {"email": email, "next": target, "error": error},
            status_code=status_code,
        )

    wait = state.throttle.wait_seconds(*keys)
    if wait > 0:
        return again(_wait_text(wait), 429)
    async with state.sessions.begin() as session:
        staff = await repo.staff_by_email(session, email) if email else None
        password_hash = staff.password_hash if staff is not None and staff.active else None
    # Hash outside the transaction: a SQLite write lock must not wait for argon2.
    if not await security.verify_password(password_hash, password) or staff is None:
        state.throttle.failed(*keys)
        return again(WRONG_LOGIN, 400)
    state.throttle.succeeded(keys[0])
    async with state.sessions.begin() as session:
        await repo.audit(
            session, staff=staff, action="login", target=f"staff:{staff.id}", now=state.clock()
        )
    sign_in(request, staff)
    return RedirectResponse(target or HOME[staff.role], status_code=303)


@staff_page()
async def logout(request: Request, _staff: Staff, _session: AsyncSession) -> Response:
    """End the session."""
    request.session.clear()
    flash(request, "Je bent afgemeld.")
    return RedirectResponse("/login", status_code=303)


async def _invited(request: Request, session: AsyncSession) -> Staff:
    token = str(request.path_params["token"])
    found = web(request).invitations.read(token)
    if found is None:
        raise HTTPException(404)
    staff = await q.staff_by_id(session, found[0])
    if staff is None or not staff.active or security.fingerprint(staff.password_hash) != found[1]:
        raise HTTPException(404)  # used before, or the account changed since
    return staff


async def invite_form(request: Request) -> Response:
    """Choose a password with a one-time invitation link."""
    async with web(request).sessions.begin() as session:
        staff = await _invited(request, session)
    return render(request, "invite.html", {"invited": staff, "error": None})


async def invite_accept(request: Request) -> Response:
    """Store the chosen password, sign in, and use the link up."""
    state = web(request)
    form = await checked_form(request)
    password = str(form.get("password", ""))[:1024]
    repeat = str(form.get("repeat", ""))[:1024]
    async with state.sessions.begin() as session:
        staff = await _invited(request, session)
        problem = security.password_problem(password, repeat)
        if problem:
            return render(
                request, "invite.html", {"invited": staff, "error": problem}, status_code=400
            )
    password_hash = await security.hash_password(password)
    async with state.sessions.begin() as session:
        staff = await _invited(request, session)
        await q.set_password_hash(session, staff, password_hash)
        await repo.audit(
            session,
            staff=staff,
            action="password_set",
            target=f"staff:{staff.id}",
            now=state.clock(),
        )
    sign_in(request, staff)
    flash(request, "Je wachtwoord is ingesteld. Welkom!")
    return RedirectResponse(HOME[staff.role], status_code=303)


ROUTES = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/uitnodiging/{token:str}", invite_form, methods=["GET"]),
    Route("/uitnodiging/{token:str}", invite_accept, methods=["POST"]),
]
