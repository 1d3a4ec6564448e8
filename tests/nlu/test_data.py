"""The NLU data itself: every intent trained and tested, held-out sets really held out."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from nlu.types import INTENTS, SafetyCategory
from tests.nlu.conftest import load_yaml, nlu_examples

ALLOWED_COMPONENTS = {
    "WhitespaceTokenizer",
    "RegexFeaturizer",
    "LexicalSyntacticFeaturizer",
    "CountVectorsFeaturizer",
    "DIETClassifier",
    "FallbackClassifier",
}


def key(text: str) -> str:
    """Compare texts the way a model would see them: case, punctuation and spaces aside."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_every_intent_has_at_least_30_training_examples() -> None:
    counts = Counter(intent for intent, _ in nlu_examples("data/nlu.yml"))
    assert set(counts) == set(INTENTS)
    assert {i: n for i, n in counts.items() if n < 30} == {}


def test_at_least_a_fifth_of_each_intent_is_held_out() -> None:
    train = Counter(intent for intent, _ in nlu_examples("data/nlu.yml"))
    test = Counter(intent for intent, _ in nlu_examples("tests/test_nlu.yml"))
    assert set(test) == set(INTENTS)
    low = {
        i: test[i] / (train[i] + test[i]) for i in INTENTS if test[i] / (train[i] + test[i]) < 0.2
    }
    assert low == {}


def test_held_out_texts_never_appear_in_training(
    crisis_set: dict[str, Any], casual_set: list[str]
) -> None:
    train = {key(text) for _, text in nlu_examples("data/nlu.yml")}
    held_out = [text for _, text in nlu_examples("tests/test_nlu.yml")]
    held_out += [i["text"] for part in ("crisis", "concern", "check_in") for i in crisis_set[part]]
    held_out += casual_set
    assert [t for t in held_out if key(t) in train] == []


def test_training_has_no_duplicates() -> None:
    texts = Counter(key(text) for _, text in nlu_examples("data/nlu.yml"))
    assert [t for t, n in texts.items() if n > 1] == []


def test_safety_sets_are_large_enough_and_labelled(
    crisis_set: dict[str, Any], casual_set: list[str]
) -> None:
    assert len(crisis_set["crisis"]) >= 60
    assert len(casual_set) >= 40
    categories = {SafetyCategory(i["category"]) for i in crisis_set["crisis"]}
    assert categories == {
        SafetyCategory.SUICIDAL,
        SafetyCategory.SELF_HARM,
        SafetyCategory.HOME_VIOLENCE,
        SafetyCategory.SEXUAL_ABUSE,
        SafetyCategory.ACUTE_DANGER,
    }


def test_domain_lists_exactly_the_shared_intents() -> None:
    assert load_yaml("domain.yml")["intents"] == list(INTENTS)


def test_pipeline_needs_no_downloads() -> None:
    pipeline = load_yaml("config.yml")["pipeline"]
    assert {c["name"] for c in pipeline} <= ALLOWED_COMPONENTS
    assert pipeline[-1]["name"] == "FallbackClassifier"
