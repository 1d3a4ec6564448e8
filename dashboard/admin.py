"""Admin pages: staff accounts and invitations, Telegram link codes, modules, the audit log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from content.check import check_paths
from content.loader import MODULES_DIR, ContentError, load_module_file
from dashboard.web import ROLE_NAMES, ROLES, flash, int_param, render, staff_page, web
from leerbot.links import deep_link
from store import dashboard_queries as q
from store import repo
from store.models import School, Staff

AUDIT_PAGE = 100
ACTION_NAMES = {
    "login": "aangemeld",
    "password_set": "wachtwoord gekozen",
    "class_create": "klas gemaakt",
    "assign": "module gegeven",
    "view_answers": "antwoorden bekeken",
    "export_progress": "voortgang gedownload",
    "staff_invite": "collega uitgenodigd",
    "staff_activate": "account geactiveerd",
    "staff_deactivate": "account gedeactiveerd",
    "staff_link_code": "Telegram-koppelcode gemaakt",
    "flag.view": "melding bekeken",
    "flag.acknowledge": "melding opgenomen",
    "flag.reply": "leerling geantwoord",
    "flag.close": "melding gesloten",
    "flag.contact": "contact gevraagd",
}


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    """One module file and what `leerbot content check` says about it."""

    file: str
    module_id: str
    title: str
    questions: int
    minutes: int
    loaded: bool
    problems: list[str]


async def _school_staff(request: Request, staff: Staff, session: AsyncSession) -> Staff:
    other = await q.staff_by_id(session, int_param(request, "staff_id"))
    if other is None or other.school_id != staff.school_id:
        raise HTTPException(404)
    return other


async def _staff_page(
    request: Request,
    staff: Staff,
    session: AsyncSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    shown: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    members = await q.staff_of_school(session, staff.school_id)
    return render(
        request,
        "staff.html",
        {
            "members": members,
            "roles": [(r, ROLE_NAMES[r]) for r in ROLES],
            "role_names": ROLE_NAMES,
            "form": form or {"role": "teacher"},
            "errors": errors or {},
            "shown": shown,
        },
        staff=staff,
        status_code=status_code,
    )


@staff_page("admin")
async def staff_list(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """The school's staff accounts, with the invite form."""
    return await _staff_page(request, staff, session)


def _invite_link(request: Request, member: Staff) -> str:
    token = web(request).invitations.make(staff_id=member.id, password_hash=member.password_hash)
    return f"{web(request).settings.dashboard_url}/uitnodiging/{token}"


