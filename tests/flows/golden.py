"""Golden transcripts: replay a scripted pupil through the engine and record what they get.

A case file (`tests/flows/goldens/<module>/<case>.yaml`) holds:

    module: mijn-stage           # assigned to the pupil's class; the pupil starts in the menu
    lang: nl                     # optional: the pupil's language
    about: ...                   # what the case shows, for the reader
    inputs:                      # what the pupil does, in order
      - command: menu            # a /command (args: "..." for /taal fr)
      - press: "🆕 Mijn stage"    # a button label on the newest keyboard (on_input: N = input N's)
      - text: "ik heb een band vervangen"
        parse: {intent: inform, confidence: 0.91}   # recorded NLU parse (optional)
      - media: sticker           # a sticker, voice note, photo without caption
      - system: reminder         # a system event (data: {...})
        at: "2026-03-12T09:00:00+00:00"             # the clock from here on (optional)
    expect:                      # one entry per input (written by --update-goldens)
      - input: "/menu"
        messages: [{text: ..., buttons: [[...]]}]
        events: [...]

Between inputs the state goes to JSON and back, as in the database, so state that does not
survive serialisation fails here first. The clock is fixed unless an input moves it. Write a
new case with `inputs` only, then `pytest tests/flows --update-goldens` fills in `expect`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import msgspec
import yaml

from content.loader import Catalog, load_catalog
from flows.engine import needs_history, step
from flows.types import (
    AnswerRecorded,
    Assignment,
    Button,
    Context,
    Event,
    HistoryItem,
    Inbound,
    InboundKind,
    Outbound,
    PupilState,
    RunFinished,
    RunStarted,
    StepResult,
)
from nlu.types import Parse

START = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # a Tuesday, in school hours
# Field values that change with every content edit or carry no meaning for a reader.
UNSTABLE = {"version"}


@cache
def catalog() -> Catalog:
    """The real content, loaded once per test session."""
    return load_catalog()


class Replay:
    """One pupil, one case: feeds inputs and keeps what the adapter would keep."""

    def __init__(self, module: str, *, lang: str = "nl", cat: Catalog | None = None) -> None:
        self.catalog = cat or catalog()
        self.module = module
        self.state = PupilState(mode="menu", age_band="13plus", lang=lang)
        self.now = START
        self.status: dict[str, str] = {}
        self.history: list[HistoryItem] = []
        self.keyboards: list[list[Button]] = []  # buttons shown after each input

    def context(self, inbound: Inbound) -> Context:
        """What the adapter would load: the assignment with its status, and history if asked."""
        status = self.status.get(self.module, "new")
        assignment = Assignment(module=self.module, status=status)  # type: ignore[arg-type]
        history = tuple(self.history) if needs_history(inbound) else None
        return Context(
            catalog=self.catalog,
            assignments=(assignment,),
            class_name="5A",
            history=history,
            first_name="Noor",
        )

    def inbound(self, item: dict[str, Any]) -> Inbound:
        """The engine input for one case input."""
        if "text" in item:
            parse = item.get("parse")
            return Inbound(
                kind=InboundKind.TEXT,
                text=str(item["text"]),
                parse=Parse(
                    intent=parse["intent"], confidence=float(parse["confidence"]), source="rasa"
                )
                if parse
                else None,
            )
        if "press" in item:
            return Inbound(
                kind=InboundKind.BUTTON, payload=self.find(item["press"], item.get("on_input"))
            )
        if "command" in item:
            return Inbound(
                kind=InboundKind.COMMAND,
                command=str(item["command"]),
                args=str(item.get("args", "")),
            )
        if "system" in item:
            return Inbound(
                kind=InboundKind.SYSTEM,
                command=str(item["system"]),
                data=dict(item.get("data") or {"module": self.module}),
            )
        if "media" in item:
            return Inbound(kind=InboundKind.MEDIA, data={"media": item["media"]})
        raise ValueError(f"an input needs text, press, command, system or media: {item}")

    def find(self, label: str, on: int | None) -> str:
        """The payload of the button with this label on the newest keyboard, or input `on`'s."""
        shown = (
            self.keyboards[on - 1] if on else next((k for k in reversed(self.keyboards) if k), [])
        )
        for button in shown:
            if button.label == label:
                return button.payload
        raise AssertionError(f"no button {label!r} on screen: {[b.label for b in shown]}")

    def feed(self, item: dict[str, Any]) -> StepResult:
        """One input: step the engine, then state → JSON → state like the database does."""
        if "at" in item:
            self.now = datetime.fromisoformat(str(item["at"]))
        inbound = self.inbound(item)
        before = self.state.to_json()
        result = step(self.state, inbound, self.context(inbound), now=self.now)
        assert self.state.to_json() == before, "the engine changed its input state"
        self.state = PupilState.from_json(result.state.to_json())
        self.keyboards.append([b for o in result.outbound for row in o.buttons for b in row])
        for event in result.events:
            self.track(event)
        return result

    def track(self, event: Event) -> None:
        """Keep what the adapter stores: run status and answers (for /mijnantwoorden)."""
        if isinstance(event, RunStarted):
            self.status[event.module] = "busy"
        elif isinstance(event, RunFinished):
            self.status[event.module] = "done"
        elif isinstance(event, AnswerRecorded):
            module = self.catalog.get(event.module)
            question = module.step(event.step).text.nl.split("?")[0].split(".")[0][:60]
            self.history = [
                h for h in self.history if (h.module, h.step) != (event.module, event.step)
            ]
            self.history.append(
                HistoryItem(
                    module=event.module,
                    step=event.step,
                    question=question,
                    display=event.display,
                    private=event.private,
                )
            )


