"""Fuzzing the bot: hypothesis strategies for Telegram updates, fed through the real PTB app.

    world = await FuzzWorld.build(rig, pupils=8)
    items = generate(update_strategy(world), count=2_000)   # hypothesis, no I/O
    report = await Fuzzer(rig).run(items)                   # Application.process_update
    assert report.errors == [] and report.problems == []

Generation and execution are split: hypothesis draws every update first (text in any script,
empty and very long text, entities with wrong offsets, random and re-signed callback data,
random chat types and user ids, media and odd update kinds), then the fuzzer feeds them in
order and checks after each one that nothing reached the error handler and that input which
must change nothing (groups, forged buttons, updates without a message) changed nothing.
At the end it checks the database is consistent (`consistency_problems`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.callbacks import sign, verify
from bot.render import MAX_TEXT
from flows.types import PupilState
from store.models import Answer, Base, Flag, Outbox, Pupil, Run, TranscriptLine
from tests.support import updates
from tests.support.ptb import BotRig

JSON = dict[str, Any]
COMMANDS = (
    "start",
    "menu",
    "verder",
    "pauze",
    "mijnantwoorden",
    "praten",
    "hulplijnen",
    "privacy",
    "help",
    "herinneringen",
    "taal",
    "mijngegevens",
    "vergeetmij",
    "stop",
    "hulp",
    "hervat",
    "admin",
    "sluit",
    "antwoord",
)
BUTTON_HEADS = (
    "age",
    "c",
    "m",
    "menu",
    "ma",
    "talk",
    "cw",
    "cu",
    "cs",
    "cr",
    "ck",
    "rs",
    "stoprem",
    "er",
    "o",
    "s",
    "ok",
    "dk",
    "pv",
    "sh",
    "ct",
    "fa",
    "x",
)
ENTITY_TYPES = (
    "bot_command",
    "bold",
    "url",
    "mention",
    "text_link",
    "spoiler",
    "pre",
    "custom_emoji",
    "no_such_type",
)
GROUP_TYPES = ("group", "supergroup", "channel")
# Text any Telegram client can send: every script, emoji, control characters, RTL marks;
# not lone surrogates (JSON over UTF-8 cannot carry them).
TELEGRAM_TEXT = st.characters(blacklist_categories=("Cs",))
# Outbox calls the product may queue (the adapter renders nothing else).
KNOWN_METHODS = {
    "sendMessage",
    "editMessageText",
    "sendPhoto",
    "sendDocument",
    "answerCallbackQuery",
    "editMessageReplyMarkup",
    "deleteMessage",
    "sendChatAction",
}


@dataclass(frozen=True)
class FuzzWorld:
    """Who exists when the fuzz starts: joined pupils, strangers, a class code, the key."""

    secret: bytes
    code: str
    pupils: tuple[int, ...]
    strangers: tuple[int, ...]

    @classmethod
    async def build(cls, rig: BotRig, *, pupils: int = 8, strangers: int = 4) -> FuzzWorld:
        """A class with `pupils` consenting pupils (one under 13) and a few strangers."""
        code = await rig.seed_class()
        joined = []
        for n in range(pupils):
            age = "Jonger dan 13" if n == 0 else "13 of ouder"
            joined.append(await rig.join(code, name=f"Leerling {n}", age=age))
        others = [await rig.sandbox_user(f"Vreemde {n}") for n in range(strangers)]
        return cls(secret=rig.secret, code=code, pupils=tuple(joined), strangers=tuple(others))


# ---------------------------------------------------------------- strategies


WORDS = [
    " ",
    "\n\n",
    "\u200f",
    "\x00",
    "🙂",
    "ok",
    "pauze",
    "verder",
    "menu",
    "weet ik niet",
    "ik wil dood",
    "ze pesten mij",
    "1",
    "5",
    "Klaar ✅",
    "<b>hoi</b>",
    "'; DROP TABLE pupil;--",
    "{a.graag}",
    "{0}",
    "%s",
]


def texts() -> st.SearchStrategy[str]:
    """Pupil text: mostly short; some empty, known words, long, and over Telegram's 4096."""
    short = st.text(TELEGRAM_TEXT, max_size=40)
    long = st.text(TELEGRAM_TEXT, min_size=300, max_size=1200)
    huge = st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "é", "🙂", "\n", "ﷺ", "ab "]),
        st.integers(4090, 4200),
    )

    def pick(n: int) -> st.SearchStrategy[str]:
        if n < 60:
            return short
        if n < 80:
            return st.sampled_from(WORDS)
        if n < 85:
            return st.just("")
        return long if n < 96 else huge

    return st.integers(0, 99).flatmap(pick)


