"""The conversation engine: one pure step per inbound event (no I/O, no clock of its own)."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import msgspec

from content.loader import Catalog
from content.models import TEMPLATE_REF, Condition, FlagLevel, Module, Step, StepKind, Text
from flows.types import (
    AnswerRecorded,
    AnswerValue,
    Button,
    ConsentGiven,
    ContactDraft,
    Context,
    EraseConfirmed,
    Event,
    ExportRequested,
    FlagRaised,
    Handover,
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
    RunState,
    SettingChanged,
    StepResult,
)
from nlu.safety import assess, combine, words_of
from nlu.types import SafetyCategory, SafetyLevel, SafetyResult

ALWAYS = "*"  # a button valid whatever the turn (crisis help must never "expire")
MENU_MODULES = 6
PAUSE_WORDS = {"pauze", "pause", "stop", "stoppen", "later", "genoeg", "ff pauze"}
RESUME_WORDS = {"verder", "doorgaan", "ga verder", "hervat"}
MENU_WORDS = {"menu", "menu!", "start"}
# Typed "I don't know" without an NLU parse (Rasa down or not asked): treated as its intent.
DONT_KNOW_WORDS = {
    "weet ik niet",
    "weet niet",
    "geen idee",
    "ik weet het niet",
    "idk",
    "wn",
    "k weet het niet",
    "kweet ni",
    "weet ik ni",
    "geen flauw idee",
}
# Intents the engine acts on when the pupil types instead of answering.
CONFIDENT = 0.7
KEYBOARD_CACHE = 20_000  # question keyboards kept on the catalog (see `_step_buttons`)
SHARE_KEYS = ("alles", "samenvatting", "niets")
CONTACT_TARGETS = ("leerkracht", "begeleider", "clb")
PRIVACY_COMMANDS = {"mijngegevens", "vergeetmij"}  # open before consent too (GDPR rights)
# Enum members in a set literal are looked up and the set built on every use: built once here.
_TYPED = frozenset({InboundKind.TEXT, InboundKind.MEDIA})
_MULTI = frozenset({StepKind.MULTI_CHOICE, StepKind.TOP3})
_SINGLE = frozenset({StepKind.SINGLE_CHOICE, StepKind.THIS_OR_THAT})


@dataclass(slots=True)
class _Turn:
    """Mutable scratch for one step; frozen into a StepResult at the end."""

    ctx: Context
    state: PupilState
    now: datetime
    out: list[Outbound] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def t(self, key: str, **values: object) -> str:
        # Texts.get inlined: a system text is looked up several times per step.
        text = self.ctx.catalog.texts.entries[key].get(self.state.lang)
        return text.format(**values) if values else text

    def say(
        self,
        text: str,
        buttons: Sequence[Sequence[Button]] | None = None,
        **kw: object,
    ) -> None:
        if buttons is None:
            rows: tuple[tuple[Button, ...], ...] = ()
        elif type(buttons) is tuple:  # a keyboard laid out by _step_buttons: ready as it is
            rows = buttons
        else:
            rows = tuple([tuple(r) for r in buttons if r])
        self.out.append(Outbound(text=text, buttons=rows, **kw))  # type: ignore[arg-type]  # kw are Outbound fields

    def button(self, label: str, code: str, *, always: bool = False) -> Button:
        return Button(label=label, payload=f"{ALWAYS if always else self.state.turn}:{code}")


def step(
    state: PupilState, inbound: Inbound, ctx: Context, *, now: datetime, owned: bool = False
) -> StepResult:
    """Advance one pupil by one event; returns the new state, the messages and the events.

    The caller's `state` is left as it was, unless `owned` says the caller has just loaded it
    for this step and will not use it again (the bot, per update): then the engine works on
    it directly and saves a copy per step.
    """
    turn = _Turn(ctx=ctx, state=state if owned else _copy_state(state), now=now)
    _dispatch(turn, inbound)
    return StepResult(state=turn.state, outbound=tuple(turn.out), events=tuple(turn.events))


def _copy_state(state: PupilState) -> PupilState:
    """A copy the engine may change without touching the caller's state.

    A deep copy cost more than the rest of a step together. The engine replaces values and
    changes containers (answers, selections, the paused map), so copying those is enough: the
    values inside (answers are str, int or a fresh list) are never changed in place, and a
    paused run is copied when it becomes the active run again (`_start_module`).
    """
    return msgspec.structs.replace(
        state,
        run=_copy_run(state.run) if state.run is not None else None,
        paused=dict(state.paused),
        contact=copy.copy(state.contact),
        handover=copy.copy(state.handover),
    )


def _copy_run(run: RunState) -> RunState:
    return msgspec.structs.replace(
        run,
        answers=dict(run.answers),
        displays=dict(run.displays),
        private=list(run.private),
        selection=list(run.selection),
        rule_flags=list(run.rule_flags),
    )


def needs_nlu(state: PupilState, inbound: Inbound) -> bool:
    """True when the adapter should ask Rasa for an intent before calling `step`."""
    if inbound.kind is not InboundKind.TEXT or state.mode in {"handover", "new", "erase"}:
        return False
    word = _norm(inbound.text)
    return bool(word) and word not in PAUSE_WORDS | RESUME_WORDS | MENU_WORDS


def needs_overview(state: PupilState, inbound: Inbound, catalog: Catalog) -> bool:
    """False when the event can only redraw the current question in place.

    That is a multi-select option or the "alleen voor mij" switch of the question on screen:
    the step then reads nothing of the context but the catalog, so the adapter may skip
    loading the class, its assignments and the pupil's runs (the most frequent update, and
    one that must stay cheap). Anything else, or anything unsure, says True.
    """
    run = state.run
    if (
        inbound.kind is not InboundKind.BUTTON
        or state.mode != "module"
        or run is None
        or run.phase != "steps"
    ):
        return True
    stamp, _, code = inbound.payload.partition(":")
    head, _, arg = code.partition(":")
    if stamp != str(state.turn):
        return True
    module = catalog.get(run.module, run.version)
    if module.version != run.version or run.step not in module.positions:
        return True
    kind = module.step(run.step).type
    if head == "pv":
        return kind is not StepKind.OPEN_TEXT
    return not (head == "o" and arg.isdigit() and kind in _MULTI)


def needs_history(inbound: Inbound) -> bool:
    """True when the adapter should load the pupil's earlier answers into the context."""
    return (inbound.kind is InboundKind.COMMAND and inbound.command == "mijnantwoorden") or (
        inbound.kind is InboundKind.BUTTON and inbound.payload.endswith(":ma")
    )


# ---------------------------------------------------------------- dispatch