def describe(item: dict[str, Any]) -> str:
    """A one-line label for an input, repeated in `expect` so a diff reads on its own."""
    if "text" in item:
        return f"text: {item['text']}"
    if "press" in item:
        return f"press: {item['press']}" + (
            f" (on the keyboard of input {item['on_input']})" if item.get("on_input") else ""
        )
    if "command" in item:
        return f"/{item['command']}" + (f" {item['args']}" if item.get("args") else "")
    if "system" in item:
        return f"system: {item['system']}"
    return f"media: {item.get('media')}"


def message(outbound: Outbound) -> dict[str, Any]:
    """What the pupil sees of one message: text, buttons, and the flags that matter."""
    shown: dict[str, Any] = {"text": outbound.text}
    if outbound.buttons:
        shown["buttons"] = [[b.label for b in row] for row in outbound.buttons]
    if outbound.edit:
        shown["edit"] = True
    if outbound.notice:
        shown["notice"] = outbound.notice
    if outbound.kind != "text":
        shown["kind"] = outbound.kind
        shown["attachment"] = outbound.attachment
    return shown


def event(evt: Event) -> dict[str, Any]:
    """An event as its name and the fields that differ from their defaults."""
    summary: dict[str, Any] = {"event": type(evt).__name__}
    for spec in msgspec.structs.fields(evt):
        value = getattr(evt, spec.name)
        default = spec.default
        if spec.name in UNSTABLE or (default is not msgspec.NODEFAULT and value == default):
            continue
        summary[spec.name] = list(value) if isinstance(value, tuple) else value
    return summary


def replay(case: dict[str, Any], *, cat: Catalog | None = None) -> list[dict[str, Any]]:
    """Run a case; one entry per input with the messages and events it produced."""
    run = Replay(str(case["module"]), lang=str(case.get("lang", "nl")), cat=cat)
    out: list[dict[str, Any]] = []
    for item in case["inputs"]:
        result = run.feed(item)
        out.append(
            {
                "input": describe(item),
                "messages": [message(o) for o in result.outbound],
                "events": [event(e) for e in result.events],
            }
        )
    return out


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key, multi-line texts as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_golden(case: dict[str, Any]) -> str:
    """The case as readable YAML: module, lang, inputs, then expect."""
    order = ["module", "lang", "about", "inputs", "expect"]
    ordered = {k: case[k] for k in order if k in case}
    ordered |= {k: v for k, v in case.items() if k not in ordered}
    return yaml.dump(
        ordered,
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=99,
    )
