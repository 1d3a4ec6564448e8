"""The in-process safety layer: recall first, few false alarms, never a crash."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from nlu.safety import (
    BULLYING_THRESHOLD,
    CRISIS_THRESHOLD,
    RASA_ALONE_THRESHOLD,
    assess,
    combine,
    normalize,
)
from nlu.types import Parse, SafetyCategory, SafetyLevel, SafetyResult

NONE, UNCLEAR, CONCERN, CRISIS = (
    SafetyLevel.NONE,
    SafetyLevel.UNCLEAR,
    SafetyLevel.CONCERN,
    SafetyLevel.CRISIS,
)


def test_every_crisis_phrasing_in_the_held_out_set_is_a_crisis(crisis_set: dict[str, Any]) -> None:
    items = crisis_set["crisis"]
    assert len(items) >= 60
    missed = [i["text"] for i in items if assess(i["text"]).level is not CRISIS]
    assert missed == []


def test_crisis_phrasings_get_their_category(crisis_set: dict[str, Any]) -> None:
    wrong = [
        (i["text"], assess(i["text"]).category)
        for i in crisis_set["crisis"]
        if assess(i["text"]).category != SafetyCategory(i["category"])
    ]
    assert wrong == []


def test_bullying_and_worry_about_others_are_a_concern(crisis_set: dict[str, Any]) -> None:
    got = {i["text"]: assess(i["text"]) for i in crisis_set["concern"]}
    wrong = [
        (text, r.level, r.category)
        for text, r in got.items()
        if (r.level, r.category)
        != (
            CONCERN,
            SafetyCategory(
                next(i["category"] for i in crisis_set["concern"] if i["text"] == text)
            ),
        )
    ]
    assert wrong == []


def test_context_dependent_phrasings_are_never_passed_silently(crisis_set: dict[str, Any]) -> None:
    silent = [i["text"] for i in crisis_set["check_in"] if assess(i["text"]).level is NONE]
    assert silent == []


def test_casual_alarming_words_raise_at_most_one_false_crisis(casual_set: list[str]) -> None:
    assert len(casual_set) >= 40
    results = {text: assess(text) for text in casual_set}
    false_crises = [t for t, r in results.items() if r.level is CRISIS]
    check_ins = [t for t, r in results.items() if r.level is not NONE]
    assert len(false_crises) <= 1, false_crises
    assert len(check_ins) <= len(casual_set) // 10, check_ins  # a check-in stays rare


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("K WIL NI MEER", "ik wil niet meer"),
        ("kwil dood", "ik wil dood"),
        ("neeeeee", "nee"),
        ("ikkkkk", "ik"),
        ("M'n pa", "mijn pa"),
        ("mn ma", "mijn ma"),
        ("gwn", "gewoon"),
        ("kheb da gedaan", "ik heb dat gedaan"),
        ("zn gsm", "zijn gsm"),
        ("ksnap et ni", "ik snap het niet"),
        ("d00d", "dood"),
        ("z3lfm00rd", "zelfmoord"),
        ("de 3de les om 16u", "de 3de les om 16u"),
        ("Ça vá, één", "ca va een"),
        ("do\u200bod", "dood"),  # a zero-width space inside the word
        ("d\u043e\u043ed", "dood"),  # Cyrillic o's
        ("ｄｏｏｄ", "dood"),  # fullwidth letters
        ("wil... dood!!!", "wil dood"),
        ("ik ga dood 😂", "ik ga dood"),
    ],
)
def test_normalisation_reads_chat_spelling(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_emoji_are_stripped_from_the_words_but_kept_for_context() -> None:
    result = assess("ik ga dood 😂")
    assert result.normalized == "ik ga dood 😂"
    assert result.level is NONE  # laughter settles a check-in


def test_laughter_never_cancels_a_clear_crisis() -> None:
    assert assess("ik wil dood 😂").level is CRISIS
    assert assess("haha ik wil echt niet meer leven").level is CRISIS


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("ik wil niet dood", UNCLEAR),
        ("ik wil niet dood, maar ik zie het echt niet meer zitten", CRISIS),
        ("ik wil nie dood ma soms wil ik gewoon verdwijnen", UNCLEAR),
        ("ik denk er niet aan om zelfmoord te plegen", UNCLEAR),
        ("ik denk niet dat ik dood wil", UNCLEAR),
        ("ik kan niet meer ik wil dood", CRISIS),  # the negation belongs to another clause
        ("ik wil echt niet meer leven", CRISIS),  # the negation is part of the signal
        ("ik word niet gepest", NONE),
        ("niemand pest mij", NONE),
    ],
)
def test_negation_lowers_a_signal_but_never_hides_it(text: str, level: SafetyLevel) -> None:
    assert assess(text).level is level


@pytest.mark.parametrize(
    ("text", "level", "category"),
    [
        ("mijn vriendin wil dood", CONCERN, SafetyCategory.WORRY_OTHER),
        ("mijn broer snijdt zichzelf", CONCERN, SafetyCategory.WORRY_OTHER),
        ("ik denk dat hij zelfmoord wil plegen", CONCERN, SafetyCategory.WORRY_OTHER),
        ("mijn beste vriend wordt thuis geslagen", CONCERN, SafetyCategory.WORRY_OTHER),
        ("mijn zus wordt geslagen door mijn pa", CRISIS, SafetyCategory.HOME_VIOLENCE),
        ("mijn nonkel komt 's nachts op mijn kamer", CRISIS, SafetyCategory.SEXUAL_ABUSE),
        ("ze pesten mij zo erg dat ik dood wil", CRISIS, SafetyCategory.SUICIDAL),
    ],
)
def test_who_it_is_about_decides_between_crisis_and_worry(
    text: str, level: SafetyLevel, category: SafetyCategory
) -> None:
    result = assess(text)
    assert (result.level, result.category) == (level, category)


def test_evidence_quotes_the_pupils_own_words() -> None:
    result = assess("Ik wil echt DOOD, niemand snapt mij")
    assert result.evidence[0] == "wil echt DOOD"
    assert assess("kwil dood").evidence == ("kwil dood",)
    assert assess("ik snij mezelf weer").evidence == ("snij mezelf",)


def test_evidence_is_present_for_every_signal(crisis_set: dict[str, Any]) -> None:
    for item in [*crisis_set["crisis"], *crisis_set["concern"], *crisis_set["check_in"]]:
        result = assess(item["text"])
        assert result.evidence, item["text"]
        assert all(phrase in item["text"] for phrase in result.evidence)


def test_a_quoted_song_line_asks_instead_of_alarming() -> None:
    result = assess('in dat liedje zingt hij "ik wil dood"')
    assert result.level is UNCLEAR


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\t",
        "\x00\x01\x02",
        "😂" * 50,
        "👍",
        "a" * 10_000,
        "ik " * 3_333,
        "я хочу умереть ik wil dood",
        "أريد أن أموت",
        "死にたい",
        "\ud800 lone surrogate",
        "e\u0301\u0301\u0301",
        "\u202eik wil dood",
        "'''''",
        "k",
        "'k",
        "m'n'",
        "ik wil dood" + "!" * 10_000,
    ],
)
def test_odd_input_never_raises(text: str) -> None:
    result = assess(text)
    assert isinstance(result, SafetyResult)
    assert isinstance(result.normalized, str)


def test_a_crisis_at_the_end_of_a_very_long_message_is_still_found() -> None:
    text = "ik vertel over mijn stage. " * 300 + "en eigenlijk wil ik dood"
    assert assess(text).level is CRISIS


def test_assessment_takes_well_under_a_millisecond(
    crisis_set: dict[str, Any], casual_set: list[str]
) -> None:
    texts = (
        [i["text"] for i in crisis_set["crisis"]]
        + casual_set
        + ["ik ben goed met mijn handen", "pauze", "merci", "geen idee", "ik wil kok worden"]
    )
    rnd = random.Random(7)
    messages = [
        rnd.choice(texts) if i % 3 else f"{rnd.choice(texts)} {rnd.choice(texts)}"
        for i in range(3000)
    ]
    for message in messages[:100]:
        assess(message)
    costs = []
    for message in messages:
        # CPU time of this thread: other processes on a busy CI machine do not count.
        start = time.thread_time_ns()
        assess(message)
        costs.append(time.thread_time_ns() - start)
    costs.sort()
    p99_ms = costs[int(len(costs) * 0.99)] / 1e6
    assert p99_ms < 1.0, f"p99 {p99_ms:.3f} ms"


def test_a_sure_rasa_crisis_raises_a_crisis_the_rules_did_not_see() -> None:
    result = combine(assess("ik ga ermee stoppen"), Parse("crisis", RASA_ALONE_THRESHOLD))
    assert result.level is CRISIS
    assert result.evidence[-1] == "rasa:crisis"


def test_a_less_sure_rasa_crisis_asks_when_the_rules_see_nothing() -> None:
    result = combine(assess("ik ga ermee stoppen"), Parse("crisis", CRISIS_THRESHOLD))
    assert result.level is UNCLEAR


def test_rasa_crisis_makes_a_check_in_a_crisis() -> None:
    result = combine(assess("ik kan niet meer"), Parse("crisis", CRISIS_THRESHOLD))
    assert result.level is CRISIS


def test_an_unsure_rasa_changes_nothing() -> None:
    safety = assess("ik ga ermee stoppen")
    assert combine(safety, Parse("crisis", CRISIS_THRESHOLD - 0.01)) == safety
    assert combine(safety, None) == safety


def test_rasa_crisis_on_a_manner_of_speaking_asks_instead_of_alarming() -> None:
    for text in (
        "ik verveel mij dood",
        "hahaha ik ga dood",
        "ik ga dood 😂😂",
        "ik heb een pil genomen tegen de hoofdpijn",
    ):
        result = combine(assess(text), Parse("crisis", 0.99))
        assert result.level is UNCLEAR, text


def test_rasa_cannot_turn_worry_about_a_friend_into_the_pupils_crisis() -> None:
    safety = assess("mijn vriendin wil dood")
    assert combine(safety, Parse("crisis", 0.99)) == safety


def test_a_crisis_from_the_rules_stays_a_crisis_whatever_rasa_says() -> None:
    safety = assess("ik wil dood")
    assert combine(safety, Parse("greet", 0.99)) == safety


def test_rasa_bullying_intent_raises_a_concern() -> None:
    result = combine(
        assess("ze doen altijd zo lelijk tegen mij"), Parse("bullying", BULLYING_THRESHOLD)
    )
    assert (result.level, result.category) == (CONCERN, SafetyCategory.BULLYING)
    assert "rasa:bullying" in result.evidence


def test_the_rule_index_never_hides_a_match(
    crisis_set: dict[str, Any], casual_set: list[str]
) -> None:
    # The index skips a rule when no word opens the way its matches must; check it against
    # running every rule's regex over the whole text.
    from nlu.safety import _matches, _word_starts, load_lexicon  # the index is private

    lex = load_lexicon()
    patterns = [r.pattern for r in (*lex.signals, *lex.ambiguous)]
    patterns += [*lex.figurative, *lex.innocent, lex.alarm]
    texts = [
        normalize(i["text"])
        for part in ("crisis", "concern", "check_in")
        for i in crisis_set[part]
    ] + [normalize(t) for t in casual_set]
    groups = [
        ([r.pattern for r in lex.signals], lex.signal_index),
        ([r.pattern for r in lex.ambiguous], lex.ambiguous_index),
        (list(lex.figurative), lex.figurative_index),
        (list(lex.innocent), lex.innocent_index),
    ]
    hidden = []
    for text in texts:
        starts = _word_starts(text)
        for pattern in patterns:
            full = [m.span() for m in _matches(pattern.regex, text)]
            if full != [m.span() for m in pattern.matches(text, starts)]:
                hidden.append((pattern.regex.pattern[:60], text))
        for group, index in groups:
            candidates = set(index.candidates(starts))
            for number, pattern in enumerate(group):
                if number not in candidates and next(_matches(pattern.regex, text), None):
                    hidden.append((pattern.regex.pattern[:60], text))
    assert hidden == []