def _dispatch(turn: _Turn, inbound: Inbound) -> None:
    state = turn.state
    if inbound.kind is InboundKind.SYSTEM:
        _system(turn, inbound)
        return
    if inbound.kind is InboundKind.COMMAND and inbound.command == "start":
        _start(turn)
        return
    if state.mode in {"new"}:
        turn.say(turn.t("join.need_code"))
        return
    if inbound.kind is InboundKind.MEDIA and not inbound.text:
        turn.say(turn.t("input.text_only"))
        _repeat(turn)
        return
    # The safety net runs on every piece of pupil text before anything else.
    if inbound.kind in _TYPED and inbound.text.strip():
        safety = combine(assess(inbound.text), inbound.parse)
        if _safety(turn, safety):
            return
    if state.mode == "handover" and state.handover is not None and inbound.kind in _TYPED:
        turn.events.append(PupilToStaff(text=inbound.text))
        return
    if inbound.kind is InboundKind.COMMAND:
        _command(turn, inbound)
        return
    if inbound.kind is InboundKind.BUTTON:
        _button(turn, inbound)
        return
    _text(turn, inbound)


def _system(turn: _Turn, inbound: Inbound) -> None:
    state, data = turn.state, inbound.data
    if inbound.command == "handover_open":
        state.handover = Handover(
            flag_id=int(data["flag_id"]),
            staff_name=str(data["staff_name"]),
            role=str(data["role"]),
        )
        if state.run is not None:
            _pause_run(turn, quiet=True)
        state.mode = "handover"
        return
    if inbound.command == "handover_message":
        name = state.handover.staff_name if state.handover else str(data.get("staff_name", ""))
        role = state.handover.role if state.handover else str(data.get("role", ""))
        turn.say(
            turn.t(
                "handover.message", name=name, role=turn.t(f"roles.{role}"), text=str(data["text"])
            )
        )
        if data.get("first") and state.mode == "handover":
            # The first staff message: tell the pupil that typing now reaches a person.
            turn.say(turn.t("handover.how_to_reply", name=name))
        return
    if inbound.command == "handover_close":
        state.handover = None
        state.mode = "menu"
        turn.say(turn.t("handover.closed"))
        _menu(turn)
        return
    if inbound.command == "assigned":
        module = turn.ctx.catalog.get(str(data["module"]))
        due = data.get("due")
        key = "assign.new_due" if due else "assign.new"
        text = turn.t(key, title=module.title.get(state.lang), due=due or "")
        if state.mode in {"menu", "new", "age", "consent"} or state.run is None:
            turn.state.turn += 1
            turn.say(text, [[turn.button(turn.t("menu.start_short"), f"m:{module.id}")]])
        else:
            turn.say(text)
        return
    if inbound.command == "reminder":
        # "day" is the school's local date (the adapter knows the time zone; we only get UTC).
        _reminder(turn, str(data["module"]), str(data.get("day") or turn.now.date().isoformat()))
        return
    if inbound.command == "erase_done":
        turn.state = PupilState(mode="new")
        turn.say(turn.t("privacy.erased"))
        return
    raise ValueError(f"unknown system event {inbound.command!r}")


# ---------------------------------------------------------------- join and consent


def _start(turn: _Turn) -> None:
    state, join = turn.state, turn.ctx.join
    if join is JoinOutcome.MALFORMED:
        turn.say(turn.t("join.malformed"))
        return
    if join is JoinOutcome.UNKNOWN:
        turn.say(turn.t("join.unknown"))
        return
    if join is JoinOutcome.NONE and state.mode == "new":
        turn.say(turn.t("join.need_code"))
        return
    if join is JoinOutcome.JOINED:
        turn.say(turn.t("join.welcome", class_name=turn.ctx.class_name or ""))
    if state.mode in {"new", "age"} or state.age_band is None:
        _ask_age(turn)
        return
    if state.mode == "consent":
        _ask_consent(turn)
        return
    _menu(turn)


def _ask_age(turn: _Turn) -> None:
    turn.state.mode = "age"
    turn.state.turn += 1
    turn.say(
        turn.t("consent.age_question"),
        [
            [
                turn.button(turn.t("consent.age_under13"), "age:u13"),
                turn.button(turn.t("consent.age_13plus"), "age:13"),
            ]
        ],
    )


def _ask_consent(turn: _Turn) -> None:
    turn.state.mode = "consent"
    turn.state.turn += 1
    key = "consent.text_under13" if turn.state.age_band == "u13" else "consent.text"
    turn.say(
        turn.t(key),
        [
            [turn.button(turn.t("consent.agree"), "c:yes")],
            [
                turn.button(turn.t("consent.more"), "c:more"),
                turn.button(turn.t("consent.decline"), "c:no"),
            ],
        ],
    )


# ---------------------------------------------------------------- commands and buttons


def _command(turn: _Turn, inbound: Inbound) -> None:
    state, cmd = turn.state, inbound.command
    if state.mode in {"age", "consent"} and cmd not in {"help", "privacy"} | PRIVACY_COMMANDS:
        turn.say(turn.t("consent.first"))
        _ask_consent(turn) if state.mode == "consent" else _ask_age(turn)
        return
    if cmd == "menu":
        if state.run is not None:
            _pause_run(turn, quiet=True)
        state.contact = None
        _menu(turn)
    elif cmd == "help":
        turn.say(turn.t("help.text"))
        _repeat(turn)
    elif cmd in {"pauze", "pause", "stop"}:
        _pause(turn)
    elif cmd in {"verder", "hervat"}:
        _resume_latest(turn)
    elif cmd == "mijnantwoorden":
        _history(turn)
    elif cmd in {"praten", "hulp"}:
        _contact_start(turn)
    elif cmd == "hulplijnen":
        turn.say(_helplines(turn, "all"))
    elif cmd == "privacy":
        turn.say(turn.t("privacy.text"))
    elif cmd == "mijngegevens":
        turn.events.append(ExportRequested())
        turn.say(
            turn.t("mijngegevens.caption"),
            kind="document",
            attachment=f"export:{turn.t('mijngegevens.filename')}",
        )
    elif cmd == "vergeetmij":
        _erase_ask(turn)
    elif cmd == "herinneringen":
        state.reminders_off = not state.reminders_off
        turn.events.append(SettingChanged(name="reminders_off", value=state.reminders_off))
        turn.say(turn.t("reminders.disabled" if state.reminders_off else "reminders.enabled"))
    elif cmd == "taal":
        lang = inbound.args.strip().lower()[:2]
        if lang in {"nl", "fr", "en", "ar"}:
            state.lang = lang
            turn.events.append(SettingChanged(name="lang", value=lang))
            turn.say(turn.t("language.set"))
        else:
            turn.say(turn.t("language.choose"))
    else:
        turn.say(turn.t("input.unknown_command"))
        _repeat(turn)


