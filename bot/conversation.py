"""One inbound event, one transaction: load the pupil, step the engine, write everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import verify
from bot.fastlane import FastLane
from bot.render import render
from content.loader import Catalog
from content.models import Module
from flows import engine
from flows.types import (
    AnswerRecorded,
    Assignment,
    ConsentGiven,
    Context,
    Event,
    FlagRaised,
    HistoryItem,
    Inbound,
    InboundKind,
    InputRejected,
    JoinOutcome,
    Outbound,
    PupilState,
    PupilToStaff,
    RunFinished,
    RunPaused,
    RunProgressed,
    RunStarted,
    SettingChanged,
    StepResult,
)
from nlu.safety import assess
from nlu.types import Parse
from store import repo
from store.db import Sessions, engine_of, lost_connection
from store.lean import LeanTransaction, PressStatements, lean_transaction
from store.models import Outbox, Pupil, Run, SchoolClass

log = logging.getLogger("leerbot.conversation")

FAST_ROWS = "leerbot.fast_rows"  # session.info key: outbox rows the fast lane sends

Clock = Callable[[], datetime]
ParseFn = Callable[[str], Awaitable[Parse | None]]
EventHook = Callable[[AsyncSession, Pupil, Event, datetime], Awaitable[None]]
AttachmentRenderer = Callable[[AsyncSession, Pupil, str], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Incoming:
    """A Telegram update reduced to what the product needs (built by bot/app.py)."""

    update_id: int | None
    user_id: int
    chat_id: int
    kind: Literal["text", "command", "callback", "media"]
    first_name: str = ""
    text: str = ""
    command: str = ""
    args: str = ""
    callback_data: str = ""
    message_id: int | None = None  # the message whose button was pressed
    media_kind: str = ""


@dataclass
class Handled:
    """What the adapter still does itself after commit (answer the callback query)."""

    notice: str = ""
    duplicate: bool = False
    outbox_ids: list[int] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


class Conversation:
    """The unit-of-work owner for pupil events (bot handlers call `handle`)."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        catalog: Catalog,
        secret: bytes,
        parse: ParseFn | None = None,
        clock: Clock = _now,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.secret = secret
        self.parse = parse
        self.clock = clock
        self.on_commit = on_commit or (lambda: None)
        self.event_hooks: list[EventHook] = []
        self.attachment_renderers: dict[str, AttachmentRenderer] = {}
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self.fast_lane: FastLane | None = None  # set by bot/features.py where a sender runs apart
        self._lean: dict[str, PressStatements] = {}
        self.quick_presses = True  # see _quick_press (off: every press takes the ORM way)
        self.quick_taken = 0  # presses handled by _quick_press
        self.quick_declined = 0  # presses it started and left to the normal way

    def _lock(self, user_id: int) -> asyncio.Lock:
        # Per-pupil serialisation inside one process; PostgreSQL adds a row lock across workers.
        lock = self._locks.get(user_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[user_id] = lock
        return lock

    async def handle(self, incoming: Incoming) -> Handled:
        """Process one pupil event end to end (one transaction), then hand its messages on.

        What it queued wakes the sender; a pressed button's edit may take the fast lane.
        """
        async with self._lock(incoming.user_id):
            if incoming.kind == "callback" and self.fast_lane is not None and self.quick_presses:
                quick = await self._quick_press(incoming)
                if quick is not None:
                    return quick
            parse = None
            # A crisis the in-process rules already see is answered without waiting for Rasa:
            # the help lines must not depend on (or be slowed by) a network service.
            if (
                incoming.kind == "text"
                and self.parse is not None
                and incoming.text.strip()
                and not assess(incoming.text).crisis
            ):
                parse = await self.parse(incoming.text)
            for attempt in range(2):
                try:
                    async with self.sessions.begin() as session:
                        handled = await self._handle(session, incoming, parse)
                    break
                except DBAPIError as exc:
                    # A connection that died while pooled (the database restarted): nothing
                    # of this update was written, so it runs again on a fresh connection.
                    if attempt or not lost_connection(exc):
                        raise
                    log.warning("database connection lost; handling the update again")
        if session.info.get(repo.QUEUED):
            self.on_commit()
        if self.fast_lane is not None:
            self.fast_lane.start(session.info.get(FAST_ROWS, []))
        return handled

    async def system(self, *, pupil_id: int, command: str, data: dict[str, Any]) -> None:
        """Feed a system event (assignment, reminder, handover) to a pupil, in its own unit."""
        async with self.sessions.begin() as session:
            await self.system_in(session, pupil_id=pupil_id, command=command, data=data)
        self.on_commit()

    async def system_in(
        self,
        session: AsyncSession,
        *,
        pupil_id: int,
        command: str,
        data: dict[str, Any],
        priority: int = 0,
        flag_id: int | None = None,
    ) -> StepResult | None:
        """A system event inside the caller's transaction (the caller commits).

        `flag_id` ties the queued messages to a flag, so a failed delivery shows on it.
        """
        pupil = await session.get(Pupil, pupil_id, with_for_update=True)
        if pupil is None or not pupil.active:
            return None
        inbound = Inbound(kind=InboundKind.SYSTEM, command=command, data=data)
        return await self._step(
            session, pupil, inbound, JoinOutcome.NONE, None, priority=priority, flag_id=flag_id
        )

    # ------------------------------------------------------------ the quick press

    async def _quick_press(self, incoming: Incoming) -> Handled | None:
        """A press that only redraws its question, on the driver connection (store/lean.py).

        The same transaction as `_handle` writes for it — the update id, the pupil's state and
        last_seen_at, the edit claimed by the fast lane — in a fifth of the CPU. Anything
        else (a forged button, a new or blocked pupil, a step with events, a reply that is
        not one edit, a chat with messages waiting) returns None having written nothing, and
        takes the normal way.
        """
        lane = self.fast_lane
        # The lane's own limits first: a press it would refuse is not worth the try.
        if lane is None or incoming.message_id is None or not lane.admits(incoming.chat_id, _EDIT):
            return None
        payload = verify(self.secret, incoming.chat_id, incoming.callback_data)
        if payload is None:
            return None
        engine_ = engine_of(self.sessions)
        if engine_ is None:
            return None
        statements = self._lean.get(engine_.dialect.name)
        if statements is None:
            statements = self._lean[engine_.dialect.name] = PressStatements(engine_.dialect)
        now = self.clock()
        try:
            async with lean_transaction(engine_) as tx:
                done = await self._quick_step(tx, statements, incoming, payload, lane, now)
        except _NotQuick:
            self.quick_declined += 1
            lane.metrics.quick_presses.labels(outcome="declined").inc()
            return None
        except Exception:
            # Nothing of it was committed: the normal way (with its own retry) takes over.
            log.warning("quick press failed; handling the update the normal way", exc_info=True)
            return None
        handled, rows = done
        self.quick_taken += not handled.duplicate
        lane.metrics.quick_presses.labels(
            outcome="duplicate" if handled.duplicate else "taken"
        ).inc()
        lane.start(rows)
        return handled

    async def _quick_step(
        self,
        tx: LeanTransaction,
        statements: PressStatements,
        incoming: Incoming,
        payload: str,
        lane: FastLane,
        now: datetime,
    ) -> tuple[Handled, list[Outbox]]:
        if incoming.update_id is not None and not await tx.fetch(
            statements.claim, {"update_id": incoming.update_id, "now": now}
        ):
            log.info("duplicate update %s ignored", incoming.update_id)
            return Handled(duplicate=True), []
        found = await tx.fetch(statements.pupil, {"user_id": incoming.user_id})
        if not found:
            raise _NotQuick
        pupil_id, chat_id, first_name, stored, active, blocked = found[0]
        if not active or blocked or chat_id != incoming.chat_id:
            raise _NotQuick
        state = PupilState.load(stored)
        inbound = Inbound(kind=InboundKind.BUTTON, payload=payload)
        if engine.needs_overview(state, inbound, self.catalog):
            raise _NotQuick
        ctx = Context(catalog=self.catalog, join=JoinOutcome.NONE, first_name=first_name)
        result = engine.step(state, inbound, ctx, now=now, owned=True)
        if result.events:
            raise _NotQuick
        calls: list[tuple[str, dict[str, Any]]] = []
        for message in result.outbound:
            if message.attachment or (
                message.text and message.kind == "text" and not message.edit
            ):
                raise _NotQuick  # a transcript line or an attachment: the ORM's business
            calls.extend(render(self.secret, chat_id, message, incoming.message_id))
        if not lane.admits(chat_id, calls):
            raise _NotQuick
        busy = await tx.fetch(
            statements.busy, {"chat_id": chat_id, "now": now, "lane": lane.owner}
        )
        if busy[0][0]:
            raise _NotQuick  # the normal way queues it behind what waits (and says so)
        rows = []
        for method, params in calls:
            values = {
                "chat_id": chat_id,
                "pupil_id": pupil_id,
                "priority": 0,
                "method": method,
                "payload": params,
                "status": "sending",
                "attempts": 0,
                "claimed_by": lane.owner,
                "claimed_at": now,
                "created_at": now,
            }
            ((row_id,),) = await tx.fetch(statements.queue, values)
            rows.append(Outbox(id=row_id, **values))
        await tx.fetch(
            statements.save,
            {
                "pupil_id": pupil_id,
                "new_state": result.state.stored(),
                "new_lang": result.state.lang,
                "new_reminders_off": result.state.reminders_off,
                "new_last_seen_at": now,
            },
        )
        return Handled(notice=self._notice(result.outbound)), rows

    # ------------------------------------------------------------ internals

    async def _handle(
        self, session: AsyncSession, incoming: Incoming, parse: Parse | None
    ) -> Handled:
        now = self.clock()
        payload = None
        if incoming.kind == "callback":
            # Checked before anything is written: a forged or foreign button changes nothing.
            payload = verify(self.secret, incoming.chat_id, incoming.callback_data)
            if payload is None:
                known = await repo.pupil_for_update(session, incoming.user_id)
                log.warning(
                    "rejected callback data from %s (forged or foreign)",
                    known.pseudonym if known else "an unknown user",
                )
                return Handled(notice=self.catalog.texts.get("input.button_expired_short"))
        if incoming.update_id is not None and not await repo.claim_update(
            session, incoming.update_id, now=now
        ):
            log.info("duplicate update %s ignored", incoming.update_id)
            return Handled(duplicate=True)
        pupil = await repo.pupil_for_update(session, incoming.user_id)
        join = JoinOutcome.NONE
        klass: SchoolClass | None = None
        if incoming.kind == "command" and incoming.command == "start" and incoming.args:
            join, klass = await self._join_outcome(session, pupil, incoming.args.strip())
        if pupil is None:
            if join is not JoinOutcome.JOINED:
                # A stranger without a valid code: answer, but store nothing about them.
                inbound = self._inbound(incoming, parse, None)
                ctx = Context(catalog=self.catalog, join=join)
                result = engine.step(PupilState(), inbound, ctx, now=now)
                await self._queue(
                    session, None, incoming.chat_id, result.outbound, incoming, now=now
                )
                return Handled(notice=self._notice(result.outbound))
            pupil = await repo.create_pupil(
                session,
                telegram_user_id=incoming.user_id,
                chat_id=incoming.chat_id,
                first_name=incoming.first_name,
            )
        if klass is not None and join is JoinOutcome.JOINED:
            pupil.class_id = klass.id
        pupil.chat_id = incoming.chat_id
        if pupil.blocked:
            pupil.blocked = False  # they write again, so they unblocked the bot
        inbound = self._inbound(incoming, parse, payload)
        if inbound.kind in {InboundKind.TEXT, InboundKind.MEDIA} and inbound.text:
            await repo.add_transcript(
                session, pupil_id=pupil.id, direction="in", text=inbound.text, now=now
            )
        result = await self._step(session, pupil, inbound, join, incoming)
        pupil.last_seen_at = now  # set after the step: one UPDATE of the pupil row, not two
        return Handled(notice=self._notice(result.outbound))

    async def _join_outcome(
        self, session: AsyncSession, pupil: Pupil | None, code: str
    ) -> tuple[JoinOutcome, SchoolClass | None]:
        code = code.upper()
        if not repo.is_join_code(code):
            return JoinOutcome.MALFORMED, None
        klass = await repo.class_by_code(session, code)
        if klass is None:
            return JoinOutcome.UNKNOWN, None
        if pupil is not None and pupil.class_id == klass.id:
            return JoinOutcome.ALREADY, klass
        return JoinOutcome.JOINED, klass

    def _inbound(self, incoming: Incoming, parse: Parse | None, payload: str | None) -> Inbound:
        if incoming.kind == "command":
            return Inbound(
                kind=InboundKind.COMMAND, command=incoming.command.lower(), args=incoming.args
            )
        if incoming.kind == "callback":
            return Inbound(kind=InboundKind.BUTTON, payload=payload or "")
        if incoming.kind == "media":
            return Inbound(
                kind=InboundKind.MEDIA, text=incoming.text, data={"media": incoming.media_kind}
            )
        return Inbound(kind=InboundKind.TEXT, text=incoming.text, parse=parse)

    @staticmethod
    def _notice(outbound: tuple[Outbound, ...]) -> str:
        return next((o.notice for o in outbound if o.notice), "")

    async def context(
        self,
        session: AsyncSession,
        pupil: Pupil,
        join: JoinOutcome,
        inbound: Inbound,
        state: PupilState,
    ) -> Context:
        """Everything the engine may know about this pupil beyond their own state."""
        if not engine.needs_overview(state, inbound, self.catalog):
            # A multi-select press redraws its question: no class, assignments or runs needed.
            return Context(catalog=self.catalog, join=join, first_name=pupil.first_name)
        klass = await repo.class_context(session, pupil.class_id) if pupil.class_id else None
        runs = await repo.runs_for_pupil(session, pupil.id)
        status: dict[str, str] = {}
        for run in runs:
            if run.status == "done":
                status[run.module_id] = "done"
            elif status.get(run.module_id) != "done":
                status[run.module_id] = "busy"
        assignments = [
            Assignment(module=module, due=due, status=status.get(module, "new"))  # type: ignore[arg-type]  # new|busy|done
            for module, due in (klass.assignments if klass else ())
        ]
        history = None
        if engine.needs_history(inbound):
            history = await self._history(session, pupil)
        return Context(
            catalog=self.catalog,
            assignments=tuple(assignments),
            class_name=klass.name if klass else None,
            join=join,
            region=klass.region if klass else "BE",
            history=history,
            first_name=pupil.first_name,
        )

    async def _history(self, session: AsyncSession, pupil: Pupil) -> tuple[HistoryItem, ...]:
        items = []
        for answer in await repo.answers_for_pupil(session, pupil.id):
            module = self.catalog.modules.get(answer.module_id)
            question = answer.step_id
            if module is not None:
                with contextlib.suppress(KeyError):  # a step removed in a newer version
                    question = _short_question(module, answer.step_id)
            items.append(
                HistoryItem(
                    module=answer.module_id,
                    step=answer.step_id,
                    question=question,
                    display=answer.display,
                    private=answer.private,
                )
            )
        return tuple(items)

    async def _step(
        self,
        session: AsyncSession,
        pupil: Pupil,
        inbound: Inbound,
        join: JoinOutcome,
        incoming: Incoming | None,
        *,
        priority: int = 0,
        flag_id: int | None = None,
    ) -> StepResult:
        now = self.clock()
        state = PupilState.load(pupil.state)
        ctx = await self.context(session, pupil, join, inbound, state)
        result = engine.step(state, inbound, ctx, now=now, owned=True)
        for event in result.events:
            await self._apply(session, pupil, event, result.state, now)
        pupil.state = result.state.stored()
        pupil.lang = result.state.lang
        pupil.reminders_off = result.state.reminders_off
        await self._queue(
            session,
            pupil,
            pupil.chat_id,
            result.outbound,
            incoming,
            now=now,
            priority=priority,
            flag_id=flag_id,
        )
        return result

    async def _run(self, session: AsyncSession, pupil: Pupil, module_id: str) -> Run | None:
        return await repo.latest_run(session, pupil.id, module_id)

    async def _apply(
        self, session: AsyncSession, pupil: Pupil, event: Event, state: PupilState, now: datetime
    ) -> None:
        if isinstance(event, RunStarted):
            session.add(
                Run(
                    pupil_id=pupil.id,
                    module_id=event.module,
                    version=event.version,
                    status="busy",
                    started_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
        elif isinstance(event, RunProgressed):
            run = await self._run(session, pupil, event.module)
            if run is not None and run.status != "done":
                run.step, run.position, run.total = event.step, event.position, event.total
                run.status = "busy"
                run.updated_at = now
        elif isinstance(event, AnswerRecorded):
            run = await self._run(session, pupil, event.module)
            if run is not None:
                await repo.save_answer(
                    session,
                    run=run,
                    step_id=event.step,
                    value=event.value,
                    display=event.display,
                    private=event.private,
                    now=now,
                )
                if event.private:
                    await self._mark_last_in_private(session, pupil)
        elif isinstance(event, RunPaused):
            run = await self._run(session, pupil, event.module)
            if run is not None and run.status != "done":
                run.status = "paused"
                paused = state.paused.get(event.module)
                run.state = msgspec.to_builtins(paused) if paused else {}
                run.updated_at = now
        elif isinstance(event, RunFinished):
            run = await self._run(session, pupil, event.module)
            if run is not None:
                run.status = "done"
                run.share = event.share
                run.position = run.total
                run.finished_at = now
                run.updated_at = now
        elif isinstance(event, ConsentGiven):
            pupil.consent_at = now
            pupil.age_band = event.age_band
        elif isinstance(event, SettingChanged):
            if event.name == "reminders_off":
                pupil.reminders_off = bool(event.value)
        elif isinstance(event, InputRejected):
            log.info("input rejected for %s: %s", pupil.pseudonym, event.reason)
        elif isinstance(event, FlagRaised | PupilToStaff):
            pass  # handled by the safety/handover hooks below
        for hook in self.event_hooks:
            await hook(session, pupil, event, now)

    async def _mark_last_in_private(self, session: AsyncSession, pupil: Pupil) -> None:
        lines = await repo.recent_transcript(session, pupil.id, limit=1)
        for line in lines:
            if line.direction == "in":
                line.private = True

    async def _queue(
        self,
        session: AsyncSession,
        pupil: Pupil | None,
        chat_id: int,
        outbound: tuple[Outbound, ...],
        incoming: Incoming | None,
        *,
        now: datetime,
        priority: int = 0,
        flag_id: int | None = None,
    ) -> None:
        edit_id = incoming.message_id if incoming is not None else None
        calls: list[tuple[str, dict[str, Any]]] = []
        for message in outbound:
            for method, params in render(self.secret, chat_id, message, edit_id):
                if method in {"sendPhoto", "sendDocument"} and pupil is not None:
                    kind, _, name = message.attachment.partition(":")
                    renderer = self.attachment_renderers.get(kind)
                    if renderer is None:
                        continue
                    data = await renderer(session, pupil, message.attachment)
                    if data is None:
                        continue
                    if method == "sendPhoto":
                        params = dict(params, photo_b64=_b64(data))
                    else:  # "export:<file name>": the name comes from content/texts
                        params = dict(params, document_b64=_b64(data), filename=name or kind)
                    params.pop("attachment", None)
                elif method in {"sendPhoto", "sendDocument"}:
                    continue  # nothing to render for someone without a pupil row
                calls.append((method, params))
            # An edit redraws a question the transcript already holds (a multi-select tick).
            if pupil is not None and message.text and message.kind == "text" and not message.edit:
                await repo.add_transcript(
                    session, pupil_id=pupil.id, direction="out", text=message.text, now=now
                )
        owner = None  # the fast lane's, when it sends these itself
        lane = self.fast_lane
        if (
            lane is not None
            and pupil is not None
            and incoming is not None
            and incoming.kind == "callback"
            and priority == 0
            and lane.admits(chat_id, calls)
        ):
            if await repo.outbox_quiet(session, chat_id, now=now, lane=lane.owner):
                owner = lane.owner
            else:
                lane.refused(chat_id)
        for method, params in calls:
            row = await repo.enqueue(
                session,
                chat_id=chat_id,
                method=method,
                payload=params,
                priority=priority,
                pupil_id=pupil.id if pupil else None,
                flag_id=flag_id,
                now=now,
                claimed_by=owner,
            )
            if owner is not None:
                session.info.setdefault(FAST_ROWS, []).append(row)


_EDIT: list[tuple[str, dict[str, Any]]] = [
    ("editMessageText", {})
]  # what a quick press answers with


class _NotQuick(Exception):
    """This update is not a quick press: roll back, take the normal way."""


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _short_question(module: Module, step_id: str) -> str:
    text = module.step(step_id).text.nl
    first = text.split("?")[0].split(".")[0].strip()
    return first[:60]
