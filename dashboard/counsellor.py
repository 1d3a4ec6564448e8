"""Flag pages: the counsellors' live queue, a teacher's contact requests, one flag, actions.

Who may open a flag is the relay's decision (`bot.relay.may_see`): counsellors see their
school's flags; a teacher only the contact requests pupils addressed to them. Admins see no
flags in the dashboard: flags go to the counsellor role only (content-brief §5).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import relay
from dashboard import formats
from dashboard.web import flash, int_param, render, staff_page, web
from store import dashboard_queries as q
from store.models import Flag, SchoolClass, Staff

KIND_NAMES = {
    "crisis": "Crisis",
    "zorg": "Zorg",
    "aandacht": "Aandacht",
    "contactvraag": "Contactvraag",
}
STATE_NAMES = {
    "open": "nieuw",
    "acknowledged": "gezien",
    "in_conversation": "in gesprek",
    "closed": "gesloten",
}
ACTION_NAMES = {
    "opened": "gemeld door de bot",
    "updated": "aangevuld door de bot",
    "viewed": "bekeken",
    "acknowledged": "gezien",
    "reply": "antwoord gestuurd",
    "replied": "antwoord gestuurd",
    "closed": "gesloten",
    "pupil_message": "bericht van de leerling",
    "escalated": "opnieuw gemeld",
    "delivery_failed": "bericht niet afgeleverd",
    "contact_opened": "contact gevraagd",
}
CATEGORY_NAMES = {
    "suicidal": "zelfdoding",
    "self_harm": "zelfverwonding",
    "home_violence": "geweld thuis",
    "sexual_abuse": "seksueel misbruik",
    "bullying": "pesten",
    "acute_danger": "acuut gevaar",
    "worry_other": "zorg om iemand anders",
}
REASON_NAMES = {
    "contactvraag": "wil praten",
    "contact_request": "wil praten",
    "veiligheid": "veiligheid",
    "schooluitval_risico": "risico op schooluitval",
    "vroege_signalen": "signalen (gevraagd door school)",
    "zorg_over_ander": "zorg om iemand anders",
}
MAX_REPLY = 2000
MAX_NOTE = 2000


def topic(category: str | None, reason: str) -> str:
    """What a flag is about, in Dutch: its category, else its reason."""
    if category:
        return CATEGORY_NAMES.get(category, category.replace("_", " "))
    return REASON_NAMES.get(reason, reason.replace("_", " "))


def labels() -> dict[str, Any]:
    """Dutch names for kinds, states and history actions, for the templates."""
    return {
        "kind_names": KIND_NAMES,
        "state_names": STATE_NAMES,
        "action_names": ACTION_NAMES,
        "topic": topic,
        "category_names": CATEGORY_NAMES,
    }


@dataclass(frozen=True, slots=True)
class QueueLine:
    """One queue row with its texts ready: 500 rows render fast without template calls."""

    id: int
    kind: str
    kind_label: str
    topic: str
    state_label: str
    urgent: bool
    delivery_failed: bool
    pupil: str
    class_name: str
    when: str
    ago: str


def queue_lines(rows: list[q.QueueRow], *, now: datetime, zone: ZoneInfo) -> list[QueueLine]:
    """The queue's rows as the page shows them."""
    return [
        QueueLine(
            id=r.id,
            kind=r.kind,
            kind_label=KIND_NAMES.get(r.kind, r.kind),
            topic=topic(r.category, r.reason),
            state_label=STATE_NAMES.get(r.state, r.state),
            urgent=r.urgent,
            delivery_failed=r.delivery_failed,
            pupil=r.pupil_pseudonym,
            class_name=r.class_name or "–",
            when=formats.when(r.created_at, zone),
            ago=formats.ago(r.created_at, now),
        )
        for r in rows
    ]


async def _queue_context(request: Request, staff: Staff, session: AsyncSession) -> dict[str, Any]:
    state = web(request)
    rows = await q.flag_queue(session, school_id=staff.school_id)
    stamp = await q.queue_stamp(session, school_id=staff.school_id)
    return {
        "rows": queue_lines(rows, now=state.clock(), zone=state.zone),
        "stamp": stamp,
        "crisis": sum(1 for r in rows if r.kind == "crisis"),
    }


