"""Pupil rights in the bot: /mijngegevens (a copy of their data) and /vergeetmij (erase).

The engine asks and confirms; this module does the work inside the same transaction:
- `ExportRequested` → the outbound document "export:<file name>" is rendered by `export_text`:
  profile, runs, answers, flags about the pupil (without staff notes) and the transcript.
- `EraseConfirmed` → `store.repo.erase_pupil_rows` deletes every row tied to the pupil and
  pseudonymises their flags; the goodbye (engine system event `erase_done`) is queued without
  a link to the pupil, so nothing of theirs remains once it is sent.
Logs name pupils by pseudonym only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.render import render
from content.loader import Catalog
from content.models import TEMPLATE_REF
from flows import engine
from flows.types import (
    Context,
    EraseConfirmed,
    Event,
    ExportRequested,
    Inbound,
    InboundKind,
    PupilState,
)
from store import repo
from store.models import Answer, Flag, Pupil, Run, School, SchoolClass, TranscriptLine

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger("leerbot.privacy")

EXPORT = "export"  # the attachment kind the engine asks for on /mijngegevens
RULE = "-"


class Privacy:
    """The conversation hooks for export and erase (installed by `install_privacy`)."""

    def __init__(self, *, catalog: Catalog, secret: bytes, zone: ZoneInfo) -> None:
        self.catalog = catalog
        self.secret = secret
        self.zone = zone

    async def on_event(
        self, session: AsyncSession, pupil: Pupil, event: Event, now: datetime
    ) -> None:
        """Conversation event hook."""
        if isinstance(event, ExportRequested):
            log.info("data export requested by %s", pupil.pseudonym)
        elif isinstance(event, EraseConfirmed):
            await self.erase(session, pupil, now=now)

    async def erase(self, session: AsyncSession, pupil: Pupil, *, now: datetime) -> None:
        """Delete the pupil now and queue the goodbye, tied to nobody."""
        chat_id, pseudonym, lang = pupil.chat_id, pupil.pseudonym, pupil.lang
        await repo.erase_pupil_rows(session, pupil)
        result = engine.step(
            PupilState(lang=lang),
            Inbound(kind=InboundKind.SYSTEM, command="erase_done"),
            Context(catalog=self.catalog),
            now=now,
        )
        for message in result.outbound:
            for method, params in render(self.secret, chat_id, message):
                await repo.enqueue(
                    session, chat_id=chat_id, method=method, payload=params, now=now
                )
        log.info("pupil %s erased on request", pseudonym)

    async def export(self, session: AsyncSession, pupil: Pupil, _attachment: str) -> bytes:
        """Attachment renderer for "export:<file name>": the document as UTF-8 text."""
        text = await export_text(
            session, pupil, catalog=self.catalog, zone=self.zone, now=datetime.now(self.zone)
        )
        return text.encode("utf-8")


def _heading(title: str) -> list[str]:
    return ["", title, RULE * len(title)]


async def export_text(
    session: AsyncSession, pupil: Pupil, *, catalog: Catalog, zone: ZoneInfo, now: datetime
) -> str:
    """Everything stored about one pupil, readable on a phone (labels from content/texts)."""
    lang = pupil.lang

    def t(key: str, **values: object) -> str:
        return catalog.texts.get(f"mijngegevens.doc.{key}", lang, **values)

    def when(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%d-%m-%Y %H:%M") if moment else t("unknown")

    def title(module_id: str) -> str:
        module = catalog.modules.get(module_id)
        return module.title.get(lang) if module is not None else module_id

    klass = await session.get(SchoolClass, pupil.class_id) if pupil.class_id else None
    school = await session.get(School, klass.school_id) if klass is not None else None
    head = t("title")
    lines = [head, "=" * len(head), t("made", date=when(now)), "", t("intro")]

    lines += _heading(t("about"))
    band = pupil.age_band or PupilState.load(pupil.state).age_band  # pre-consent
    age = {"u13": t("age_u13"), "13plus": t("age_13plus")}.get(band or "", t("unknown"))
    lines += [
        t("name", value=pupil.first_name or t("unknown")),
        t("school", value=school.name if school else t("unknown")),
        t("class", value=klass.name if klass else t("unknown")),
        t("age", value=age),
        t("consent", value=when(pupil.consent_at)) if pupil.consent_at else t("consent_none"),
        t("first_seen", value=when(pupil.created_at)),
        t("reminders", value=t("reminders_off" if pupil.reminders_off else "reminders_on")),
    ]

    runs = (
        await session.scalars(select(Run).where(Run.pupil_id == pupil.id).order_by(Run.id))
    ).all()
    lines += _heading(t("runs"))
    for run in runs:
        status = (
            t(f"status_{run.status}") if run.status in {"busy", "paused", "done"} else run.status
        )
        lines.append(
            t("run_line", title=title(run.module_id), status=status, started=when(run.started_at))
        )
        if run.status == "done" and run.share in {"alles", "samenvatting", "niets"}:
            lines.append(t("run_share", value=t(f"share_{run.share}")))
    if not runs:
        lines.append(t("none"))

    versions = {run.id: run.version for run in runs}
    answers = (
        await session.scalars(
            select(Answer).where(Answer.pupil_id == pupil.id).order_by(Answer.id)
        )
    ).all()
    lines += _heading(t("answers"))
    current = None
    for answer in answers:
        if answer.module_id != current:
            current = answer.module_id
            lines.append(title(answer.module_id))
        question = _question(
            catalog, answer.module_id, versions.get(answer.run_id), answer.step_id, lang
        )
        text = t("answer_line", question=question, answer=answer.display)
        lines.append(f"{text} {t('private_mark')}" if answer.private else text)
    if not answers:
        lines.append(t("none"))

    flags = (
        await session.scalars(select(Flag).where(Flag.pupil_id == pupil.id).order_by(Flag.id))
    ).all()
    lines += _heading(t("flags"))
    lines.append(t("flags_intro"))
    for flag in flags:
        kind = (
            t(f"kind_{flag.kind}")
            if catalog.texts.has(f"mijngegevens.doc.kind_{flag.kind}")
            else flag.kind
        )
        state = {"open": t("state_open"), "closed": t("state_closed")}.get(
            flag.state, t("state_other")
        )
        lines.append(t("flag_line", date=when(flag.created_at), kind=kind, state=state))
        words = [str(item) for item in flag.evidence.get("items", [])]
        if flag.about:
            words.append(flag.about)
        if words:
            lines.append(t("flag_words", value=" / ".join(words)))
    if not flags:
        lines.append(t("none"))

    transcript = (
        await session.scalars(
            select(TranscriptLine)
            .where(TranscriptLine.pupil_id == pupil.id)
            .order_by(TranscriptLine.id)
        )
    ).all()
    lines += _heading(t("messages"))
    who = {"in": t("from_in"), "out": t("from_out"), "staff": t("from_staff")}
    for line in transcript:
        body = line.text.replace("\n", "\n    ")  # continuation lines stay under their line
        lines.append(
            f"[{when(line.created_at)}] {who.get(line.direction, line.direction)}: {body}"
        )
    if not transcript:
        lines.append(t("none"))
    return "\n".join(lines) + "\n"


def _question(
    catalog: Catalog, module_id: str, version: str | None, step_id: str, lang: str
) -> str:
    """The question of a step, with references to earlier answers shown as "…"."""
    try:
        step = catalog.get(module_id, version).step(step_id)
    except KeyError:  # a module or step that no longer exists
        return step_id
    return TEMPLATE_REF.sub("…", step.text.get(lang)).strip()


def install_privacy(runtime: Runtime) -> Privacy:
    """Hook export and erase into the conversation service."""
    privacy = Privacy(
        catalog=runtime.catalog,
        secret=runtime.settings.secret,
        zone=ZoneInfo(runtime.settings.timezone),
    )
    runtime.conversation.event_hooks.append(privacy.on_event)
    runtime.conversation.attachment_renderers[EXPORT] = privacy.export
    return privacy