def _button(turn: _Turn, inbound: Inbound) -> None:
    state = turn.state
    stamp, _, code = inbound.payload.partition(":")
    if stamp != ALWAYS and stamp != str(state.turn):
        turn.events.append(InputRejected(reason="stale_button"))
        turn.say(turn.t("input.button_expired"), notice=turn.t("input.button_expired_short"))
        _repeat(turn)
        return
    head, _, arg = code.partition(":")
    if head == "age" and state.mode == "age":
        state.age_band = "u13" if arg == "u13" else "13plus"
        _ask_consent(turn)
    elif head == "c" and state.mode == "consent":
        _consent_answer(turn, arg)
    elif head == "m":
        _start_module(turn, arg)
    elif head == "menu":
        if state.run is not None:
            _pause_run(turn, quiet=True)
        _menu(turn)
    elif head == "ma":
        _history(turn)
    elif head == "talk":
        _contact_start(turn)
    elif head == "cw" or head == "cu" or head == "cs":
        _contact_button(turn, head, arg)
    elif head == "cr":
        _crisis_button(turn, arg)
    elif head == "ck":
        _checkin_button(turn, arg)
    elif head == "rs":
        _resume_latest(turn)
    elif head == "stoprem":
        state.reminders_off = True
        turn.events.append(SettingChanged(name="reminders_off", value=True))
        turn.say(turn.t("reminders.disabled"))
    elif head == "er" and state.mode in {"erase", "age", "consent"}:
        _erase_button(turn, arg)
    elif state.mode == "module" and state.run is not None:
        _module_button(turn, head, arg)
    else:
        turn.events.append(InputRejected(reason="button_out_of_place"))
        turn.say(turn.t("input.button_expired"), notice=turn.t("input.button_expired_short"))
        _repeat(turn)


def _consent_answer(turn: _Turn, arg: str) -> None:
    if arg == "yes":
        band = turn.state.age_band or "13plus"
        turn.events.append(ConsentGiven(age_band=band))
        turn.say(turn.t("consent.thanks"))
        _menu(turn)
    elif arg == "more":
        turn.say(turn.t("privacy.text"))
        _ask_consent(turn)
    else:
        turn.say(turn.t("consent.declined"))
        _ask_consent(turn)


# ---------------------------------------------------------------- privacy: erase


def _erase_ask(turn: _Turn) -> None:
    """Ask once more before /vergeetmij erases everything (before consent: keep that mode)."""
    state = turn.state
    if state.run is not None:
        _pause_run(turn, quiet=True)
    if state.mode not in {"age", "consent"}:
        state.mode = "erase"  # consent still open stays open: "Nee" must not skip it
    state.turn += 1
    turn.say(turn.t("vergeetmij.note"))
    turn.say(
        turn.t("vergeetmij.confirm"),
        [
            [turn.button(turn.t("vergeetmij.yes"), "er:yes")],
            [turn.button(turn.t("vergeetmij.no"), "er:no")],
        ],
    )


def _erase_button(turn: _Turn, arg: str) -> None:
    if arg == "yes":
        # The adapter deletes the pupil in this transaction and says goodbye (erase_done).
        turn.events.append(EraseConfirmed())
        turn.state = PupilState(mode="new")
        return
    turn.say(turn.t("vergeetmij.cancelled"))
    if turn.state.mode in {"age", "consent"}:
        _repeat(turn)
    else:
        _menu(turn)


# ---------------------------------------------------------------- free text


@functools.lru_cache(maxsize=4096)  # typed answers are compared with every button label
def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.strip().lower().strip("!?.,"))


_SPACES = re.compile(r"\s+")


def _text(turn: _Turn, inbound: Inbound) -> None:
    state = turn.state
    word = _norm(inbound.text)
    parse = inbound.parse
    intent = parse.intent if parse and parse.confidence >= CONFIDENT else None
    if state.mode in {"age", "consent"}:
        turn.say(turn.t("input.use_buttons"))
        _ask_consent(turn) if state.mode == "consent" else _ask_age(turn)
        return
    if word in PAUSE_WORDS and state.mode == "module":
        _pause(turn)
        return
    if word in RESUME_WORDS:
        _resume_latest(turn)
        return
    if word in MENU_WORDS:
        if state.run is not None:
            _pause_run(turn, quiet=True)
        _menu(turn)
        return
    if state.mode == "contact" and state.contact is not None:
        _contact_text(turn, inbound.text)
        return
    if state.mode == "module" and state.run is not None:
        module = _module(turn, state.run)
        current = module.step(state.run.step)
        if intent is None and word in DONT_KNOW_WORDS:
            intent = "dont_know"  # no NLU at hand: the commonest phrasings still get a hint
        if state.run.phase == "steps" and current.type is StepKind.OPEN_TEXT:
            # A long answer is an answer; only short texts can be a request ("geen idee").
            short = len(word.split()) <= 5
            if short and intent and _intent(turn, intent, in_open=True):
                return
            _open_answer(turn, module, current, inbound.text)
            return
        if state.run.phase == "steps" and _typed_choice(turn, module, current, word):
            return
        if state.run.phase != "steps" and _typed_end_choice(turn, module, word):
            return
        if intent and _intent(turn, intent, in_open=False):
            return
        # Keep the keyboard that is on screen valid: only the turn counter makes buttons stale.
        turn.say(turn.t("input.use_buttons"))
        _repeat(turn)
        return
    if intent and _intent(turn, intent, in_open=False):
        return
    turn.say(turn.t("menu.redirect"))
    _menu(turn)


def _intent(turn: _Turn, intent: str, *, in_open: bool) -> bool:
    """Act on a recognised intent; False means: treat the text as an answer or ask again."""
    state = turn.state
    run = state.run if state.mode == "module" else None
    if intent == "pause" and run is not None:
        _pause(turn)
    elif intent == "resume":
        _resume_latest(turn)
    elif intent == "request_contact":
        _contact_start(turn)
    elif intent == "dont_know" and run is not None:
        module = _module(turn, run)
        current = module.step(run.step)
        hint = current.hint.get(state.lang) if current.hint else turn.t("module.no_hint")
        turn.say(turn.t("module.hint", hint=hint))
        if current.skippable:
            turn.say(turn.t("module.skip_offer"), [[turn.button(turn.t("module.skip"), "dk")]])
    elif intent == "ask_explain" and run is not None:
        module = _module(turn, run)
        current = module.step(run.step)
        text = current.explain.get(state.lang) if current.explain else current.text.get(state.lang)
        turn.say(turn.t("module.explain", text=text))
    elif intent == "bot_challenge":
        turn.say(turn.t("smalltalk.bot"))
        _repeat(turn, quiet=True)
    elif intent == "insult":
        turn.say(turn.t("smalltalk.insult"))
        _repeat(turn, quiet=True)
    elif intent in {"greet", "thanks", "goodbye"} and not in_open:
        turn.say(turn.t(f"smalltalk.{intent}"))
        _repeat(turn, quiet=True)
    elif intent == "out_of_scope" and not in_open:
        turn.say(turn.t("smalltalk.out_of_scope"))
        _repeat(turn)
    else:
        return False
    return True