@staff_page("counsellor")
async def queue(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """The open flags of my school, most urgent first; the list refreshes itself."""
    context = await _queue_context(request, staff, session)
    closed = await q.flag_queue(session, school_id=staff.school_id, closed=True, limit=30)
    return render(
        request,
        "queue.html",
        {
            **context,
            **labels(),
            "closed": closed,
            "poll_ms": int(web(request).poll_seconds * 1000),
        },
        staff=staff,
    )


@staff_page("counsellor")
async def queue_fragment(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """The queue's rows as an HTML fragment for polling; 204 when nothing changed."""
    stamp = await q.queue_stamp(session, school_id=staff.school_id)
    if request.query_params.get("stamp") == stamp:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    context = await _queue_context(request, staff, session)
    response = render(request, "_queue_rows.html", context, staff=staff)
    response.headers["X-Queue-Stamp"] = stamp
    response.headers["X-Queue-Crisis"] = str(context["crisis"])
    response.headers["X-Queue-Count"] = str(len(context["rows"]))
    return response


@staff_page("teacher")
async def contact_requests(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Contact requests pupils of my classes addressed to me."""
    rows = await q.contact_requests_for_teacher(
        session, teacher_id=staff.id, school_id=staff.school_id
    )
    return render(request, "contacts.html", {"rows": rows, **labels()}, staff=staff)


async def _flag_page(
    request: Request,
    staff: Staff,
    session: AsyncSession,
    flag: Flag,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    klass = await session.get(SchoolClass, flag.class_id) if flag.class_id else None
    events = await q.flag_events(session, flag.id)
    messages = await relay.pupil_messages(session, flag=flag)
    # A teacher sees the request and the conversation with them, never the transcript around
    # it: that may hold answers the pupil did not share with the teacher.
    teacher = staff.role == "teacher"
    return render(
        request,
        "flag.html",
        {
            "flag": flag,
            "klass": klass,
            "events": events,
            "pupil_messages": messages,
            "teacher_view": teacher,
            "back": "/contactvragen" if teacher else "/meldingen",
            "context_lines": [] if teacher else list((flag.context or {}).get("lines", [])),
            "evidence": [] if teacher else list((flag.evidence or {}).get("items", [])),
            "form": form or {},
            "errors": errors or {},
            **labels(),
        },
        staff=staff,
        status_code=status_code,
    )


async def _viewed(request: Request, staff: Staff, session: AsyncSession) -> Flag:
    """The flag in the path through the relay's access check (which writes the audit row)."""
    try:
        return await relay.flag_for_staff(
            session, flag_id=int_param(request, "flag_id"), staff=staff, now=web(request).clock()
        )
    except relay.FlagNotFound:
        raise HTTPException(404) from None


@staff_page("counsellor", "teacher")
async def flag_page(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """One flag: pupil pseudonym, class, category, evidence, context, history, actions."""
    flag = await _viewed(request, staff, session)
    return await _flag_page(request, staff, session, flag)


Action = Callable[[AsyncSession, int], Awaitable[Flag]]


async def _act(
    request: Request,
    staff: Staff,
    session: AsyncSession,
    action: Action,
    *,
    field: str,
    value: str,
    done: str,
) -> Response:
    """Run one relay action in a savepoint; a refusal shows the flag page with its reason.

    The relay checks access itself; the flag page is only shown (and audited) on a refusal.
    """
    flag_id = int_param(request, "flag_id")
    try:
        async with session.begin_nested():
            await action(session, flag_id)
    except relay.FlagNotFound:
        raise HTTPException(404) from None
    except relay.RelayError as exc:
        flag = await _viewed(request, staff, session)
        return await _flag_page(
            request,
            staff,
            session,
            flag,
            form={field: value},
            errors={field: str(exc)},
            status_code=400,
        )
    flash(request, done)
    return RedirectResponse(f"/meldingen/{flag_id}", status_code=303)


@staff_page("counsellor", "teacher")
async def acknowledge(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Mark the flag as seen (the pupil's school knows someone is on it)."""
    now = web(request).clock()

    async def action(session: AsyncSession, flag_id: int) -> Flag:
        return await relay.acknowledge(session, flag_id=flag_id, staff=staff, now=now)

    return await _act(
        request, staff, session, action, field="ack", value="", done="De melding staat op gezien."
    )


async def _text_action(
    request: Request,
    staff: Staff,
    session: AsyncSession,
    *,
    field: str,
    limit: int,
    empty: str,
    too_long: str,
    done: str,
    send: Callable[[AsyncSession, int, str], Awaitable[Flag]],
) -> Response:
    """A flag action that takes one text field: the form again on bad input, else act."""
    form = await request.form()
    value = str(form.get(field, "")).strip()
    if not value or len(value) > limit:
        flag = await _viewed(request, staff, session)
        error = empty if not value else too_long
        return await _flag_page(
            request,
            staff,
            session,
            flag,
            form={field: value},
            errors={field: error},
            status_code=400,
        )

    async def action(session: AsyncSession, flag_id: int) -> Flag:
        return await send(session, flag_id, value)

    return await _act(request, staff, session, action, field=field, value=value, done=done)


@staff_page("counsellor", "teacher")
async def reply(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Send the pupil a message through the bot."""
    state = web(request)

    async def send(session: AsyncSession, flag_id: int, text: str) -> Flag:
        return await relay.reply(
            session,
            flag_id=flag_id,
            staff=staff,
            text=text,
            now=state.clock(),
            catalog=state.catalog,
            secret=state.settings.secret,
        )

    return await _text_action(
        request,
        staff,
        session,
        field="text",
        limit=MAX_REPLY,
        empty="Schrijf eerst een bericht.",
        too_long=f"Je bericht is te lang (maximaal {MAX_REPLY} tekens).",
        done="Je bericht is verstuurd. De leerling krijgt het in Telegram.",
        send=send,
    )


@staff_page("counsellor", "teacher")
async def close(request: Request, staff: Staff, session: AsyncSession) -> Response:
    """Close the flag with a note about what happened."""
    state = web(request)

    async def send(session: AsyncSession, flag_id: int, note: str) -> Flag:
        return await relay.close(
            session,
            flag_id=flag_id,
            staff=staff,
            note=note,
            now=state.clock(),
            catalog=state.catalog,
            secret=state.settings.secret,
        )

    return await _text_action(
        request,
        staff,
        session,
        field="note",
        limit=MAX_NOTE,
        empty="Schrijf kort wat er gebeurd is.",
        too_long=f"Je notitie is te lang (maximaal {MAX_NOTE} tekens).",
        done="De melding is gesloten.",
        send=send,
    )


ROUTES = [
    Route("/meldingen", queue, methods=["GET"]),
    Route("/meldingen/lijst", queue_fragment, methods=["GET"]),
    Route("/contactvragen", contact_requests, methods=["GET"]),
    Route("/meldingen/{flag_id:int}", flag_page, methods=["GET"]),
    Route("/meldingen/{flag_id:int}/gezien", acknowledge, methods=["POST"]),
    Route("/meldingen/{flag_id:int}/antwoord", reply, methods=["POST"]),
    Route("/meldingen/{flag_id:int}/sluiten", close, methods=["POST"]),
]