def commands(world: FuzzWorld) -> st.SearchStrategy[str]:
    """/commands with odd arguments, bot suffixes and case."""
    name = st.one_of(st.sampled_from(COMMANDS), st.text(TELEGRAM_TEXT, min_size=1, max_size=12))
    args = st.one_of(
        st.just(""),
        st.just(world.code),
        st.just(world.code.lower()),
        st.just("st_" + "A" * 10),
        st.text(TELEGRAM_TEXT, max_size=30),
    )
    suffix = st.sampled_from(["", "@leerbot_test_bot", "@een_andere_bot"])
    return st.builds(
        lambda n, s, a: f"/{n}{s} {a}".rstrip() if a else f"/{n}{s}", name, suffix, args
    )


def entities() -> st.SearchStrategy[list[JSON]]:
    """Message entities, often with offsets and lengths outside the text."""
    entity = st.fixed_dictionaries(
        {
            "type": st.sampled_from(ENTITY_TYPES),
            "offset": st.integers(-5, 5000),
            "length": st.integers(-5, 5000),
        }
    )
    return st.lists(entity, max_size=4)


def users(world: FuzzWorld) -> st.SearchStrategy[int]:
    """Mostly pupils who joined; sometimes strangers or any Telegram id."""
    return st.one_of(
        st.sampled_from(world.pupils),
        st.sampled_from(world.pupils),
        st.sampled_from(world.pupils),
        st.sampled_from(world.strangers),
        st.integers(1, 2**52),
    )


def callback_data(world: FuzzWorld, chat_id: int) -> st.SearchStrategy[tuple[str, bool]]:
    """(data, signed-for-this-chat): random bytes, or our signature on a random payload."""
    head = st.sampled_from(BUTTON_HEADS)
    arg = st.one_of(
        st.just(""),
        st.sampled_from(
            ["yes", "no", "u13", "13", "0", "1", "99", "-1", "wie-ben-ik", "alles", "danger"]
        ),
        st.text(TELEGRAM_TEXT, max_size=8),
    )
    turn = st.one_of(st.integers(0, 40).map(str), st.just("*"), st.text(max_size=3))
    payload = st.builds(lambda t, h, a: f"{t}:{h}:{a}".rstrip(":"), turn, head, arg)

    def signed(p: str) -> tuple[str, bool]:
        try:
            return sign(world.secret, chat_id, p), True
        except ValueError:  # over 64 bytes: the adapter never signs such a payload
            return p[:64], False

    forged = st.text(TELEGRAM_TEXT, max_size=70).map(lambda d: (d, False))
    return st.one_of(payload.map(signed), forged)


