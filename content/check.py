"""`leerbot content check`: the rules every module must pass before pupils see it.

Each problem is one line, `file: module/step: problem`, so an author can fix it without
reading code. The bot runs the same rules at start-up and refuses invalid content.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from content.models import TEMPLATE_REF, Condition, Module, Step, StepKind, Text

MAX_MESSAGE = 4096  # Telegram's limit for one message
MAX_BUTTON_LABEL = 30  # longer labels wrap or get cut on a phone
MAX_BUTTON_WORDS = 5  # content brief §1 rule 7
MAX_OPTIONS = 6  # content brief §1 rule 7, not counting "Weet ik niet" / "Zeg ik liever niet"
MAX_EMOJI = 1  # content brief §1 rule 8
MAX_SENTENCE_WORDS = 20  # brief: 12-15 words, ~10 on average; 20 is the hard stop
MAX_MINUTES = 10  # one sitting between lessons (content brief §1)
# A button's callback data is "<turn>:<code>|<signature>" (bot/callbacks.py); Telegram allows
# 64 bytes. The turn counter gets 10 digits of room; the longest code is "m:<module id>".
MAX_CALLBACK = 64
TURN_DIGITS = 10
SIGNATURE = 1 + 12
OPT_OUT_LABELS = {"weet ik niet", "zeg ik liever niet"}
# Seconds to answer a step, before reading time (weak readers: about 2 words a second).
SECONDS_PER_STEP = {
    StepKind.MESSAGE: 5,
    StepKind.SINGLE_CHOICE: 15,
    StepKind.THIS_OR_THAT: 10,
    StepKind.SCALE: 10,
    StepKind.MULTI_CHOICE: 30,
    StepKind.TOP3: 35,
    StepKind.OPEN_TEXT: 60,
    StepKind.SUMMARY: 10,
    StepKind.END: 40,
}
WORDS_PER_SECOND = 2
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
EMOJI = re.compile("[\U0001f300-\U0001faff\U0001f000-\U0001f2ff\u2600-\u27bf\u2b00-\u2bff]")


def callback_bytes(code: str) -> int:
    """The size of a button's signed callback data for this code, in the worst case."""
    return TURN_DIGITS + 1 + len(code.encode()) + SIGNATURE


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


def _variants(text: Text) -> list[str]:
    return [t for t in (text.nl, text.fr, text.en, text.ar) if t]


def _targets(step: Step) -> list[str]:
    targets = [b.next for b in step.branch]
    targets += [o.next for o in step.options if o.next]
    if step.next:
        targets.append(step.next)
    return targets


def _exits(module: Module, step: Step) -> list[str]:
    """Every step the engine may go to after `step` (known ids only)."""
    if step.type is StepKind.END:
        return []
    targets = [t for t in _targets(step) if t in module.positions]
    all_options_lead = bool(step.options) and all(o.next for o in step.options)
    if not step.next and not all_options_lead:
        following = module.positions[step.id] + 1
        if following < len(module.steps):
            targets.append(module.steps[following].id)
    return targets


def step_seconds(step: Step) -> float:
    """A rough time to read and answer one step."""
    words = sum(len(TEMPLATE_REF.sub("x", t.nl).split()) for _, t in _texts(step))
    words += sum(len(label.nl.split()) for label in _labels(step))
    return SECONDS_PER_STEP[step.type] + words / WORDS_PER_SECOND


def estimate_seconds(module: Module) -> int:
    """A rough reading-and-answering time for the longest path through the module."""
    memo: dict[str, float] = {}

    def longest(step_id: str, stack: frozenset[str]) -> float:
        if step_id in stack:
            return 0.0  # a loop back: count each step once
        if step_id not in memo:
            step = module.step(step_id)
            after = [longest(t, stack | {step_id}) for t in _exits(module, step)]
            memo[step_id] = step_seconds(step) + max(after, default=0.0)
        return memo[step_id]

    return round(longest(module.steps[0].id, frozenset())) if module.steps else 0


def _condition_problems(module: Module, cond: Condition, default: Step | None) -> list[str]:
    """What is wrong with one condition: the answer it names, the value it compares with."""
    name = cond.answer or (default.id if default else None)
    if name is None:
        return ["a module rule needs `answer:` (which step's answer to test)"]
    if name not in module.positions:
        return [f"condition refers to unknown answer {name!r}"]
    tested = module.step(name)
    if not tested.asks:
        return [f"condition tests {name!r}, a step that asks nothing"]
    keys = {o.key for o in tested.options}
    compared = [v for v in (cond.eq, cond.ne, cond.contains) if isinstance(v, str)]
    compared += [str(v) for v in (cond.in_ or []) + (cond.contains_any or [])]
    if keys and tested.type is not StepKind.OPEN_TEXT:
        return [
            f"condition compares with {v!r}, which is not an option of {name!r}"
            for v in compared
            if v not in keys
        ]
    return []


