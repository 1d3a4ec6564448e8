"""Types shared by the safety layer, the Rasa client and the flows engine (no I/O here)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import msgspec

INTENTS: tuple[str, ...] = (
    "inform",
    "dont_know",
    "ask_explain",
    "pause",
    "resume",
    "request_contact",
    "crisis",
    "bullying",
    "mood_positive",
    "mood_negative",
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "bot_challenge",
    "insult",
    "out_of_scope",
)


class SafetyLevel(StrEnum):
    """How worried the safety layer is about one piece of pupil text."""

    NONE = "none"
    UNCLEAR = "unclear"  # alarming word, maybe figurative: check in gently
    CONCERN = "zorg"  # a care signal for a counsellor (bullying, worry about someone else)
    CRISIS = "crisis"  # help lines now, urgent flag


class SafetyCategory(StrEnum):
    """Signal categories from content-brief.md §4.3."""

    SUICIDAL = "suicidal"
    SELF_HARM = "self_harm"
    HOME_VIOLENCE = "home_violence"
    SEXUAL_ABUSE = "sexual_abuse"
    BULLYING = "bullying"
    ACUTE_DANGER = "acute_danger"
    WORRY_OTHER = "worry_other"


class SafetyResult(msgspec.Struct, frozen=True):
    """What the in-process safety layer found in one text."""

    level: SafetyLevel
    category: SafetyCategory | None = None
    evidence: tuple[str, ...] = ()
    normalized: str = ""

    @property
    def crisis(self) -> bool:
        """True when the pupil must get help lines now."""
        return self.level is SafetyLevel.CRISIS


class Parse(msgspec.Struct, frozen=True):
    """An intent for one text, from Rasa or from the in-process fallback."""

    intent: str
    confidence: float
    source: Literal["rasa", "fallback", "rules"] = "rasa"
    entities: tuple[tuple[str, str], ...] = ()
