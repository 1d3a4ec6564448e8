"""Teacher pages: classes, join link and QR code, progress, assignments, shared answers."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import segno
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.assign import assign_module
from content.models import Module, StepKind
from dashboard import charts
from dashboard.progress import Cell, cells, visible_answers
from dashboard.web import HOME, flash, int_param, render, staff_page, web
from leerbot.links import deep_link
from store import dashboard_queries as q
from store import repo
from store.models import School, SchoolClass, Staff

MAX_CLASS_NAME = 40
MAX_DUE_AHEAD = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class ModuleColumn:
    """An assigned module as a column of the progress table."""

    id: str
    title: str
    due: date | None
    questions: int


async def teacher_class(request: Request, staff: Staff, session: AsyncSession) -> SchoolClass:
    """The class in the path, when this teacher owns it (404 otherwise)."""
    klass = await q.class_by_id(session, int_param(request, "class_id"))
    if klass is None or klass.school_id != staff.school_id or klass.teacher_id != staff.id:
        raise HTTPException(404)
    return klass


def module_title(module: Module | None, module_id: str) -> str:
    """The Dutch title of a module (its id when it is no longer in the catalog)."""
    return module.title.nl if module is not None else module_id


# ---------------------------------------------------------------- class list


@staff_page()
async def home(_request: Request, staff: Staff, _session: AsyncSession) -> Response:
    """The start page of each role."""
    return RedirectResponse(HOME[staff.role], status_code=303)


async def _classes_page(
    request: Request,
    staff: Staff,
    session: AsyncSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    classes = await q.classes_of_teacher(session, staff.id)
    return render(
        request,
        "classes.html",
        {"classes": classes, "form": form or {}, "errors": errors or {}},
        staff=staff,
        status_code=status_code,
    )


@staff_page("teacher")
async def classes(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """My classes, and a form to make one."""
    return await _classes_page(request, staff, session)


@staff_page("teacher")
async def create_class(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Make a class for this teacher; on a problem, the form again with the message."""
    form = await request.form()
    name = " ".join(str(form.get("name", "")).split())
    error = None
    if not name:
        error = "Geef de klas een naam, bijvoorbeeld 5BSO-A."
    elif len(name) > MAX_CLASS_NAME:
        error = f"Die naam is te lang. Gebruik maximaal {MAX_CLASS_NAME} tekens."
    elif await q.class_name_taken(session, school_id=staff.school_id, name=name):
        error = f"Er is al een klas met de naam {name} in je school. Kies een andere naam."
    if error:
        return await _classes_page(
            request, staff, session, form={"name": name}, errors={"name": error}, status_code=400
        )
    school = await repo_school(session, staff)
    klass = await repo.add_class(session, school=school, name=name, teacher=staff)
    await repo.audit(
        session,
        staff=staff,
        action="class_create",
        target=f"class:{klass.id}",
        now=web(request).clock(),
    )
    flash(request, f"Klas {klass.name} is gemaakt. Toon deze pagina in de klas.")
    return RedirectResponse(f"/klassen/{klass.id}/deelnemen", status_code=303)


async def repo_school(session: AsyncSession, staff: Staff) -> School:
    """The staff member's school row."""
    school = await session.get(School, staff.school_id)
    if school is None:
        raise HTTPException(404)
    return school


# ---------------------------------------------------------------- join page


def qr_svg(link: str, label: str) -> Markup:
    """A large QR code for the link, as inline SVG that scales with the page."""
    code = segno.make(link, error="m")
    svg = code.svg_inline(
        scale=1, border=2, omitsize=True, dark="#000", light="#fff", title=label, svgclass="qr"
    )
    return Markup(svg)  # noqa: S704 (segno escapes the title; the rest is generated paths)