def check_module(module: Module) -> list[str]:
    """Every problem in one module, one line each: `module/step: problem`."""
    problems: list[str] = []

    def bad(step: Step | None, msg: str) -> None:
        problems.append(f"{module.id}/{step.id}: {msg}" if step else f"{module.id}: {msg}")

    if not module.steps:
        bad(None, "the module has no steps")
        return problems
    for dup, count in Counter(s.id for s in module.steps).items():
        if count > 1:
            bad(module.step(dup), f"step id used {count} times (each id once)")
    start = callback_bytes(f"m:{module.id}")
    if start > MAX_CALLBACK:
        bad(
            None,
            f"module id is {len(module.id)} characters: its start button's callback "
            f"data would be {start} bytes (Telegram allows {MAX_CALLBACK})",
        )

    # Links: every target exists, conditions name real answers and real options.
    for step in module.steps:
        for target in _targets(step):
            if target not in module.positions:
                bad(step, f"unknown next step {target!r}")
        for branch in step.branch:
            if branch.when.answer is None and not step.asks:
                bad(step, "a branch on a step that asks nothing needs `answer:`")
                continue
            for msg in _condition_problems(module, branch.when, step):
                bad(step, msg)
    for rule in module.rules:
        for cond in rule.any:
            for msg in _condition_problems(module, cond, None):
                bad(None, f"rule {rule.flag.reason!r}: {msg}")

    # Reachability from the first step, and every path ends at an end step.
    reached: set[str] = set()
    todo = [module.steps[0].id]
    while todo:
        sid = todo.pop()
        if sid not in reached:
            reached.add(sid)
            todo.extend(_exits(module, module.step(sid)))
    for step in module.steps:
        if step.id not in reached:
            bad(step, "unreachable: no step leads here")
        elif (
            step.type is not StepKind.END
            and not _exits(module, step)
            and all(t in module.positions for t in _targets(step))
        ):
            bad(step, "the module stops here without an end step (add next: ...)")

    # The end: a summary of the pupil's own words and an offer to talk.
    ends = [s for s in module.steps if s.type is StepKind.END]
    if not ends:
        bad(None, "missing end step (type: end, with a summary and a contact offer)")
    for end in ends:
        if end.summary is None:
            bad(end, "end step has no summary of the pupil's answers (summary: ...)")
        if end.contact is None:
            bad(end, "end step has no contact offer (contact: ...)")

    # Templates refer only to answers the module asks for.
    asked = {s.id for s in module.steps if s.asks}
    for step in module.steps:
        for name, text in _texts(step):
            refs = {ref for value in _variants(text) for ref in TEMPLATE_REF.findall(value)}
            for ref in sorted(refs - asked):
                bad(step, f"{name}: template {{a.{ref}}} refers to an unknown answer")

    for step in module.steps:
        for msg in _step_problems(step):
            bad(step, msg)

    minutes = estimate_seconds(module) / 60
    if minutes > MAX_MINUTES:
        bad(None, f"takes about {minutes:.0f} minutes (max {MAX_MINUTES}): split it up")
    return problems


def _step_problems(step: Step) -> list[str]:
    """Sizes, reading level and what each step type needs."""
    problems: list[str] = []
    bad = problems.append
    for name, text in _texts(step):
        if not text.nl.strip():
            bad(f"{name}: missing Dutch text (nl)")
        for variant in _variants(text):
            if len(variant) > MAX_MESSAGE:
                bad(
                    f"{name}: message is {len(variant)} characters (Telegram allows {MAX_MESSAGE})"
                )
        for sentence in SENTENCE_SPLIT.split(TEMPLATE_REF.sub("x", text.nl)):
            words = len(sentence.split())
            if words > MAX_SENTENCE_WORDS:
                bad(
                    f"{name}: sentence of {words} words (max {MAX_SENTENCE_WORDS}): "
                    f"{' '.join(sentence.split()[:6])!r}..."
                )
        emoji = len(EMOJI.findall(text.nl))
        if emoji > MAX_EMOJI:
            bad(f"{name}: {emoji} emoji (max {MAX_EMOJI} per message)")
    for label in _labels(step):
        for variant in _variants(label):
            if len(variant) > MAX_BUTTON_LABEL:
                bad(f"button {variant!r} is {len(variant)} characters (max {MAX_BUTTON_LABEL})")
        words = len(label.nl.split())
        if words > MAX_BUTTON_WORDS:
            bad(f"button {label.nl!r} has {words} words (max {MAX_BUTTON_WORDS})")
    counted = [o for o in step.options if o.label.nl.strip().lower() not in OPT_OUT_LABELS]
    if len(counted) > MAX_OPTIONS:
        bad(f"{len(counted)} options (max {MAX_OPTIONS}, plus 'Weet ik niet')")
    keys = Counter(o.key for o in step.options)
    for key, count in keys.items():
        if count > 1:
            bad(f"option {key!r} appears {count} times")
    kind = step.type
    if kind in {StepKind.SINGLE_CHOICE, StepKind.MULTI_CHOICE, StepKind.TOP3} and not step.options:
        bad(f"a {kind.value} step needs options")
    if kind is StepKind.THIS_OR_THAT and len(step.options) != 2:
        bad("a this_or_that step needs exactly 2 options")
    if kind is StepKind.TOP3 and 0 < len(step.options) < 3:
        bad("a top3 step needs at least 3 options")
    if kind is StepKind.SCALE and step.scale is None:
        bad("a scale step needs scale labels for 1 to 5")
    if kind is StepKind.OPEN_TEXT and step.hint is None:
        bad("an open question needs an example for 'weet ik niet' (hint: ...)")
    if kind not in {StepKind.SINGLE_CHOICE, StepKind.THIS_OR_THAT} and any(
        o.action or o.next for o in step.options
    ):
        bad(f"option next/action only work on single_choice and this_or_that, not {kind.value}")
    if step.asks and step.max_length < step.min_length:
        bad(f"max_length {step.max_length} is below min_length {step.min_length}")
    return problems


def check_paths(paths: list[Path]) -> list[str]:
    """Check module files or folders; one line per problem, prefixed with the file name."""
    from content.loader import ContentError, load_module_file

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
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
            problems.append(
                f"{file.name}: {module.id}: module id also used in {seen[module.id].name}"
            )
        seen[module.id] = file
        problems.extend(f"{file.name}: {p}" for p in check_module(module))
    return problems
