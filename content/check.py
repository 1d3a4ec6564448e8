"""`leerbot content check`: the rules every module must pass before pupils see it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from content.models import TEMPLATE_REF, Module, Step, StepKind, Text

MAX_MESSAGE = 4096  # Telegram's limit for one message
MAX_BUTTON_LABEL = 30
MAX_SENTENCE_WORDS = 20
MAX_MINUTES = 10
# A button's callback data is "<turn>:<step>:<option>" plus an HMAC; Telegram allows 64 bytes.
CALLBACK_OVERHEAD = 6 + 1 + 1 + 1 + 12
MAX_CALLBACK = 64
SECONDS_PER_STEP = {
    StepKind.MESSAGE: 15, StepKind.SINGLE_CHOICE: 25, StepKind.THIS_OR_THAT: 15,
    StepKind.SCALE: 20, StepKind.MULTI_CHOICE: 40, StepKind.TOP3: 45,
    StepKind.OPEN_TEXT: 90, StepKind.SUMMARY: 20, StepKind.END: 45,
}
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def _texts(step: Step) -> list[tuple[str, Text]]:
    found: list[tuple[str, Text]] = [("text", step.text)]
    for name in ("hint", "explain", "summary", "contact"):
        value = getattr(step, name)
        if value is not None:
            found.append((name, value))
    if step.share is not None:
        found.append(("share", step.share.text))
    return found


def _labels(step: Step) -> list[Text]:
    labels = [o.label for o in step.options]
    if step.scale:
        labels.extend(step.scale.values())
    return labels


def estimate_seconds(module: Module) -> int:
    """A rough reading-and-answering time for the longest path through the module."""
    return sum(SECONDS_PER_STEP[s.type] for s in module.steps)


def _targets(step: Step) -> list[str]:
    targets = [b.next for b in step.branch]
    targets += [o.next for o in step.options if o.next]
    if step.next:
        targets.append(step.next)
    return targets


def check_module(module: Module) -> list[str]:
    """Every problem in one module, one line each: `module/step: problem`."""
    problems: list[str] = []

    def bad(step: Step | None, msg: str) -> None:
        problems.append(f"{module.id}/{step.id}: {msg}" if step else f"{module.id}: {msg}")

    ids = [s.id for s in module.steps]
    for dup, count in Counter(ids).items():
        if count > 1:
            bad(None, f"duplicate step id {dup!r} ({count} times)")
    known = set(ids)
    if not module.steps:
        bad(None, "the module has no steps")
        return problems

    # Links: every target exists; every step but the last has a way on.
    for step in module.steps:
        for target in _targets(step):
            if target not in known:
                bad(step, f"unknown next step {target!r}")
        for branch in step.branch:
            if branch.when.answer and branch.when.answer not in known:
                bad(step, f"condition refers to unknown answer {branch.when.answer!r}")

    # Reachability from the first step (a step without next falls through to the following).
    reached: set[str] = set()
    todo = [module.steps[0].id]
    position = {s.id: i for i, s in enumerate(module.steps)}
    while todo:
        sid = todo.pop()
        if sid in reached or sid not in position:
            continue
        reached.add(sid)
        step = module.steps[position[sid]]
        targets = [t for t in _targets(step) if t in known]
        option_nexts_all = bool(step.options) and all(o.next for o in step.options)
        if step.type is not StepKind.END and not step.next and not option_nexts_all:
            following = position[sid] + 1
            if following < len(module.steps):
                targets.append(module.steps[following].id)
        todo.extend(targets)
    for step in module.steps:
        if step.id not in reached:
            bad(step, "unreachable: no step leads here")

    # The end: a summary of the pupil's own words and an offer to talk.
    ends = [s for s in module.steps if s.type is StepKind.END]
    if not ends:
        bad(None, "missing end step (type: end with a summary and a contact offer)")
    for end in ends:
        if end.summary is None:
            bad(end, "end step has no summary of the pupil's answers")
        if end.contact is None:
            bad(end, "end step has no contact offer (contact: ...)")

    # Templates refer only to known answers.
    asked = {s.id for s in module.steps if s.asks}
    for step in module.steps:
        for name, text in _texts(step):
            for value in (text.nl, text.fr, text.en, text.ar):
                for ref in TEMPLATE_REF.findall(value or ""):
                    if ref not in asked:
                        bad(step, f"{name}: template refers to unknown answer {{a.{ref}}}")

    # Sizes and reading level.
    for step in module.steps:
        for name, text in _texts(step):
            if not text.nl.strip():
                bad(step, f"{name}: missing Dutch text")
            for lang_text in (text.nl, text.fr, text.en, text.ar):
                if lang_text and len(lang_text) > MAX_MESSAGE:
                    bad(step, f"{name}: message is {len(lang_text)} characters (max {MAX_MESSAGE})")
            for sentence in SENTENCE_SPLIT.split(TEMPLATE_REF.sub("x", text.nl)):
                words = len(sentence.split())
                if words > MAX_SENTENCE_WORDS:
                    bad(step, f"{name}: sentence of {words} words (max {MAX_SENTENCE_WORDS}): "
                              f"{sentence[:40]!r}")
        for label in _labels(step):
            for lang_text in (label.nl, label.fr, label.en, label.ar):
                if lang_text and len(lang_text) > MAX_BUTTON_LABEL:
                    bad(step, f"button label longer than {MAX_BUTTON_LABEL} characters: "
                              f"{lang_text!r}")
        for index, _option in enumerate(step.options):
            payload = len(f"{step.id}:{index}".encode()) + CALLBACK_OVERHEAD
            if payload > MAX_CALLBACK:
                bad(step, f"callback data would be {payload} bytes (Telegram allows 64)")
        if step.type in {StepKind.SINGLE_CHOICE, StepKind.MULTI_CHOICE, StepKind.TOP3} \
                and not step.options:
            bad(step, f"a {step.type.value} step needs options")
        if step.type is StepKind.THIS_OR_THAT and len(step.options) != 2:
            bad(step, "a this_or_that step needs exactly 2 options")
        if step.type is StepKind.TOP3 and len(step.options) < 3:
            bad(step, "a top3 step needs at least 3 options")
        if step.type is StepKind.SCALE and step.scale is None:
            bad(step, "a scale step needs scale labels for 1 to 5")
        if len(step.options) > 8 and step.type is not StepKind.MULTI_CHOICE:
            bad(step, f"{len(step.options)} buttons (max 8)")

    minutes = estimate_seconds(module) / 60
    if minutes > MAX_MINUTES:
        bad(None, f"takes about {minutes:.0f} minutes (max {MAX_MINUTES}): split it up")
    return problems


def check_paths(paths: list[Path]) -> list[str]:
    """Check module files or folders; one line per problem, prefixed with the file name."""
    from content.loader import ContentError, load_module_file

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")))
        elif path.exists():
            files.append(path)
        else:
            return [f"{path}: no such file or folder"]
    if not files:
        return [f"{', '.join(map(str, paths))}: no module files (*.yaml) found"]
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            module = load_module_file(file)
        except ContentError as exc:
            problems.extend(exc.problems)
            continue
        if module.id in seen:
            problems.append(f"{file.name}: {module.id}: module id also used in {seen[module.id].name}")
        seen[module.id] = file
        problems.extend(f"{file.name}: {p}" for p in check_module(module))
    return problems