@staff_page("teacher")
async def join_page(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """The class's deep link and QR code, to project or print."""
    klass = await teacher_class(request, staff, session)
    link = deep_link(web(request).bot_username, klass.join_code)
    return render(
        request,
        "join.html",
        {
            "klass": klass,
            "link": link,
            "qr": qr_svg(link, f"QR-code om aan te sluiten bij {klass.name}"),
        },
        staff=staff,
    )


# ---------------------------------------------------------------- class page


async def _class_data(
    request: Request, klass: SchoolClass, session: AsyncSession
) -> dict[str, Any]:
    catalog = web(request).catalog
    assignments = await q.assignments_of_class(session, klass.id)
    columns = [
        ModuleColumn(
            a.module_id,
            module_title(catalog.modules.get(a.module_id), a.module_id),
            a.due,
            m.question_count if (m := catalog.modules.get(a.module_id)) else 0,
        )
        for a in assignments
    ]
    pupils = await q.pupils_of_classes(session, [klass.id])
    runs = await q.runs_of_pupils(session, [p.id for p in pupils], [c.id for c in columns])
    progress = cells(runs)
    return {"columns": columns, "pupils": pupils, "progress": progress}


async def _class_page(
    request: Request,
    staff: Staff,
    session: AsyncSession,
    klass: SchoolClass,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    catalog = web(request).catalog
    data = await _class_data(request, klass, session)
    pupils, columns, progress = data["pupils"], data["columns"], data["progress"]
    finished = None
    if len(pupils) >= charts.MIN_GROUP and columns:
        finished = charts.finished_chart(
            [
                (c.title, sum(1 for p in pupils if _done(progress.get((p.id, c.id)))), len(pupils))
                for c in columns
            ]
        )
    modules = sorted(catalog.modules.values(), key=lambda m: m.title.nl)
    return render(
        request,
        "class.html",
        {
            "klass": klass,
            **data,
            "finished_chart": finished,
            "min_group": charts.MIN_GROUP,
            "modules": modules,
            "form": form or {},
            "errors": errors or {},
            "today": web(request).today(),
        },
        staff=staff,
        status_code=status_code,
    )


def _done(cell: Cell | None) -> bool:
    return cell is not None and cell.status == "done"


@staff_page("teacher")
async def class_page(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Pupils of a class with their progress per assigned module, and the assign form."""
    klass = await teacher_class(request, staff, session)
    return await _class_page(request, staff, session, klass)


def parse_due(value: str, today: date) -> tuple[date | None, str | None]:
    """A due date from the form: empty is none; past, malformed or far away is a problem."""
    value = value.strip()
    if not value:
        return None, None
    try:
        due = date.fromisoformat(value)
    except ValueError:
        return None, "Die datum klopt niet. Kies een dag in de kalender (dd/mm/jjjj)."
    if due < today:
        return None, "Die datum is al voorbij. Kies vandaag of een dag later."
    if due > today + MAX_DUE_AHEAD:
        return None, "Kies een datum binnen het komende jaar."
    return due, None


@staff_page("teacher")
async def assign(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Give a module to the class with a due date; pupils get a notice through the bot."""
    klass = await teacher_class(request, staff, session)
    state = web(request)
    form = await request.form()
    module_id = str(form.get("module", "")).strip()
    due_text = str(form.get("due", "")).strip()
    errors: dict[str, str] = {}
    if module_id not in state.catalog.modules:
        errors["module"] = "Kies een module uit de lijst."
    due, due_error = parse_due(due_text, state.today())
    if due_error:
        errors["due"] = due_error
    if errors:
        return await _class_page(
            request,
            staff,
            session,
            klass,
            form={"module": module_id, "due": due_text},
            errors=errors,
            status_code=400,
        )
    new, notified = await assign_module(
        session,
        catalog=state.catalog,
        secret=state.settings.secret,
        klass=klass,
        module_id=module_id,
        due=due,
        staff_id=staff.id,
    )
    await repo.audit(
        session,
        staff=staff,
        action="assign",
        target=f"class:{klass.id}/{module_id}",
        now=state.clock(),
    )
    title = state.catalog.modules[module_id].title.nl
    if new:
        flash(
            request,
            f"{title} is gegeven aan {klass.name}. {notified} leerling(en) kregen een bericht.",
        )
    else:
        flash(request, f"De deadline van {title} is aangepast.")
    return RedirectResponse(f"/klassen/{klass.id}", status_code=303)


# ---------------------------------------------------------------- shared answers


@staff_page("teacher")
async def module_page(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """What pupils shared for one module, and the class's scale answers as a chart."""
    klass = await teacher_class(request, staff, session)
    state = web(request)
    module_id = str(request.path_params["module_id"])
    assigned = {a.module_id: a for a in await q.assignments_of_class(session, klass.id)}
    if module_id not in assigned:
        raise HTTPException(404)
    module = state.catalog.modules.get(module_id)
    pupils = await q.pupils_of_classes(session, [klass.id])
    ids = [p.id for p in pupils]
    progress = cells(await q.runs_of_pupils(session, ids, [module_id]))
    by_pupil: dict[int, list[q.AnswerRow]] = defaultdict(list)
    for row in await q.shared_answers(session, pupil_ids=ids, module_ids=[module_id]):
        by_pupil[row.pupil_id].append(row)
    entries: list[dict[str, Any]] = []
    scales: dict[str, Counter[int]] = defaultdict(Counter)
    for pupil in pupils:
        cell = progress.get((pupil.id, module_id))
        answers = visible_answers(module, cell, by_pupil.get(pupil.id, []))
        entries.append({"pupil": pupil, "cell": cell, "answers": answers})
        for row in by_pupil.get(pupil.id, []):
            if (
                cell is not None
                and row.run_id == cell.run_id
                and isinstance(row.value, int)
                and any(a.step_id == row.step_id for a in answers)
            ):
                scales[row.step_id][row.value] += 1
    scale_charts = []
    if module is not None:
        for step in module.steps:
            if step.type is StepKind.SCALE and step.scale:
                counts = scales.get(step.id, Counter())
                n = sum(counts.values())
                chart = None
                if n >= charts.MIN_GROUP:
                    chart = charts.scale_chart(
                        step.text.nl, counts, {k: v.nl for k, v in step.scale.items()}
                    )
                scale_charts.append({"question": step.text.nl, "n": n, "chart": chart})
    await repo.audit(
        session,
        staff=staff,
        action="view_answers",
        target=f"class:{klass.id}/{module_id}",
        now=state.clock(),
    )
    return render(
        request,
        "module.html",
        {
            "klass": klass,
            "module_id": module_id,
            "title": module_title(module, module_id),
            "due": assigned[module_id].due,
            "entries": entries,
            "scale_charts": scale_charts,
            "min_group": charts.MIN_GROUP,
            "done": sum(1 for e in entries if _done(e["cell"])),
        },
        staff=staff,
    )


# ---------------------------------------------------------------- CSV export


def _cell_text(value: str) -> str:
    """Stop spreadsheet formulas: a cell starting with = + - @ is shown as text."""
    return "'" + value if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


@staff_page("teacher")
async def progress_csv(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """The class's progress as CSV (semicolons and a BOM, so Excel in Flanders opens it)."""
    klass = await teacher_class(request, staff, session)
    data = await _class_data(request, klass, session)
    zone = web(request).zone
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        ["leerling", "pseudoniem", "laatste activiteit", *[c.title for c in data["columns"]]]
    )
    for pupil in data["pupils"]:
        seen = (
            pupil.last_seen_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            if pupil.last_seen_at
            else ""
        )
        row = [_cell_text(pupil.first_name), pupil.pseudonym, seen]
        for column in data["columns"]:
            cell = data["progress"].get((pupil.id, column.id))
            row.append(cell.label if cell else "nog niet")
        writer.writerow(row)
    await repo.audit(
        session,
        staff=staff,
        action="export_progress",
        target=f"class:{klass.id}",
        now=web(request).clock(),
    )
    filename = (
        "voortgang-"
        + "".join(
            ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "-" for ch in klass.name
        )
        + ".csv"
    )
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/klassen", classes, methods=["GET"]),
    Route("/klassen", create_class, methods=["POST"]),
    Route("/klassen/{class_id:int}", class_page, methods=["GET"]),
    Route("/klassen/{class_id:int}/deelnemen", join_page, methods=["GET"]),
    Route("/klassen/{class_id:int}/opdrachten", assign, methods=["POST"]),
    Route("/klassen/{class_id:int}/modules/{module_id:str}", module_page, methods=["GET"]),
    Route("/klassen/{class_id:int}/voortgang.csv", progress_csv, methods=["GET"]),
]
