"""The keyword fallback that keeps the key intents working while Rasa is down."""

from __future__ import annotations

import pytest

from nlu.fallback import classify
from tests.nlu.conftest import nlu_examples

KEY_INTENTS = {
    "pause",
    "resume",
    "dont_know",
    "ask_explain",
    "request_contact",
    "greet",
    "thanks",
    "affirm",
    "deny",
    "bot_challenge",
    "crisis",
    "goodbye",
    "bullying",
}


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("pauze", "pause"),
        ("ik stop even", "pause"),
        ("later verder", "pause"),
        ("verder doen", "resume"),
        ("ik ben terug", "resume"),
        ("kweet ni", "dont_know"),
        ("geen idee", "dont_know"),
        ("wa bedoel je", "ask_explain"),
        ("ksnap et ni", "ask_explain"),
        ("kan ik met mijn leerkracht praten", "request_contact"),
        ("ik wil iemand spreken", "request_contact"),
        ("hallo", "greet"),
        ("merci", "thanks"),
        ("merci hé", "thanks"),
        ("ja graag", "affirm"),
        ("👍", "affirm"),
        ("nee hoor", "deny"),
        ("nee dank u", "deny"),
        ("ben jij een robot", "bot_challenge"),
        ("zijt gij een mens", "bot_challenge"),
        ("k wil dood", "crisis"),
        ("ze pesten mij elke dag", "bullying"),
    ],
)
def test_key_intents_work_without_rasa(text: str, intent: str) -> None:
    parse = classify(text)
    assert (parse.intent, parse.source) == (intent, "fallback")
    assert parse.confidence >= 0.7  # the engine acts on it


@pytest.mark.parametrize(
    "text",
    [
        "ik ben goed met mijn handen en ik help graag mensen in de winkel",
        "automechanieker",
        "wat is de hoofdstad van frankrijk",
        "",
        "🙃",
        "a" * 10_000,
    ],
)
def test_anything_else_is_an_unsure_out_of_scope(text: str) -> None:
    parse = classify(text)
    assert (parse.intent, parse.confidence, parse.source) == ("out_of_scope", 0.0, "fallback")


def test_fallback_knows_most_held_out_key_intent_examples() -> None:
    pairs = [(i, t) for i, t in nlu_examples("tests/test_nlu.yml") if i in KEY_INTENTS]
    right = sum(classify(text).intent == intent for intent, text in pairs)
    assert right / len(pairs) >= 0.8


def test_fallback_rarely_claims_a_key_intent_for_other_messages() -> None:
    others = [t for i, t in nlu_examples("tests/test_nlu.yml") if i not in KEY_INTENTS]
    wrong = [
        t for t in others if classify(t).confidence >= 0.7 and classify(t).intent in KEY_INTENTS
    ]
    assert len(wrong) <= len(others) // 20, wrong