@staff_page("admin")
async def staff_invite(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Make an account and show its one-time link to choose a password."""
    form = await request.form()
    values = {
        "name": " ".join(str(form.get("name", "")).split())[:200],
        "email": str(form.get("email", "")).strip().lower()[:254],
        "role": str(form.get("role", "")),
    }
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "Vul een naam in."
    email = values["email"]
    if "@" not in email or "." not in email.rsplit("@", 1)[-1] or " " in email:
        errors["email"] = "Dit is geen geldig e-mailadres."
    elif await repo.staff_by_email(session, email) is not None:
        errors["email"] = "Er is al een account met dit e-mailadres."
    if values["role"] not in ROLES:
        errors["role"] = "Kies een rol."
    if errors:
        return await _staff_page(
            request, staff, session, form=values, errors=errors, status_code=400
        )
    school = await session.get(School, staff.school_id)
    if school is None:
        raise HTTPException(404)
    member = await repo.add_staff(
        session,
        school=school,
        email=email,
        name=values["name"],
        role=values["role"],
        password_hash=None,
    )
    return await _show_invite(request, staff, session, member)


async def _show_invite(
    request: Request, staff: Staff, session: AsyncSession, member: Staff
) -> Response:
    """Audit the invitation and show the staff page with its one-time link."""
    await repo.audit(
        session,
        staff=staff,
        action="staff_invite",
        target=f"staff:{member.id}",
        now=web(request).clock(),
    )
    return await _staff_page(
        request,
        staff,
        session,
        shown={"kind": "invite", "member": member, "link": _invite_link(request, member)},
    )


@staff_page("admin")
async def staff_new_link(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """A new one-time link to (re)set a colleague's password."""
    member = await _school_staff(request, staff, session)
    if not member.active:
        raise HTTPException(404)
    return await _show_invite(request, staff, session, member)


@staff_page("admin")
async def staff_active(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Deactivate or activate an account (never your own)."""
    member = await _school_staff(request, staff, session)
    form = await request.form()
    active = form.get("active") == "1"
    if member.id == staff.id:
        flash(request, "Je kunt je eigen account niet uitzetten.", "error")
        return RedirectResponse("/beheer/personeel", status_code=303)
    await q.set_staff_active(session, member, active=active)
    await repo.audit(
        session,
        staff=staff,
        action="staff_activate" if active else "staff_deactivate",
        target=f"staff:{member.id}",
        now=web(request).clock(),
    )
    flash(request, f"{member.name} kan {'weer' if active else 'niet meer'} aanmelden.")
    return RedirectResponse("/beheer/personeel", status_code=303)


@staff_page("admin")
async def staff_link_code(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """A one-time code that links a colleague's Telegram to the bot, for notifications."""
    member = await _school_staff(request, staff, session)
    if not member.active:
        raise HTTPException(404)
    state = web(request)
    code = await repo.new_staff_link_code(session, member, now=state.clock())
    await repo.audit(
        session,
        staff=staff,
        action="staff_link_code",
        target=f"staff:{member.id}",
        now=state.clock(),
    )
    return await _staff_page(
        request,
        staff,
        session,
        shown={
            "kind": "link",
            "member": member,
            "code": code,
            "link": deep_link(state.bot_username, code),
        },
    )


def _module_statuses(loaded: dict[str, str], directory: Path) -> list[ModuleStatus]:
    """Every module file, checked now (blocking: call in a thread)."""
    statuses = []
    for path in sorted(directory.glob("*.yaml")):
        problems = [line.removeprefix(f"{path.name}: ") for line in check_paths([path])]
        try:
            module = load_module_file(path)
        except ContentError:
            statuses.append(ModuleStatus(path.name, "?", path.stem, 0, 0, False, problems))
            continue
        statuses.append(
            ModuleStatus(
                path.name,
                module.id,
                module.title.nl,
                module.question_count,
                module.minutes,
                loaded.get(module.id) == module.version,
                problems,
            )
        )
    return statuses


@staff_page("admin")
async def modules(request: Request, staff: Staff, _session: AsyncSession) -> Response:
    """The modules with their content-check status (checked when the page is opened)."""
    loaded = {m.id: m.version for m in web(request).catalog.modules.values()}
    statuses = await asyncio.to_thread(_module_statuses, loaded, MODULES_DIR)
    return render(request, "modules.html", {"statuses": statuses}, staff=staff)


@staff_page("admin")
async def audit_log(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Who did what, newest first, a page at a time."""
    before = request.query_params.get("voor")
    before_id = int(before) if before and before.isdigit() else None
    rows = await q.audit_page(
        session, school_id=staff.school_id, before_id=before_id, limit=AUDIT_PAGE
    )
    more = rows[-1].id if len(rows) == AUDIT_PAGE else None
    return render(
        request,
        "audit.html",
        {"rows": rows, "more": more, "action_names": ACTION_NAMES},
        staff=staff,
    )


ROUTES = [
    Route("/beheer/personeel", staff_list, methods=["GET"]),
    Route("/beheer/personeel", staff_invite, methods=["POST"]),
    Route("/beheer/personeel/{staff_id:int}/uitnodiging", staff_new_link, methods=["POST"]),
    Route("/beheer/personeel/{staff_id:int}/actief", staff_active, methods=["POST"]),
    Route("/beheer/personeel/{staff_id:int}/koppelcode", staff_link_code, methods=["POST"]),
    Route("/beheer/modules", modules, methods=["GET"]),
    Route("/beheer/audit", audit_log, methods=["GET"]),
]