# ---------------------------------------------------------------- safety


def _safety(turn: _Turn, safety: SafetyResult) -> bool:
    """Handle a safety signal; True when the normal flow must stop here."""
    state = turn.state
    if safety.level is SafetyLevel.CRISIS:
        module = state.run.module if state.run else None
        if state.run is not None:
            _pause_run(turn, quiet=True)
        turn.events.append(
            FlagRaised(
                level=FlagLevel.CRISIS.value,
                reason="veiligheid",
                category=safety.category.value if safety.category else None,
                evidence=safety.evidence,
                urgent=True,
                module=module,
            )
        )
        if state.mode != "handover":
            state.mode = "crisis"
        state.turn += 1
        variant = _variant(safety.category)
        # Thanks and help lines in one message: the numbers must be the first thing to arrive.
        turn.say(f"{turn.t('crisis.reply1')}\n\n{_helplines(turn, variant)}")
        buttons = [
            [turn.button(turn.t("crisis.btn_danger"), "cr:danger", always=True)],
            [turn.button(turn.t("crisis.btn_lines"), "cr:lines", always=True)],
            [turn.button(turn.t("crisis.btn_talk"), "cr:talk", always=True)],
        ]
        turn.say(turn.t("crisis.reply3"), buttons)
        return True
    if safety.level is SafetyLevel.CONCERN:
        module = state.run.module if state.run else None
        reason = "pesten" if safety.category is SafetyCategory.BULLYING else "zorg_over_ander"
        turn.events.append(
            FlagRaised(
                level=FlagLevel.ZORG.value,
                reason=reason,
                category=safety.category.value if safety.category else None,
                evidence=safety.evidence,
                module=module,
            )
        )
        key = "concern.bullying" if safety.category is SafetyCategory.BULLYING else "concern.other"
        turn.say(turn.t(key))
        # In a module the pupil's text still counts as an answer; right after a crisis reply
        # there is nothing to answer, and "I don't understand" must not follow.
        return state.mode == "crisis"
    if (
        state.mode == "crisis"
        and _norm(words_of(safety.normalized)) not in MENU_WORDS | RESUME_WORDS | PAUSE_WORDS
    ):
        _after_crisis(turn)
        return True
    if safety.level is SafetyLevel.UNCLEAR and state.mode != "handover":
        state.mode = "checkin" if state.mode != "module" else state.mode
        state.turn += 1
        turn.say(
            turn.t("checkin.question"),
            [
                [turn.button(turn.t("checkin.figurative"), "ck:fig", always=True)],
                [turn.button(turn.t("checkin.real"), "ck:real", always=True)],
            ],
        )
        return True
    return False


def _after_crisis(turn: _Turn) -> None:
    """Text after the crisis reply: no "I don't understand", the lines and a way on again."""
    turn.state.turn += 1
    turn.say(
        f"{turn.t('crisis.after')}\n\n{_helplines(turn, 'crisis')}",
        [
            [turn.button(turn.t("crisis.btn_lines"), "cr:lines", always=True)],
            [turn.button(turn.t("crisis.btn_person"), "talk", always=True)],
            [turn.button(turn.t("crisis.btn_talk"), "cr:talk", always=True)],
        ],
    )


def _variant(category: SafetyCategory | None) -> str:
    if category is SafetyCategory.HOME_VIOLENCE:
        return "abuse"
    if category is SafetyCategory.SEXUAL_ABUSE:
        return "sexual"
    return "crisis"


def _helplines(turn: _Turn, variant: str) -> str:
    return helplines(turn.ctx, variant, turn.state.lang)


def helplines(ctx: Context, variant: str, lang: str = "nl") -> str:
    """The help lines of one variant (crisis, abuse, sexual, danger, all) for the school's region.

    A region without its own lines gets the Belgian ones: better a number than none.
    """
    key = f"helplines.{ctx.region.upper()}.{variant}"
    if not ctx.catalog.texts.has(key):
        key = f"helplines.BE.{variant}"
    return ctx.catalog.texts.get(key, lang)


def crisis_helplines(ctx: Context, category: SafetyCategory | None, lang: str = "nl") -> str:
    """The help lines a pupil gets with the crisis reply for a signal of this category."""
    return helplines(ctx, _variant(category), lang)


def _crisis_button(turn: _Turn, arg: str) -> None:
    if arg == "danger":
        turn.say(_helplines(turn, "danger"))
    elif arg == "lines":
        turn.say(_helplines(turn, "all"))
    else:
        if turn.state.mode == "crisis":
            turn.state.mode = "menu"
        turn.say(turn.t("crisis.talk_on"))
        _menu(turn)


def _checkin_button(turn: _Turn, arg: str) -> None:
    state = turn.state
    if arg == "real":
        _safety(
            turn,
            SafetyResult(
                level=SafetyLevel.CRISIS,
                category=None,
                evidence=("leerling: het gaat echt niet goed",),
            ),
        )
        return
    turn.say(turn.t("checkin.ok"))
    if state.mode == "checkin":
        state.mode = "menu"
    _repeat(turn)


# ---------------------------------------------------------------- menu, pause, resume


def _menu(turn: _Turn) -> None:
    """The menu: assigned modules (busy first), my answers, talk to someone."""
    state, ctx = turn.state, turn.ctx
    if state.run is not None:
        # Leaving a module for the menu pauses it, so it shows as ⏸ and resumes where it was.
        _pause_run(turn, quiet=True)
    state.mode = "menu"
    state.turn += 1
    rows: list[list[Button]] = []
    order = {"busy": 0, "new": 1, "done": 2}
    assignments = sorted(ctx.assignments, key=lambda a: (order[a.status], a.due or _FAR))
    for assignment in assignments[:MENU_MODULES]:
        if assignment.module not in ctx.catalog.modules:
            continue
        title = ctx.catalog.get(assignment.module).title.get(state.lang)
        mark = {"busy": "▶️", "new": "🆕", "done": "✅"}[assignment.status]
        if assignment.module in state.paused:
            mark = "⏸"
        rows.append([turn.button(f"{mark} {title}"[:40], f"m:{assignment.module}")])
    rows.append([turn.button(turn.t("menu.answers"), "ma")])
    rows.append([turn.button(turn.t("menu.talk"), "talk")])
    text = turn.t("menu.title") if ctx.assignments else turn.t("menu.empty")
    turn.say(text, rows)


_FAR = date.max


