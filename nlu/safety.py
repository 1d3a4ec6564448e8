"""PLACEHOLDER until the real safety layer lands (the NLU engineer replaces this whole file)."""

from __future__ import annotations

import re

from nlu.types import Parse, SafetyCategory, SafetyLevel, SafetyResult

_CRISIS = re.compile(r"\b(wil dood|zelfmoord|einde aan maken|snij mezelf|pillen genomen)\b")


def assess(text: str) -> SafetyResult:
    """Crude stand-in: a handful of clear phrases only."""
    match = _CRISIS.search(text.lower())
    if match:
        return SafetyResult(level=SafetyLevel.CRISIS, category=SafetyCategory.SUICIDAL,
                            evidence=(match.group(0),), normalized=text.lower())
    return SafetyResult(level=SafetyLevel.NONE, normalized=text.lower())


def combine(safety: SafetyResult, parse: Parse | None) -> SafetyResult:
    """Rasa's crisis intent can raise the level too."""
    if parse is not None and parse.intent == "crisis" and parse.confidence >= 0.6:
        return SafetyResult(level=SafetyLevel.CRISIS, evidence=("rasa:crisis",),
                            normalized=safety.normalized)
    return safety