@st.composite
def update_strategy(draw: st.DrawFn, world: FuzzWorld) -> JSON:
    """One update dict (keys starting with "_" describe it and are removed before feeding)."""
    user_id = draw(users(world))
    kind = draw(
        st.sampled_from(
            [
                "text",
                "command",
                "press",
                "press",
                "press",
                "callback",
                "callback",
                "media",
                "odd",
                "odd",
                "group",
                "group",
                "entities",
            ]
        )
    )
    if kind == "press":  # a real button on the newest keyboard, chosen at feed time
        return {
            "_kind": "press",
            "_invalid": False,
            "_user": draw(st.sampled_from(world.pupils)),
            "_index": draw(st.integers(0, 12)),
        }
    if kind == "odd":
        odd = updates.odd_updates(update_id=0, user_id=user_id)
        name = draw(st.sampled_from(sorted(odd)))
        ignored = name not in {
            "my_chat_member",
            "empty_text",
            "only_slash",
            "new_chat_title",
            "bot_command_for_other_bot",
        } and not name.startswith("media_")
        return {**odd[name], "_kind": f"odd:{name}", "_invalid": ignored}
    if kind == "callback":
        data, signed = draw(callback_data(world, user_id))
        update = updates.callback(
            update_id=0, user_id=user_id, data=data, message_id=draw(st.integers(1, 10**6))
        )
        return {
            **update,
            "_kind": "callback_signed" if signed else "callback_forged",
            "_invalid": not signed,
        }
    if kind == "group":
        chat_type = draw(st.sampled_from(GROUP_TYPES))
        chat_id = -draw(st.integers(1, 10**13))
        text = draw(st.one_of(texts(), commands(world)))
        key = (
            "channel_post"
            if chat_type == "channel"
            else draw(st.sampled_from(["message", "edited_message"]))
        )
        update = updates.message(
            update_id=0, user_id=user_id, chat_id=chat_id, chat_type=chat_type, text=text, key=key
        )
        return {**update, "_kind": f"group:{chat_type}", "_invalid": True}
    if kind == "media":
        media = draw(st.sampled_from(sorted(updates.MEDIA)))
        caption = draw(st.one_of(st.none(), texts()))
        extra = dict(updates.MEDIA[media])
        if caption is not None:
            extra["caption"] = caption
        return {
            **updates.message(update_id=0, user_id=user_id, **extra),
            "_kind": "media",
            "_invalid": False,
        }
    text = draw(commands(world) if kind == "command" else texts())
    update = updates.message(
        update_id=0,
        user_id=user_id,
        text=text,
        first_name=draw(st.text(TELEGRAM_TEXT, min_size=1, max_size=70)),
    )
    if kind == "entities":
        update["message"]["entities"] = draw(entities())
    return {**update, "_kind": kind, "_invalid": False}


def generate(strategy: st.SearchStrategy[JSON], count: int) -> list[JSON]:
    """Draw `count` examples with hypothesis (generation only: no shrinking, no database)."""
    drawn: list[JSON] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: JSON) -> None:
        drawn.append(example)

    collect()
    return drawn


# ---------------------------------------------------------------- running


@dataclass
class FuzzReport:
    """What one fuzz run did."""

    updates: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    redelivered: int = 0
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> JSON:
        """JSON-ready summary."""
        return {
            "updates": self.updates,
            "invalid": self.invalid,
            "redelivered": self.redelivered,
            "errors": len(self.errors),
            "problems": len(self.problems),
            "seconds": round(self.seconds, 2),
            "updates_per_second": round(self.updates / self.seconds, 1) if self.seconds else None,
            "kinds": dict(sorted(self.kinds.items())),
        }


async def fingerprint(engine: AsyncEngine) -> JSON:
    """Row counts of every table and the full rows of pupils, runs and flags."""
    tables = Base.metadata.sorted_tables
    counts = select(
        *(select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables)
    )
    async with engine.connect() as conn:
        result: JSON = dict((await conn.execute(counts)).one()._mapping)
        for table in (Pupil.__table__, Run.__table__, Flag.__table__):
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            result[f"{table.name}:rows"] = [tuple(map(str, row)) for row in rows]
    return result