def _pause(turn: _Turn) -> None:
    state = turn.state
    if state.run is None:
        turn.say(turn.t("pause.nothing"))
        _menu(turn)
        return
    title = _module(turn, state.run).title.get(state.lang)
    _pause_run(turn, quiet=True)
    state.turn += 1
    # Both buttons stay valid: a pupil comes back to this message days later, and resuming or
    # silencing reminders is harmless whatever happened in between.
    turn.say(
        turn.t("pause.done", title=title),
        [
            [turn.button(turn.t("pause.resume"), "rs", always=True)],
            [turn.button(turn.t("pause.no_reminders"), "stoprem", always=True)],
        ],
    )
    state.mode = "menu"


def _pause_run(turn: _Turn, *, quiet: bool) -> None:
    state = turn.state
    if state.run is None:
        return
    state.paused[state.run.module] = state.run
    turn.events.append(RunPaused(module=state.run.module))
    state.run = None
    state.mode = "menu"
    if not quiet:
        turn.say(turn.t("pause.done_short"))


def _resume_latest(turn: _Turn) -> None:
    state = turn.state
    if state.run is not None:
        _repeat(turn)
        return
    if not state.paused:
        turn.say(turn.t("pause.nothing_to_resume"))
        _menu(turn)
        return
    module_id = next(reversed(state.paused))
    _start_module(turn, module_id)


def _repeat(turn: _Turn, *, quiet: bool = False) -> None:
    """Show again what the pupil is expected to do now."""
    state = turn.state
    if state.mode == "module" and state.run is not None:
        module = _module(turn, state.run)
        if state.run.phase == "steps":
            _ask(turn, module, module.step(state.run.step), again=True)
        else:
            _end_phase(turn, module, again=True)
    elif state.mode == "age":
        _ask_age(turn)
    elif state.mode == "consent":
        _ask_consent(turn)
    elif state.mode == "contact" and state.contact is not None:
        _contact_ask(turn)
    elif state.mode in {"menu", "crisis", "checkin"} and not quiet:
        _menu(turn)


def _history(turn: _Turn) -> None:
    """/mijnantwoorden: every earlier answer, private ones with a lock (only the pupil sees)."""
    items = turn.ctx.history or ()
    if not items:
        turn.say(turn.t("answers.none"))
        _after_history(turn)
        return
    lines: list[str] = []
    current = None
    for item in items:
        if item.module != current:
            current = item.module
            title = (
                turn.ctx.catalog.get(item.module).title.get(turn.state.lang)
                if item.module in turn.ctx.catalog.modules
                else item.module
            )
            lines.append(f"\n{title}")
        lock = " 🔒" if item.private else ""
        lines.append(f"• {item.question}: {item.display}{lock}")
    turn.say(turn.t("answers.header") + "\n" + "\n".join(lines).strip())
    _after_history(turn)


def _after_history(turn: _Turn) -> None:
    if turn.state.mode == "module" and turn.state.run is not None:
        _repeat(turn)  # looked back in the middle of a module: carry on with the question
    else:
        _menu(turn)


def _reminder(turn: _Turn, module_id: str, day: str) -> None:
    """A friendly nudge for an unfinished module: never twice a day, never mid-conversation."""
    state = turn.state
    if state.reminders_off or state.mode in {
        "module",
        "handover",
        "crisis",
        "new",
        "age",
        "consent",
        "contact",
        "checkin",
        "erase",
    }:
        return
    if module_id not in turn.ctx.catalog.modules or state.last_reminder == day:
        return
    if any(a.module == module_id and a.status == "done" for a in turn.ctx.assignments):
        return
    title = turn.ctx.catalog.get(module_id).title.get(state.lang)
    state.turn += 1
    state.last_reminder = day
    turn.say(
        turn.t("reminders.text", title=title),
        [
            [turn.button(turn.t("menu.start_short"), f"m:{module_id}")],
            [turn.button(turn.t("pause.no_reminders"), "stoprem", always=True)],
        ],
    )


# ---------------------------------------------------------------- contact requests


def _contact_start(turn: _Turn) -> None:
    state = turn.state
    if state.run is not None:
        _pause_run(turn, quiet=True)
    state.mode = "contact"
    state.contact = ContactDraft()
    _contact_ask(turn)


def _contact_ask(turn: _Turn) -> None:
    state = turn.state
    assert state.contact is not None  # noqa: S101 (callers set it; a bug otherwise)
    state.turn += 1
    if state.contact.stage == "who":
        turn.say(
            turn.t("contact.who"),
            [
                [turn.button(turn.t("contact.who_leerkracht"), "cw:leerkracht")],
                [turn.button(turn.t("contact.who_begeleider"), "cw:begeleider")],
                [turn.button(turn.t("contact.who_clb"), "cw:clb")],
                [turn.button(turn.t("contact.cancel"), "cw:none")],
            ],
        )
    elif state.contact.stage == "about":
        turn.say(turn.t("contact.about"), [[turn.button(turn.t("contact.skip_about"), "cs:skip")]])
    else:
        turn.say(
            turn.t("contact.urgency"),
            [
                [turn.button(turn.t("contact.urgent"), "cu:urgent")],
                [turn.button(turn.t("contact.not_urgent"), "cu:later")],
            ],
        )


def _contact_button(turn: _Turn, head: str, arg: str) -> None:
    state = turn.state
    if state.mode != "contact" or state.contact is None:
        _contact_start(turn)
        return
    if head == "cw":
        if arg not in CONTACT_TARGETS:
            state.contact = None
            turn.say(turn.t("contact.cancelled"))
            _menu(turn)
            return
        state.contact.target = arg
        state.contact.stage = "about"
    elif head == "cs":
        state.contact.stage = "urgency"
    elif head == "cu":
        _contact_finish(turn, urgent=arg == "urgent")
        return
    _contact_ask(turn)


def _contact_text(turn: _Turn, text: str) -> None:
    state = turn.state
    assert state.contact is not None  # noqa: S101 (checked by the caller)
    if state.contact.stage == "about":
        state.contact.about = text.strip()[:500]
        state.contact.stage = "urgency"
    else:
        turn.say(turn.t("input.use_buttons"))
    _contact_ask(turn)


def _contact_finish(turn: _Turn, *, urgent: bool) -> None:
    state = turn.state
    assert state.contact is not None  # noqa: S101 (checked by the caller)
    target = state.contact.target or "begeleider"
    turn.events.append(
        FlagRaised(
            level=FlagLevel.CONTACTVRAAG.value,
            reason="contactvraag",
            target=target,
            urgent=urgent,
            about=state.contact.about,
        )
    )
    state.contact = None
    turn.say(turn.t(f"contact.confirm_{target}"))
    turn.say(turn.t("contact.confirm_when_urgent" if urgent else "contact.confirm_when"))
    _menu(turn)


# ---------------------------------------------------------------- modules


