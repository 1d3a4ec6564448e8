"""A school with staff and pupils on a real database, driven through the real conversation.

Service-level: `Conversation.handle` with real content and a real database; what Telegram
would get is read from the outbox (the sender is the only thing not running). Buttons are
pressed with the signed callback data the outbox holds, as Telegram would send it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.conversation import Conversation, Incoming
from bot.safety import SafetyNet, attach
from content.loader import Catalog, load_catalog
from leerbot.settings import Settings
from nlu.types import Parse
from store import repo
from store.db import make_engine, make_sessions
from store.models import Flag, Outbox, Pupil, Staff

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday, school hours
DASHBOARD = "https://leerbot.school.test"


class Clock:
    """A clock the test moves; every reading is one millisecond later (stable ordering)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Message:
    """One queued Bot API call, as the person in that chat would see it."""

    row_id: int
    method: str
    text: str
    buttons: dict[str, str]  # label → callback data
    priority: int
    flag_id: int | None

    @property
    def labels(self) -> list[str]:
        return list(self.buttons)


def _message(row: Outbox) -> Message:
    payload = row.payload
    buttons = {
        b["text"]: b.get("callback_data", "")
        for line in (payload.get("reply_markup") or {}).get("inline_keyboard", [])
        for b in line
    }
    return Message(
        row.id,
        row.method,
        payload.get("text") or payload.get("caption") or "",
        buttons,
        row.priority,
        row.flag_id,
    )


@dataclass
class World:
    """Schools, staff and a way to talk as pupils and staff."""

    url: str
    engine: AsyncEngine
    settings: Settings
    catalog: Catalog
    clock: Clock
    conversation: Conversation
    net: SafetyNet
    ids: dict[str, int] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    _update: int = 1000
    _seen: dict[int, int] = field(default_factory=dict)

    def next_update(self) -> int:
        self._update += 1
        return self._update

    async def messages(self, chat_id: int, *, new: bool = True) -> list[Message]:
        """Bot API calls queued for this chat (only those after the last look when `new`)."""
        after = self._seen.get(chat_id, 0) if new else 0
        async with self.conversation.sessions() as session:
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(Outbox.chat_id == chat_id, Outbox.id > after)
                    .order_by(Outbox.id)
                )
            ).all()
        if rows and new:
            self._seen[chat_id] = rows[-1].id
        return [_message(r) for r in rows]

    async def flags(self) -> list[Flag]:
        async with self.conversation.sessions() as session:
            return list((await session.scalars(select(Flag).order_by(Flag.id))).all())

    async def staff(self, key: str) -> Staff:
        async with self.conversation.sessions() as session:
            staff = await session.get(Staff, self.ids[key])
            assert staff is not None
            return staff

    def pupil(self, name: str, user_id: int) -> PupilChat:
        return PupilChat(self, name, user_id)


class PupilChat:
    """One pupil's private chat with the bot."""

    def __init__(self, world: World, name: str, user_id: int) -> None:
        self.world = world
        self.name = name
        self.user_id = user_id
        self.last: list[Message] = []

    async def _handle(self, **kw: Any) -> list[Message]:
        incoming = Incoming(
            update_id=self.world.next_update(),
            user_id=self.user_id,
            chat_id=self.user_id,
            first_name=self.name,
            **kw,
        )
        await self.world.conversation.handle(incoming)
        got = await self.world.messages(self.user_id)
        if got:
            self.last = got
        return got

    async def send(self, text: str, *, parse: Parse | None = None) -> list[Message]:
        """Type a message; `parse` is the recorded Rasa answer for it."""
        if text.startswith("/"):
            head, _, args = text[1:].partition(" ")
            return await self._handle(kind="command", command=head, args=args, text=text)
        conversation = self.world.conversation
        if parse is not None:

            async def recorded(_text: str) -> Parse | None:
                return parse

            conversation.parse = recorded
        try:
            return await self._handle(kind="text", text=text)
        finally:
            conversation.parse = None

    async def photo(self, caption: str) -> list[Message]:
        return await self._handle(kind="media", media_kind="photo", text=caption)

    async def press(self, label: str) -> list[Message]:
        for message in reversed(await self.world.messages(self.user_id, new=False)):
            if label in message.buttons:
                return await self._handle(
                    kind="callback",
                    callback_data=message.buttons[label],
                    message_id=message.row_id,
                )
        raise AssertionError(f"{self.name}: no button {label!r}")

    async def pupil_row(self) -> Pupil:
        async with self.world.conversation.sessions() as session:
            pupil = await repo.pupil_for_update(session, self.user_id)
            assert pupil is not None
            return pupil

    async def join(self, klass: str = "5A") -> None:
        """Join with the class code, give age and consent: the pupil is in the menu."""
        await self.send(f"/start {self.world.codes[klass]}")
        await self.press("13 of ouder")
        got = await self.press("Ja, dat is oké")
        assert any("Wat wil je doen?" in m.text for m in got), [m.text for m in got]


def text_of(messages: list[Message]) -> str:
    return "\n".join(m.text for m in messages)


SARA, MO, DIRK, AN, BART, OTHER = 9001, 9002, 9003, 9004, 9005, 9006


async def build_world(url: str, *, region: str = "BE", escalation_minutes: float = 15) -> World:
    """Two schools: ours (counsellors Sara linked and Mo not, admin Dirk, teachers An and Bart
    for 5A and 6B) and another school with its own counsellor."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    catalog = load_catalog()
    settings = Settings(
        database_url=url, dashboard_url=DASHBOARD, escalation_minutes=escalation_minutes
    )
    clock = Clock()
    conversation = Conversation(
        sessions=sessions, catalog=catalog, secret=settings.secret, clock=clock
    )
    net = SafetyNet(settings=settings, sessions=sessions, secret=settings.secret, clock=clock)
    attach(conversation, net)
    world = World(
        url=url,
        engine=engine,
        settings=settings,
        catalog=catalog,
        clock=clock,
        conversation=conversation,
        net=net,
    )
    async with sessions.begin() as session:
        school = await repo.add_school(session, name="Sint-Jozef VTI", region=region)
        other = await repo.add_school(session, name="Andere School")
        people = [
            ("sara", school, "sara@sj.be", "Sara Janssens", "counsellor", SARA),
            ("mo", school, "mo@sj.be", "Mo Benali", "counsellor", None),
            ("dirk", school, "dirk@sj.be", "Dirk Claes", "admin", DIRK),
            ("an", school, "an@sj.be", "An Peeters", "teacher", AN),
            ("bart", school, "bart@sj.be", "Bart Smet", "teacher", BART),
            ("other", other, "eva@andere.be", "Eva Wouters", "counsellor", OTHER),
        ]
        for key, sch, email, name, role, telegram in people:
            staff = await repo.add_staff(
                session, school=sch, email=email, name=name, role=role, password_hash=None
            )
            staff.telegram_user_id = telegram
            world.ids[key] = staff.id
        an = await session.get(Staff, world.ids["an"])
        bart = await session.get(Staff, world.ids["bart"])
        for name, teacher in (("5A", an), ("6B", bart)):
            klass = await repo.add_class(session, school=school, name=name, teacher=teacher)
            await repo.assign(session, klass=klass, module_id="wie-ben-ik", due=None)
            world.codes[name] = klass.join_code
            world.ids[f"class:{name}"] = klass.id
        klass = await repo.add_class(session, school=other, name="3C", teacher=None)
        world.codes["3C"] = klass.join_code
        world.ids["school"] = school.id
        world.ids["other_school"] = other.id
    return world
