"""Early warning: pupils whose check-in, progress or silence asks for a look, worst first."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import relay
from content.loader import Catalog
from dashboard.progress import cells, visible_answers
from dashboard.web import flash, int_param, render, staff_page, web
from store import dashboard_queries as q
from store.models import Staff

CHECKIN = "hoe-gaat-het-op-school"
STALLED_AFTER = timedelta(days=3)
SILENT_AFTER = timedelta(days=14)
CONTACT_REASON = "vroege_signalen"
ABSENT = {"3 tot 5": 2, "Meer dan 5": 3}
STOPPING = {"Vaak": 3, "Soms": 2}


@dataclass
class Concern:
    """One pupil on the early-warning list with the reasons, weighted."""

    pupil: q.PupilRow
    class_name: str
    score: int = 0
    reasons: list[str] = field(default_factory=list)
    open_flag_id: int | None = None

    def add(self, weight: int, reason: str) -> None:
        """Count one signal."""
        self.score += weight
        self.reasons.append(reason)


def _checkin_signals(concern: Concern, answers: dict[str, object]) -> None:
    gevoel = answers.get("gevoel")
    if isinstance(gevoel, int) and gevoel <= 2:
        concern.add(4 - gevoel, f"Voelt zich niet goed op school ({gevoel} op 5)")
    stoppen = answers.get("stoppen")
    if isinstance(stoppen, str) and stoppen in STOPPING:
        concern.add(STOPPING[stoppen], f"Denkt {stoppen.lower()} aan stoppen met school")
    afwezig = answers.get("afwezig")
    if isinstance(afwezig, str) and afwezig in ABSENT:
        concern.add(ABSENT[afwezig], f"Was {afwezig.lower()} dagen afwezig (laatste 2 weken)")


async def concerns(
    session: AsyncSession, *, catalog: Catalog, class_names: dict[int, str], now: datetime
) -> list[Concern]:
    """Every pupil of these classes with at least one signal, most worrying first.

    Check-in answers count only as far as the pupil shared them (never private ones), so a
    teacher learns nothing here that the class page would not show.
    """
    pupils = await q.pupils_of_classes(session, list(class_names))
    ids = [p.id for p in pupils]
    runs = await q.runs_of_pupils(session, ids)
    progress = cells(r for r in runs if r.module_id == CHECKIN)
    shared: dict[int, list[q.AnswerRow]] = defaultdict(list)
    for row in await q.shared_answers(session, pupil_ids=ids, module_ids=[CHECKIN]):
        shared[row.pupil_id].append(row)
    stalled: dict[int, list[q.RunRow]] = defaultdict(list)
    latest: dict[tuple[int, str], q.RunRow] = {}
    for run in runs:
        latest[(run.pupil_id, run.module_id)] = run
    for run in latest.values():
        if run.status in {"busy", "paused"} and now - run.updated_at >= STALLED_AFTER:
            stalled[run.pupil_id].append(run)
    module = catalog.modules.get(CHECKIN)
    found: list[Concern] = []
    for pupil in pupils:
        concern = Concern(pupil=pupil, class_name=class_names.get(pupil.class_id or 0, ""))
        cell = progress.get((pupil.id, CHECKIN))
        rows = shared.get(pupil.id, [])
        visible = {a.step_id for a in visible_answers(module, cell, rows)}
        values = {
            r.step_id: r.value
            for r in rows
            if cell is not None and r.run_id == cell.run_id and r.step_id in visible
        }
        _checkin_signals(concern, values)
        for run in stalled.get(pupil.id, []):
            days = (now - run.updated_at).days
            title = (
                catalog.modules[run.module_id].title.nl
                if run.module_id in catalog.modules
                else run.module_id
            )
            concern.add(
                1, f"Gestopt in {title} bij vraag {run.position}/{run.total}, {days} dagen geleden"
            )
        seen = pupil.last_seen_at or pupil.created_at
        if now - seen >= SILENT_AFTER:
            days = (now - seen).days
            concern.add(2 if days < 30 else 3, f"Al {days} dagen niets van gehoord")
        if concern.score:
            found.append(concern)
    found.sort(key=lambda c: (-c.score, c.pupil.last_seen_at or c.pupil.created_at))
    return found


async def _scope(session: AsyncSession, staff: Staff) -> dict[int, str]:
    """The classes this staff member may look at: a teacher's own, or the whole school's."""
    rows = await (
        q.classes_of_teacher(session, staff.id)
        if staff.role == "teacher"
        else q.classes_of_school(session, staff.school_id)
    )
    return {r.id: r.name for r in rows}


def _filter(scope: dict[int, str], value: str | None) -> dict[int, str]:
    if not value:
        return scope
    try:
        class_id = int(value)
    except ValueError:
        raise HTTPException(404) from None
    if class_id not in scope:
        raise HTTPException(404)
    return {class_id: scope[class_id]}


@staff_page("teacher", "counsellor")
async def early_warning(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Pupils to look at, per class, sorted by concern."""
    state = web(request)
    scope = await _scope(session, staff)
    chosen = _filter(scope, request.query_params.get("klas"))
    found = await concerns(session, catalog=state.catalog, class_names=chosen, now=state.clock())
    if staff.role == "counsellor":
        flags = await q.open_flag_ids_by_pupil(session, [c.pupil.id for c in found])
        for concern in found:
            concern.open_flag_id = flags.get(concern.pupil.id)
    return render(
        request,
        "signals.html",
        {
            "concerns": found,
            "classes": sorted(scope.items(), key=lambda kv: kv[1]),
            "chosen": request.query_params.get("klas", ""),
            "stalled_days": STALLED_AFTER.days,
            "silent_days": SILENT_AFTER.days,
        },
        staff=staff,
    )


@staff_page("teacher", "counsellor")
async def contact(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Ask the counsellors to contact this pupil (a contactvraag flag; teachers never see it)."""
    state = web(request)
    pupil = await q.pupil_row(session, int_param(request, "pupil_id"))
    scope = await _scope(session, staff)
    if pupil is None or pupil.class_id not in scope:
        raise HTTPException(404)
    form = await request.form()
    back = "/signalen" + (f"?klas={pupil.class_id}" if form.get("klas") else "")
    try:
        async with session.begin_nested():
            await relay.open_contact_flag(
                session, pupil_id=pupil.id, staff=staff, reason=CONTACT_REASON, now=state.clock()
            )
    except relay.RelayError as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(back, status_code=303)
    name = pupil.first_name if staff.role == "teacher" and pupil.first_name else pupil.pseudonym
    flash(request, f"Gevraagd: de leerlingenbegeleider neemt contact op met {name}.")
    return RedirectResponse(back, status_code=303)


ROUTES = [
    Route("/signalen", early_warning, methods=["GET"]),
    Route("/signalen/{pupil_id:int}/contact", contact, methods=["POST"]),
]