def _module(turn: _Turn, run: RunState) -> Module:
    """The module version the run is pinned to; re-pins a run whose version is gone.

    Old versions come back from the database at start-up, so this only happens when that
    copy was lost: the run then carries on at the first question it has no answer for.
    """
    module = turn.ctx.catalog.get(run.module, run.version)
    if run.step in module.positions:
        return module
    ends = [s for s in module.steps if s.type is StepKind.END]
    todo = [s for s in module.steps if s.asks and s.id not in run.answers]
    run.version = module.version
    if run.phase == "steps" and todo:
        run.step = todo[0].id
    else:
        run.step = (ends or module.steps)[-1].id
        run.phase = "share" if run.phase == "steps" else run.phase
    run.selection = []
    return module


def _start_module(turn: _Turn, module_id: str) -> None:
    state, catalog = turn.state, turn.ctx.catalog
    if module_id not in catalog.modules and module_id not in state.paused:
        turn.say(turn.t("module.unknown"))
        _menu(turn)
        return
    if state.run is not None and state.run.module != module_id:
        _pause_run(turn, quiet=True)
    if state.run is not None:
        run = state.run
    elif module_id in state.paused:
        run = _copy_run(state.paused.pop(module_id))  # the caller's state shares paused runs
        turn.say(turn.t("module.resumed", title=_module(turn, run).title.get(state.lang)))
    else:
        module = catalog.get(module_id)
        run = RunState(module=module.id, version=module.version, step=module.steps[0].id)
        turn.events.append(RunStarted(module=module.id, version=module.version))
        turn.say(
            turn.t("module.intro", title=module.title.get(state.lang), minutes=module.minutes)
        )
    state.run = run
    state.mode = "module"
    module = _module(turn, run)
    if run.phase != "steps":
        _end_phase(turn, module)
        return
    _enter(turn, module, module.step(run.step))


def _enter(turn: _Turn, module: Module, current: Step) -> None:
    """Arrive at a step: say it, and move on by itself when it asks nothing."""
    run = turn.state.run
    assert run is not None  # noqa: S101 (only called with a run)
    for _ in range(len(module.steps) + 1):
        run.step = current.id
        run.selection = []
        if current.flag is not None and not current.flag.needs_consent:
            turn.events.append(
                FlagRaised(
                    level=current.flag.level.value, reason=current.flag.reason, module=module.id
                )
            )
        if current.type is StepKind.END:
            run.phase = "share"
            # Rules are judged when the answers are complete, not at the last button: a pupil
            # who leaves at the share question has still told us what the rule looks at.
            run.rule_flags = [
                i
                for i, rule in enumerate(module.rules)
                if any(_holds(c, run.answers.get(c.answer or "")) for c in rule.any)
            ]
            _raise_rule_flags(turn, module, consent=False)
            parts = [_render(turn, current.text)]
            if current.summary is not None:
                parts.append(_render(turn, current.summary))
            turn.say("\n\n".join(p for p in parts if p.strip()))
            _end_phase(turn, module)
            return
        if current.asks:
            _ask(turn, module, current)
            return
        turn.say(_render(turn, current.text))
        nxt = _next_step(module, current, None, run.answers)
        if nxt is None:
            _finish(turn, module)
            return
        current = nxt
    raise ValueError(f"{module.id}: a loop of steps that ask nothing")


def _progress(module: Module, run: RunState, current: Step) -> tuple[int, int]:
    """ "Vraag n van m": n counts what the pupil answered, m adds the likely path still ahead.

    Counting positions in the file would jump ("vraag 1", then "vraag 4") for a pupil who
    skips a branch; the total may grow when a branch is taken, which reads as honest.
    """
    answered = len(run.answers) - (current.id in run.answers)
    return answered + 1, answered + 1 + _questions_ahead(module, current)


def _questions_ahead(module: Module, current: Step) -> int:
    """How many asking steps follow `current` on its default path (no branches taken)."""
    key = (module.id, module.version, current.id)
    cached = _AHEAD.get(key)
    if cached is not None:
        return cached
    count, seen, step_ = 0, {current.id}, _default_next(module, current)
    while step_ is not None and step_.id not in seen and step_.type is not StepKind.END:
        seen.add(step_.id)
        count += step_.asks
        step_ = _default_next(module, step_)
    _AHEAD[key] = count
    return count


# Module versions never change (a version is a content hash), so this cache is never stale;
# it holds one small int per step of every version loaded.
_AHEAD: dict[tuple[str, str, str], int] = {}


def _default_next(module: Module, current: Step) -> Step | None:
    """Where a step leads when no branch or option sends the pupil elsewhere."""
    if current.next:
        return module.step(current.next)
    targets = [o.next for o in current.options if o.next]
    if targets and len(targets) == len(current.options):
        return module.step(max(targets, key=targets.count))  # first of the most common
    index = module.steps.index(current)
    return module.steps[index + 1] if index + 1 < len(module.steps) else None


def _ask(turn: _Turn, module: Module, current: Step, *, again: bool = False) -> None:
    state = turn.state
    run = state.run
    assert run is not None  # noqa: S101 (only called with a run)
    if not again:
        state.turn += 1
    position, total = _progress(module, run, current)
    turn.events.append(
        RunProgressed(module=module.id, step=current.id, position=position, total=total)
    )
    turn.say(_question(turn, module, current, (position, total)), _step_buttons(turn, current))


def _question(
    turn: _Turn, module: Module, current: Step, progress: tuple[int, int] | None = None
) -> str:
    """A question as the pupil reads it: "Vraag n van m", then the text with earlier answers."""
    run = turn.state.run
    assert run is not None  # noqa: S101 (only called with a run)
    position, total = progress or _progress(module, run, current)
    return f"{turn.t('module.progress', n=position, total=total)}\n{_render(turn, current.text)}"


def _step_buttons(turn: _Turn, current: Step) -> tuple[tuple[Button, ...], ...]:
    """The keyboard of a question: its options, then "Weet ik niet" and "Alleen voor mij".

    The labels and codes depend only on the step, the language, the selection and the
    private switch, so they are worked out once and kept on the catalog (which never changes
    once loaded); each step only stamps the current turn into the payloads.
    """
    run = turn.state.run
    assert run is not None  # noqa: S101 (only called with a run)
    key = (
        run.module,
        run.version,
        current.id,
        turn.state.lang,
        tuple(run.selection),
        run.private_next,
    )
    cache = turn.ctx.catalog.keyboards
    layout = cache.get(key)
    if layout is None:
        if len(cache) >= KEYBOARD_CACHE:
            cache.clear()  # a bound, never reached by the shipped modules
        layout = cache[key] = _keyboard_layout(turn, current)
    stamp = f"{turn.state.turn}:"
    return tuple([tuple([Button(label, stamp + code) for label, code in row]) for row in layout])


