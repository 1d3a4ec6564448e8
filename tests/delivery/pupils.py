"""Simulated pupils who work through "Wie ben ik?" on their own, whatever the bot went through.

Each pupil looks at the newest question it was shown and does what fits it, so a lost update,
a late reply or a repeated question never derails it: it just acts on what it sees now.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field

from sandbox.driver import BotMessage, SimulatedPupil

DONE = 'Goed gedaan! Je bent klaar met "Wie ben ik?".'
EXAMPLE = "Ik heb thuis een fiets gemaakt"
QUESTION = re.compile(r"^Vraag (\d) van 5")
STEPS = ("graag", "sterk", "voorbeeld", "anderen", "gevoel")
FIXED = (
    "13 of ouder",
    "Ja, dat is oké",
    "🆕 Wie ben ik?",
    "▶️ Wie ben ik?",
    "Alles",
    "Nee, dank je",
)


@dataclass
class Walk:
    """What one pupil did and saw."""

    pupil: SimulatedPupil
    actions: int = 0
    unanswered: int = 0  # actions that got no reply in time (a lost update, a dead bot)
    finished: bool = False
    errors: list[str] = field(default_factory=list)

    def seen(self) -> list[BotMessage]:
        """Every bot message as it looks now."""
        return self.pupil.messages

    def highest_question(self) -> int:
        """The highest "Vraag k van 5" this pupil was shown (0: none)."""
        found = [int(m.group(1)) for msg in self.seen() if (m := QUESTION.match(msg.content))]
        return max(found, default=0)

    def acknowledged_steps(self) -> list[str]:
        """Steps whose answer the bot acknowledged by asking the next question (or finishing)."""
        if any(DONE in m.content for m in self.seen()):
            return list(STEPS)
        return list(STEPS[: max(0, self.highest_question() - 1)])


def next_action(pupil: SimulatedPupil) -> tuple[str, str, BotMessage | None] | None:
    """("press", label, message) or ("send", text, None) for the newest prompt; None: done."""
    messages = pupil.messages
    if any(DONE in m.content for m in messages):
        return None
    for message in reversed(messages):
        question = QUESTION.match(message.content)
        if question is None and not message.buttons:
            continue
        number = int(question.group(1)) if question else 0
        labels = message.labels
        if number == 1:
            chosen = [b for b in labels if b.startswith("✅ ")]
            label = "Klaar ✅" if chosen else labels[0]
            return ("press", label, message)
        if number == 2:
            ranked = [b for b in labels if re.match(r"^\d\. ", b)]
            done = next(b for b in labels if b.startswith("Klaar"))
            if len(ranked) >= 3:
                return ("press", done, message)
            free = [b for b in labels if b not in ranked and b != done]
            return ("press", free[0], message)
        if number == 3:
            return ("send", EXAMPLE, None)
        if number in (4, 5):
            pick = "🙂 Fijn" if number == 5 else labels[0]
            return ("press", pick, message)
        for label in FIXED:
            if label in labels:
                return ("press", label, message)
    return ("send", "/verder", None)


async def walk(
    pupil: SimulatedPupil,
    code: str,
    *,
    stop: asyncio.Event,
    think: tuple[float, float],
    reply_timeout: float = 3.0,
) -> Walk:
    """Join with `code` and do the module until done or until `stop` is set."""
    record = Walk(pupil)
    action: tuple[str, str, BotMessage | None] | None = ("send", f"/start {code}", None)
    while action is not None and not stop.is_set():
        kind, value, message = action
        try:
            if kind == "send":
                await pupil.send(value)
            elif message is not None and value in message.callback_data:
                await pupil.press_on(message, value)
            else:
                await pupil.send("/verder")
            record.actions += 1
            await pupil.wait_for_reply(timeout=reply_timeout)
        except AssertionError as exc:
            record.unanswered += 1
            record.errors.append(str(exc)[:200])
            action = ("send", "/verder", None)  # ask where we are, as a pupil would
            continue
        await asyncio.sleep(random.uniform(*think))
        action = next_action(pupil)
    record.finished = action is None
    return record