class Fuzzer:
    """Feeds generated updates to the rig's Application and checks invariants after each."""

    def __init__(self, rig: BotRig, *, redeliver_every: int = 50) -> None:
        self.rig = rig
        self.redeliver_every = redeliver_every
        self.last: JSON | None = None

    async def _resolve_press(self, item: JSON) -> JSON | None:
        user = int(item["_user"])
        offered = list((await self.rig.buttons(user)).values())
        if not offered:
            return None
        data, message_id = offered[int(item["_index"]) % len(offered)]
        return updates.callback(update_id=0, user_id=user, data=data, message_id=message_id)

    async def run(self, items: list[JSON]) -> FuzzReport:
        """Feed every item in order; errors and unexpected changes go into the report."""
        report = FuzzReport()
        engine = self.rig.runtime.engine
        started = time.monotonic()
        for n, item in enumerate(items):
            kind, invalid = str(item.get("_kind")), bool(item.get("_invalid"))
            update = (
                await self._resolve_press(item)
                if kind == "press"
                else {k: v for k, v in item.items() if not k.startswith("_")}
            )
            if update is None:
                continue
            update["update_id"] = self.rig.next_update()
            if self.last is not None and n % self.redeliver_every == 0:
                update = self.last  # Telegram delivers an update again: no second effect
                report.redelivered += 1
                kind, invalid = "redelivered", True
            before = await fingerprint(engine) if invalid else None
            errors_before = len(self.rig.errors)
            await self.rig.feed(update)
            report.updates += 1
            report.kinds[kind.split(":")[0]] += 1
            if len(self.rig.errors) > errors_before:
                report.errors.append(
                    f"{kind}: {self.rig.errors[-1]}\n"
                    f"{json.dumps(update, ensure_ascii=False)[:400]}"
                )
            if before is not None:
                report.invalid += 1
                after = await fingerprint(engine)
                if after != before:
                    changed = sorted(k for k in after if after[k] != before.get(k))
                    report.problems.append(
                        f"{kind} changed {changed}: {json.dumps(update, ensure_ascii=False)[:500]}"
                    )
            self.last = update
        report.seconds = time.monotonic() - started
        report.problems += await consistency_problems(self.rig)
        return report


async def consistency_problems(rig: BotRig) -> list[str]:
    """Database invariants that must hold whatever the input was."""
    problems: list[str] = []
    secret = rig.secret
    catalog = rig.runtime.catalog
    async with rig.runtime.sessions() as session:
        pupil_ids = set((await session.scalars(select(Pupil.id))).all())
        runs = {r.id: r for r in (await session.scalars(select(Run))).all()}
        for run in runs.values():
            if run.pupil_id not in pupil_ids:
                problems.append(f"run {run.id} has no pupil")
        for answer in (await session.scalars(select(Answer))).all():
            run = runs.get(answer.run_id)
            if run is None or run.pupil_id != answer.pupil_id:
                problems.append(f"answer {answer.id} and its run belong to different pupils")
        for line in (await session.scalars(select(TranscriptLine))).all():
            if line.pupil_id not in pupil_ids:
                problems.append(f"transcript line {line.id} has no pupil")
        for pupil in (await session.scalars(select(Pupil))).all():
            try:
                state = PupilState.load(pupil.state)
            except ValueError as exc:
                problems.append(f"pupil {pupil.pseudonym}: state does not parse: {exc}")
                continue
            for run_state in [state.run, *state.paused.values()]:
                if (
                    run_state is not None
                    and (run_state.module, run_state.version) not in catalog.versions
                ):
                    problems.append(f"pupil {pupil.pseudonym}: unknown module {run_state}")
        for flag in (await session.scalars(select(Flag))).all():
            if flag.pupil_id is not None and flag.pupil_id not in pupil_ids:
                problems.append(f"flag {flag.id} points to a missing pupil")
        for row in (await session.scalars(select(Outbox))).all():
            problems += [f"outbox {row.id}: {p}" for p in outbox_problems(row, secret)]
    return problems


def outbox_problems(row: Outbox, secret: bytes) -> list[str]:
    """What Telegram would refuse in one queued call."""
    problems = []
    payload = row.payload
    if row.method not in KNOWN_METHODS:
        problems.append(f"unknown method {row.method}")
    if payload.get("chat_id") != row.chat_id:
        problems.append("payload chat_id differs from the row's")
    if len(str(payload.get("text", ""))) > MAX_TEXT:
        problems.append("text over 4096 characters")
    if row.method in {"sendMessage", "editMessageText"} and not str(payload.get("text", "")):
        problems.append("empty text")
    if len(str(payload.get("caption", ""))) > 1024:
        problems.append("caption over 1024 characters")
    if "attachment" in payload:
        problems.append("attachment left unrendered")
    keyboard = (payload.get("reply_markup") or {}).get("inline_keyboard", [])
    for line in keyboard:
        for button in line:
            data = button.get("callback_data")
            if data is None:
                continue
            if len(data.encode()) > 64:
                problems.append(f"callback data over 64 bytes: {data!r}")
            if verify(secret, row.chat_id, data) is None:
                problems.append(f"callback data not signed for this chat: {data!r}")
            if not button.get("text"):
                problems.append("button without a label")
    return problems