def _keyboard_layout(turn: _Turn, current: Step) -> tuple[tuple[tuple[str, str], ...], ...]:
    """Rows of (label, code) for `_step_buttons`."""
    state = turn.state
    run = state.run
    assert run is not None  # noqa: S101 (only called with a run)
    lang = state.lang
    rows: list[list[tuple[str, str]]] = []
    kind = current.type
    if kind is StepKind.SCALE and current.scale:
        # Two rows: five emoji-and-word buttons do not fit one phone-wide row.
        rows.append([(current.scale[n].get(lang), f"s:{n}") for n in range(1, 4)])
        rows.append([(current.scale[n].get(lang), f"s:{n}") for n in range(4, 6)])
    elif kind is StepKind.THIS_OR_THAT:
        rows.append([(o.label.get(lang), f"o:{i}") for i, o in enumerate(current.options)])
    elif kind is StepKind.SINGLE_CHOICE:
        rows.extend([(o.label.get(lang), f"o:{i}")] for i, o in enumerate(current.options))
    elif kind in _MULTI:
        for i, option in enumerate(current.options):
            mark = ""
            if option.key in run.selection:
                mark = (
                    "✅ "
                    if kind is StepKind.MULTI_CHOICE
                    else f"{run.selection.index(option.key) + 1}. "
                )
            rows.append([(f"{mark}{option.label.get(lang)}", f"o:{i}")])
        done = (
            turn.t("module.done_multi")
            if kind is StepKind.MULTI_CHOICE
            else turn.t("module.done_top3", n=len(run.selection))
        )
        rows.append([(done, "ok")])
    extra: list[tuple[str, str]] = []
    if current.skippable and kind is not StepKind.THIS_OR_THAT:
        extra.append((turn.t("module.dont_know"), "dk"))
    if kind is StepKind.OPEN_TEXT and current.allow_private:
        label = turn.t("module.private_on") if run.private_next else turn.t("module.private")
        extra.append((label, "pv"))
    if extra:
        rows.append(extra)
    return tuple(tuple(row) for row in rows if row)


def _same(turn: _Turn, label: Text, word: str) -> bool:
    """True when typed text is this label (in the pupil's language or in Dutch)."""
    return word in {_norm(label.get(turn.state.lang)), _norm(label.nl)}


def _typed_choice(turn: _Turn, module: Module, current: Step, word: str) -> bool:
    """Accept a typed option label or scale digit as if its button was pressed."""
    if current.type is StepKind.SCALE and current.scale:
        for point, label in current.scale.items():
            if word == str(point) or _same(turn, label, word):
                _answer(turn, module, current, point)
                return True
        return False
    if (
        current.skippable
        and current.type is not StepKind.THIS_OR_THAT
        and word == _norm(turn.t("module.dont_know"))
    ):
        _answer(turn, module, current, None)
        return True
    for index, option in enumerate(current.options):
        if _same(turn, option.label, word):
            _module_button(turn, "o", str(index), typed=True)
            return True
    if current.type in _MULTI and word in {
        _norm(turn.t("module.done_multi")),
        _norm(turn.t("module.done_word")),
    }:
        _module_button(turn, "ok", "", typed=True)
        return True
    return False


def _typed_end_choice(turn: _Turn, module: Module, word: str) -> bool:
    """At the end, a typed share or contact label counts as its button."""
    run = turn.state.run
    assert run is not None  # noqa: S101 (checked by the caller)
    if run.phase == "share":
        end = module.step(run.step)
        for key in end.share.options if end.share else SHARE_KEYS:
            if word == _norm(turn.t(f"end.share_{key}")):
                _end_button(turn, module, "sh", key)
                return True
    elif run.phase == "contact":
        for key in ("yes", "no"):
            if word == _norm(turn.t(f"end.contact_{key}")):
                _end_button(turn, module, "ct", key)
                return True
    return False


def _module_button(turn: _Turn, head: str, arg: str, *, typed: bool = False) -> None:
    state = turn.state
    run = state.run
    assert run is not None  # noqa: S101 (checked by the caller)
    module = _module(turn, run)
    if run.phase != "steps":
        _end_button(turn, module, head, arg)
        return
    current = module.step(run.step)
    kind = current.type
    if head == "dk" and current.skippable:
        _answer(turn, module, current, None)
    elif head == "pv" and kind is StepKind.OPEN_TEXT:
        run.private_next = not run.private_next
        key = "module.private_set" if run.private_next else "module.private_unset"
        # Edit the question in place (it stays readable, with the switched button); the note
        # that the answer is private comes as a toast.
        turn.say(
            _question(turn, module, current),
            _step_buttons(turn, current),
            edit=True,
            notice=turn.t(key),
        )
    elif head == "s" and kind is StepKind.SCALE and arg in {"1", "2", "3", "4", "5"}:
        _answer(turn, module, current, int(arg))
    elif head == "o" and arg.isdigit() and int(arg) < len(current.options):
        option = current.options[int(arg)]
        if kind in _SINGLE:
            _answer(turn, module, current, option.key, chosen=option.action)
        elif kind in _MULTI:
            _toggle(turn, module, current, option.key, typed=typed)
        else:
            _stale(turn)
    elif head == "ok" and kind in _MULTI:
        need = min(3, len(current.options)) if kind is StepKind.TOP3 else current.min_choices
        if len(run.selection) < need:
            key = "module.top3_need" if kind is StepKind.TOP3 else "module.multi_need"
            turn.say(turn.t(key, n=need), notice=turn.t(key, n=need))
            return
        _answer(turn, module, current, list(run.selection))
    else:
        _stale(turn)


def _stale(turn: _Turn) -> None:
    turn.events.append(InputRejected(reason="button_out_of_place"))
    turn.say(turn.t("input.button_expired"), notice=turn.t("input.button_expired_short"))
    _repeat(turn)


def _toggle(turn: _Turn, module: Module, current: Step, key: str, *, typed: bool) -> None:
    """Select or unselect one option; a pressed button edits its own message in place."""
    run = turn.state.run
    assert run is not None  # noqa: S101 (checked by the caller)
    limit = 3 if current.type is StepKind.TOP3 else (current.max_choices or len(current.options))
    if key in run.selection:
        run.selection.remove(key)
    elif len(run.selection) >= limit:
        # A toast for a button; typed text has no toast, so it gets a message.
        note = turn.t("module.max_choices", n=limit)
        turn.say(note if typed else "", notice=note)
        return
    else:
        run.selection.append(key)
    turn.say(_question(turn, module, current), _step_buttons(turn, current), edit=not typed)


def _open_answer(turn: _Turn, module: Module, current: Step, text: str) -> None:
    clean = text.strip()
    if len(clean) < current.min_length:
        turn.events.append(InputRejected(reason="too_short"))
        turn.say(turn.t("module.too_short", n=current.min_length))
        return
    if len(clean) > current.max_length:
        turn.events.append(InputRejected(reason="too_long"))
        turn.say(turn.t("module.too_long", n=current.max_length, length=len(clean)))
        return
    _answer(turn, module, current, clean)


def _display(turn: _Turn, current: Step, value: AnswerValue) -> str:
    lang = turn.state.lang
    if value is None:
        return turn.t("module.dont_know_display")
    if current.type is StepKind.SCALE and isinstance(value, int) and current.scale:
        return current.scale[value].get(lang)
    labels = current.option_labels
    if isinstance(value, list):
        return ", ".join(labels[v].get(lang) if v in labels else v for v in value)
    label = labels.get(str(value))
    return label.get(lang) if label is not None else str(value)


def _answer(
    turn: _Turn, module: Module, current: Step, value: AnswerValue, *, chosen: str | None = None
) -> None:
    state = turn.state
    run = state.run
    assert run is not None  # noqa: S101 (checked by the caller)
    private = run.private_next and current.type is StepKind.OPEN_TEXT
    run.answers[current.id] = value
    run.displays[current.id] = _display(turn, current, value)
    if private and current.id not in run.private:
        run.private.append(current.id)
    run.private_next = False
    turn.events.append(
        AnswerRecorded(
            module=module.id,
            version=run.version,
            step=current.id,
            value=value,
            display=run.displays[current.id],
            private=private,
        )
    )
    if chosen == "contact_request":
        # The pupil said yes to a person: the step's flag (given with consent), else a plain
        # contact request, both for the leerlingenbegeleider.
        spec = current.flag
        turn.events.append(
            FlagRaised(
                level=spec.level.value if spec else FlagLevel.CONTACTVRAAG.value,
                reason=spec.reason if spec else "contactvraag",
                module=module.id,
                target="begeleider",
                about=_render(turn, current.text),
            )
        )
        turn.say(turn.t("module.contact_requested"))
    nxt = _next_step(module, current, value, run.answers)
    if nxt is None:
        _finish(turn, module)
        return
    _enter(turn, module, nxt)


def _holds(cond: Condition, value: AnswerValue) -> bool:
    """Evaluate one condition; an unanswered step ("weet ik niet", not reached) is None.

    None fails every test except `ne`: a pupil who skipped "stoppen?" did not say "Nee".
    """
    if cond.eq is not None:
        return value == cond.eq
    if cond.ne is not None:
        return value != cond.ne
    if isinstance(value, int) and not isinstance(value, bool):
        for bound, test in (
            (cond.lt, value.__lt__),
            (cond.lte, value.__le__),
            (cond.gt, value.__gt__),
            (cond.gte, value.__ge__),
        ):
            if bound is not None:
                return bool(test(bound))
    if cond.in_ is not None:
        return value is not None and not isinstance(value, list) and value in cond.in_
    if cond.contains is not None:
        return isinstance(value, list) and cond.contains in value
    if cond.contains_any is not None:
        return isinstance(value, list) and any(v in value for v in cond.contains_any)
    return False


def _condition_value(
    cond: Condition, value: AnswerValue, answers: dict[str, AnswerValue]
) -> AnswerValue:
    """The answer a condition tests: an earlier step's (`answer:`) or the current value."""
    return answers.get(cond.answer) if cond.answer is not None else value


def _next_step(
    module: Module, current: Step, value: AnswerValue, answers: dict[str, AnswerValue]
) -> Step | None:
    for branch in current.branch:
        if _holds(branch.when, _condition_value(branch.when, value, answers)):
            return module.step(branch.next)
    if current.options and value is not None and not isinstance(value, list):
        for option in current.options:
            if option.key == value and option.next:
                return module.step(option.next)
    if current.next:
        return module.step(current.next)
    index = module.steps.index(current)
    return module.steps[index + 1] if index + 1 < len(module.steps) else None


def _render(turn: _Turn, text: Text) -> str:
    """A module text in the pupil's language, with `{a.step}` filled from earlier answers."""
    run = turn.state.run
    displays = run.displays if run else {}
    raw = text.get(turn.state.lang)
    if "{a." not in raw:
        return raw
    return TEMPLATE_REF.sub(lambda m: displays.get(m.group(1), "-"), raw)


def _raise_rule_flags(turn: _Turn, module: Module, *, consent: bool) -> None:
    """Raise the module rules that matched; those that need consent only once it is given."""
    run = turn.state.run
    assert run is not None  # noqa: S101 (only called with a run)
    for index in run.rule_flags:
        spec = module.rules[index].flag
        if spec.needs_consent is consent:
            turn.events.append(
                FlagRaised(level=spec.level.value, reason=spec.reason, module=module.id)
            )


def _end_phase(turn: _Turn, module: Module, *, again: bool = False) -> None:
    """The end of a module: what may the teacher see, then an offer to talk."""
    run = turn.state.run
    assert run is not None  # noqa: S101 (only called with a run)
    end = module.step(run.step)
    if not again:
        turn.state.turn += 1
    if run.phase == "share":
        share = end.share
        question = share.text.get(turn.state.lang) if share else turn.t("end.share")
        options = share.options if share else list(SHARE_KEYS)
        turn.say(question, [[turn.button(turn.t(f"end.share_{k}"), f"sh:{k}")] for k in options])
    else:
        question = end.contact.get(turn.state.lang) if end.contact else turn.t("end.contact")
        turn.say(
            question,
            [
                [turn.button(turn.t("end.contact_yes"), "ct:yes")],
                [turn.button(turn.t("end.contact_no"), "ct:no")],
            ],
        )


def _end_button(turn: _Turn, module: Module, head: str, arg: str) -> None:
    run = turn.state.run
    assert run is not None  # noqa: S101 (checked by the caller)
    if run.phase == "share" and head == "sh" and arg in SHARE_KEYS:
        run.share = arg
        run.phase = "contact"
        turn.say(turn.t(f"end.shared_{arg}"))
        _end_phase(turn, module)
    elif run.phase == "contact" and head == "ct":
        _finish(turn, module, contact=arg == "yes")
    else:
        _stale(turn)


def _finish(turn: _Turn, module: Module, *, contact: bool = False) -> None:
    state = turn.state
    run = state.run
    assert run is not None  # noqa: S101 (only called with a run)
    if contact:
        _raise_rule_flags(turn, module, consent=True)
    turn.events.append(RunFinished(module=module.id, share=run.share or "niets"))
    state.run = None
    state.paused.pop(module.id, None)
    state.mode = "menu"
    turn.say(turn.t("end.well_done", title=module.title.get(state.lang)))
    if module.card:
        turn.say(turn.t("card.caption"), kind="photo", attachment=f"card:{module.id}")
    if contact:
        _contact_start(turn)
        return
    _menu(turn)
