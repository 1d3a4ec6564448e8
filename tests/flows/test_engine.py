"""The engine's edge cases, as a pupil meets them: odd input, limits, versions, languages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from content.loader import Catalog, load_texts
from content.models import Module
from flows.engine import needs_nlu, needs_overview, step
from flows.types import (
    AnswerRecorded,
    Assignment,
    Context,
    FlagRaised,
    Inbound,
    InboundKind,
    InputRejected,
    PupilState,
    RunFinished,
    StepResult,
)
from tests.flows.golden import Replay, catalog

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def texts_of(result: StepResult) -> list[str]:
    return [o.text for o in result.outbound]


def labels_of(result: StepResult) -> list[str]:
    return [b.label for o in result.outbound for row in o.buttons for b in row]


def started(module: str, *, cat: Catalog | None = None, lang: str = "nl") -> Replay:
    """A pupil who opened the menu and started `module`."""
    pupil = Replay(module, cat=cat, lang=lang)
    pupil.feed({"command": "menu"})
    title = pupil.catalog.get(module).title.get(lang)
    pupil.feed({"press": f"🆕 {title}"})
    return pupil


def mini(steps: list[dict[str, Any]], **extra: Any) -> Module:
    """A small inline module; an end step is added when the steps have none."""
    if not any(s["type"] == "end" for s in steps):
        steps = [
            *steps,
            {
                "id": "einde",
                "type": "end",
                "text": "Klaar.",
                "summary": "Dit heb je verteld: {a." + steps[0]["id"] + "}",
                "contact": "Wil je praten?",
            },
        ]
    return Module.model_validate(
        {
            "id": "mini",
            "title": "Mini",
            "competency": "alle",
            "description": "Test.",
            "steps": steps,
            **extra,
        }
    )


def catalog_with(*modules: Module) -> Catalog:
    cat = Catalog(texts=load_texts())
    for module in modules:
        cat.add(module)
    return cat


# ---------------------------------------------------------------- odd input


def test_stale_button_leaves_the_state_alone_and_shows_the_question_again() -> None:
    pupil = started("wie-ben-ik")
    pupil.feed({"press": "Buiten zijn"})
    pupil.feed({"press": "Klaar ✅"})
    before = pupil.state.stored()
    result = pupil.feed({"press": "Met computers", "on_input": 2})
    assert texts_of(result)[0] == "Die knop is niet meer geldig. Hier is de vraag van nu."
    assert texts_of(result)[1].startswith("Vraag 2 van 5\nWaar ben je goed in?")
    assert result.outbound[0].notice == "Die knop is verlopen."
    assert pupil.state.stored() == before
    assert InputRejected(reason="stale_button") in result.events
    assert not any(isinstance(e, AnswerRecorded) for e in result.events)


def test_text_where_a_button_is_expected_repeats_the_question_with_its_buttons() -> None:
    pupil = started("hoe-gaat-het-op-school")
    shown = pupil.keyboards[-1]
    result = pupil.feed({"text": "euh ja"})
    assert texts_of(result) == [
        "Kies een van de knoppen hieronder.",
        "Vraag 1 van 5\nHoe gaat het met jou op school? Er zijn geen foute antwoorden.",
    ]
    assert "🙂 Goed" in labels_of(result)
    # The keyboard already on screen stays valid: pressing it still answers.
    assert pupil.keyboards[-1] == shown
    result = pupil.feed({"press": "🙂 Goed", "on_input": 2})
    assert any(isinstance(e, AnswerRecorded) and e.value == 4 for e in result.events)


def test_a_typed_label_counts_as_the_button() -> None:
    pupil = started("hoe-gaat-het-op-school")
    pupil.feed({"text": "🙂 goed"})
    result = pupil.feed({"text": "Meer dan 5"})
    answers = [e for e in result.events if isinstance(e, AnswerRecorded)]
    assert [(a.step, a.value) for a in answers] == [("afwezig", "Meer dan 5")]


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("ok", "Dat is wat kort. Schrijf minstens 5 tekens. Eén zin is genoeg."),
        (
            "x" * 501,
            "Dat is te lang (501 tekens). Schrijf maximaal 500 tekens. Maak het wat korter.",
        ),
    ],
)
def test_too_short_or_too_long_open_answers_are_told_kindly(answer: str, said: str) -> None:
    pupil = started("wie-ben-ik")
    pupil.feed({"press": "Weet ik niet"})
    pupil.feed({"press": "Weet ik niet"})
    before = pupil.state.stored()
    result = pupil.feed({"text": answer})
    assert texts_of(result) == [said]
    assert pupil.state.stored() == before


def test_unknown_command_points_to_the_menu_and_repeats_the_question() -> None:
    pupil = started("wie-ben-ik")
    result = pupil.feed({"command": "blabla"})
    assert texts_of(result)[0] == "Dat commando ken ik niet. Typ /menu of /help."
    assert texts_of(result)[1].startswith("Vraag 1 van 5")


def test_a_sticker_gets_text_only_and_the_question() -> None:
    pupil = started("wie-ben-ik")
    result = pupil.feed({"media": "sticker"})
    assert texts_of(result)[0] == "Ik kan alleen tekst lezen. Typ je antwoord of druk op een knop."
    assert texts_of(result)[1].startswith("Vraag 1 van 5")


def test_weet_ik_niet_typed_in_an_open_question_gives_the_example() -> None:
    pupil = started("mijn-talenten-in-actie")
    result = pupil.feed({"text": "geen idee"})
    assert texts_of(result) == [
        "Geen probleem. Een voorbeeld: thuis in de keuken. Of: bij de jeugdbeweging.",
        "Wil je deze vraag overslaan?",
    ]
    assert labels_of(result) == ["Sla over"]


def test_ask_explain_rephrases_the_question() -> None:
    pupil = started("wie-ben-ik")
    result = pupil.feed(
        {"text": "wa bedoel je", "parse": {"intent": "ask_explain", "confidence": 0.9}}
    )
    assert texts_of(result) == [
        "Ik zeg het anders: Waar heb je plezier in? Kies de dingen die je leuk vindt."
    ]


# ---------------------------------------------------------------- limits


def test_top3_refuses_a_fourth_choice_and_klaar_before_three() -> None:
    pupil = started("wie-ben-ik")
    pupil.feed({"press": "Weet ik niet"})
    pupil.feed({"press": "Ik hou vol"})
    result = pupil.feed({"press": "Klaar (1 van 3)"})
    assert result.outbound[0].notice == "Kies er 3. Druk dan op Klaar."
    assert not any(isinstance(e, AnswerRecorded) for e in result.events)
    pupil.feed({"press": "Ik leer snel"})
    result = pupil.feed({"press": "Ik ben stipt"})
    assert "3. Ik ben stipt" in labels_of(result)
    result = pupil.feed({"press": "Ik help graag"})
    assert result.outbound[0].notice == "Je kan er maximaal 3 kiezen."
    assert pupil.state.run is not None
    assert pupil.state.run.selection == ["volhouden", "snel-leren", "stipt"]


def test_multi_choice_with_a_maximum_refuses_one_more() -> None:
    module = mini(
        [
            {
                "id": "kies",
                "type": "multi_choice",
                "text": "Kies er 2.",
                "max_choices": 2,
                "options": ["A", "B", "C"],
            }
        ]
    )
    pupil = started("mini", cat=catalog_with(module))
    pupil.feed({"press": "A"})
    pupil.feed({"press": "B"})
    result = pupil.feed({"text": "C"})  # typed: no toast, so it must be a message
    assert texts_of(result) == ["Je kan er maximaal 2 kiezen."]
    result = pupil.feed({"press": "Klaar ✅"})
    assert [e.value for e in result.events if isinstance(e, AnswerRecorded)] == [["A", "B"]]


# ---------------------------------------------------------------- branches, summaries, flags


BRANCHING = [
    {
        "id": "richting",
        "type": "single_choice",
        "text": "Welke richting?",
        "options": ["Hout", "Zorg"],
    },
    {
        "id": "gevoel",
        "type": "scale",
        "text": "Hoe gaat het?",
        "scale": {1: "1", 2: "2", 3: "3", 4: "4", 5: "5"},
    },
    {
        "id": "samen",
        "type": "summary",
        "text": "Je koos {a.richting} en gaf een {a.gevoel}.",
        "branch": [{"if": {"answer": "richting", "eq": "Zorg"}, "next": "zorg"}],
        "next": "hout",
    },
    {
        "id": "hout",
        "type": "open_text",
        "text": "Wat maak je graag?",
        "hint": "een kast",
        "next": "einde",
    },
    {
        "id": "zorg",
        "type": "open_text",
        "text": "Wie help je graag?",
        "hint": "oma",
        "next": "einde",
    },
]


@pytest.mark.parametrize(
    ("choice", "question"), [("Hout", "Wat maak je graag?"), ("Zorg", "Wie help je graag?")]
)
def test_a_branch_on_an_earlier_answer_picks_the_path(choice: str, question: str) -> None:
    pupil = started("mini", cat=catalog_with(mini(BRANCHING)))
    pupil.feed({"press": choice})
    result = pupil.feed({"press": "2"})
    assert texts_of(result) == [f"Je koos {choice} en gaf een 2.", f"Vraag 3 van 3\n{question}"]


def test_option_contact_request_raises_the_step_flag_and_tells_the_pupil() -> None:
    pupil = started("mijn-stage")
    pupil.feed({"press": "😞 Slecht"})
    pupil.feed({"press": "Ik word slecht behandeld"})
    result = pupil.feed({"press": "Ja, graag"})
    flags = [e for e in result.events if isinstance(e, FlagRaised)]
    assert [(f.level, f.reason, f.target) for f in flags] == [
        ("zorg", "stage_slecht_behandeld", "begeleider")
    ]
    assert texts_of(result)[0] == (
        "Oké. Ik laat het weten aan de leerlingenbegeleider. "
        "Op een schooldag neemt die contact met je op."
    )


def test_contact_request_without_a_step_flag_is_a_plain_contact_request() -> None:
    module = mini(
        [
            {
                "id": "hulp",
                "type": "single_choice",
                "text": "Wil je hulp?",
                "options": [{"label": "Ja", "action": "contact_request"}, "Nee"],
            }
        ]
    )
    pupil = started("mini", cat=catalog_with(module))
    result = pupil.feed({"press": "Ja"})
    flags = [e for e in result.events if isinstance(e, FlagRaised)]
    assert [(f.level, f.reason) for f in flags] == [("contactvraag", "contactvraag")]


def test_a_step_flag_without_consent_is_raised_when_the_step_is_reached() -> None:
    module = mini(
        [
            {"id": "a", "type": "single_choice", "text": "A?", "options": ["Ja"]},
            {
                "id": "b",
                "type": "message",
                "text": "Oké.",
                "flag": {"level": "aandacht", "reason": "test"},
            },
        ]
    )
    pupil = started("mini", cat=catalog_with(module))
    result = pupil.feed({"press": "Ja"})
    assert [(e.level, e.reason) for e in result.events if isinstance(e, FlagRaised)] == [
        ("aandacht", "test")
    ]


def test_a_module_rule_without_consent_flags_when_the_answers_are_complete() -> None:
    module = mini(
        [
            {
                "id": "gevoel",
                "type": "scale",
                "text": "Hoe gaat het?",
                "scale": {1: "1", 2: "2", 3: "3", 4: "4", 5: "5"},
            }
        ],
        rules=[
            {
                "any": [{"answer": "gevoel", "lte": 2}],
                "flag": {"level": "aandacht", "reason": "laag"},
            }
        ],
    )
    pupil = started("mini", cat=catalog_with(module))
    result = pupil.feed({"press": "1"})
    assert [(e.level, e.reason) for e in result.events if isinstance(e, FlagRaised)] == [
        ("aandacht", "laag")
    ]
    assert texts_of(result)[0] == "Klaar.\n\nDit heb je verteld: 1"


def test_a_rule_that_needs_consent_waits_for_yes_to_contact() -> None:
    pupil = started("hoe-gaat-het-op-school")
    for label in ("😞 Slecht", "0", "Ik kan de lessen volgen", "Nee", "Niemand", "Alles"):
        result = pupil.feed({"press": label})
        assert not any(isinstance(e, FlagRaised) for e in result.events)
    result = pupil.feed({"press": "Nee, dank je"})
    assert not any(isinstance(e, FlagRaised) for e in result.events)
    assert any(isinstance(e, RunFinished) for e in result.events)


# ---------------------------------------------------------------- private answers, history


def test_private_answers_are_marked_in_the_event_and_shown_with_a_lock() -> None:
    pupil = started("mijn-stage")
    pupil.feed({"press": "🙂 Goed"})
    result = pupil.feed({"press": "🔒 Alleen voor mij"})
    assert "✅ Alleen voor mij" in labels_of(result)
    assert result.outbound[0].edit
    result = pupil.feed({"text": "Hij herstelt auto's"})
    recorded = [e for e in result.events if isinstance(e, AnswerRecorded)]
    assert [(e.step, e.private) for e in recorded] == [("mentor", True)]
    result = pupil.feed({"text": "Ik was op tijd"})  # the next answer is not private
    assert [e.private for e in result.events if isinstance(e, AnswerRecorded)] == [False]
    result = pupil.feed({"command": "mijnantwoorden"})
    lines = texts_of(result)[0].splitlines()
    assert "• Wat doet je mentor op je werkplek de hele dag: Hij herstelt auto's 🔒" in lines
    assert "• Waar ben je trots op deze week: Ik was op tijd" in lines


def test_mijnantwoorden_without_answers_says_so() -> None:
    pupil = Replay("wie-ben-ik")
    result = pupil.feed({"command": "mijnantwoorden"})
    assert texts_of(result)[0] == "Je hebt nog geen antwoorden gegeven."


# ---------------------------------------------------------------- pause and resume


def test_pupil_resumes_module_after_pause_days_later_at_the_same_question() -> None:
    pupil = started("mijn-volgende-stap")
    pupil.feed({"press": "Duaal leren"})
    result = pupil.feed({"command": "pauze"})
    assert texts_of(result) == [
        'Oké, we pauzeren "Mijn volgende stap". Je antwoorden zijn '
        "bewaard. Typ /verder als je verder wil."
    ]
    assert pupil.state.run is None
    result = pupil.feed({"text": "verder", "at": "2026-03-16T08:00:00+00:00"})
    assert texts_of(result)[0] == 'Welkom terug! We gaan verder met "Mijn volgende stap".'
    assert texts_of(result)[1].startswith("Vraag 2 van 6\nWat heb je daarvoor nodig?")
    assert pupil.state.run is not None
    assert pupil.state.run.answers == {"stap": "Duaal leren"}


def test_menu_marks_a_paused_module_and_starting_it_resumes() -> None:
    pupil = started("wie-ben-ik")
    pupil.feed({"press": "Buiten zijn"})
    pupil.feed({"press": "Klaar ✅"})
    result = pupil.feed({"command": "menu"})
    assert "⏸ Wie ben ik?" in labels_of(result)
    result = pupil.feed({"press": "⏸ Wie ben ik?"})
    assert texts_of(result)[1].startswith("Vraag 2 van 5")


def test_pauze_outside_a_module_says_there_is_nothing_to_pause() -> None:
    pupil = Replay("wie-ben-ik")
    result = pupil.feed({"command": "pauze"})
    assert texts_of(result)[0] == "Je bent nu niet met een opdracht bezig."


# ---------------------------------------------------------------- versions and languages


def test_a_run_keeps_its_version_after_the_module_is_edited() -> None:
    original = mini(
        [
            {"id": "a", "type": "single_choice", "text": "Vraag A?", "options": ["Ja", "Nee"]},
            {"id": "b", "type": "single_choice", "text": "Vraag B?", "options": ["Ja", "Nee"]},
        ]
    )
    cat = catalog_with(original)
    pupil = started("mini", cat=cat)
    edited = original.model_copy(
        update={
            "steps": [
                original.steps[0].model_copy(
                    update={
                        "text": original.steps[0].text.model_copy(update={"nl": "Nieuwe vraag A?"})
                    }
                ),
                *original.steps[1:],
            ]
        }
    )
    assert edited.version != original.version
    cat.add(edited)  # the new version is current; the old one stays known
    result = pupil.feed({"press": "Ja"})
    assert texts_of(result) == ["Vraag 2 van 2\nVraag B?"]
    assert pupil.state.run is not None
    assert pupil.state.run.version == original.version
    fresh = started("mini", cat=cat)
    assert fresh.state.run is not None
    assert fresh.state.run.version == edited.version


def test_a_run_whose_version_and_step_are_gone_carries_on_at_the_first_open_question() -> None:
    original = mini(
        [
            {"id": "a", "type": "single_choice", "text": "A?", "options": ["Ja"]},
            {"id": "b", "type": "single_choice", "text": "B?", "options": ["Ja"]},
            {"id": "c", "type": "single_choice", "text": "C?", "options": ["Ja"]},
        ]
    )
    pupil = started("mini", cat=catalog_with(original))
    pupil.feed({"press": "Ja"})
    renamed = mini(
        [
            {"id": "a", "type": "single_choice", "text": "A?", "options": ["Ja"]},
            {"id": "b2", "type": "single_choice", "text": "B2?", "options": ["Ja"]},
            {"id": "c", "type": "single_choice", "text": "C?", "options": ["Ja"]},
        ]
    )
    pupil.catalog = catalog_with(renamed)  # a restart that lost the old version
    result = pupil.feed({"text": "iets"})
    assert texts_of(result)[-1] == "Vraag 2 van 3\nB2?"
    assert pupil.state.run is not None
    assert pupil.state.run.version == renamed.version


TRANSLATED = [
    {
        "id": "vraag",
        "type": "single_choice",
        "text": {"nl": "Hoe gaat het?", "en": "How are you?"},
        "options": [{"label": {"nl": "Goed", "en": "Good"}}, "Slecht"],
    }
]


def test_a_translated_question_is_shown_in_the_pupils_language() -> None:
    pupil = started("mini", cat=catalog_with(mini(TRANSLATED)), lang="en")
    result = pupil.feed({"command": "menu"})
    result = pupil.feed({"press": "⏸ Mini"})
    assert texts_of(result)[-1] == "Vraag 1 van 1\nHow are you?"
    assert labels_of(result)[:2] == ["Good", "Slecht"]
    result = pupil.feed({"text": "goed"})  # the Dutch label works too
    assert [e.value for e in result.events if isinstance(e, AnswerRecorded)] == ["Goed"]


def test_a_missing_translation_falls_back_to_dutch() -> None:
    pupil = started("mini", cat=catalog_with(mini(TRANSLATED)), lang="fr")
    assert pupil.state.run is not None
    result = pupil.feed({"command": "help"})
    assert texts_of(result)[-1] == "Vraag 1 van 1\nHoe gaat het?"


# ---------------------------------------------------------------- reminders


def reminder(pupil: Replay, at: str, module: str | None = None) -> StepResult:
    return pupil.feed({"system": "reminder", "at": at, "data": {"module": module or pupil.module}})


def test_a_reminder_comes_once_a_day_with_a_start_button() -> None:
    pupil = Replay("terugblik")
    first = reminder(pupil, "2026-03-10T09:00:00+00:00")
    assert texts_of(first) == [
        'Hoi! Je opdracht "Terugblik" wacht nog op jou. Het duurt maar een paar minuten.'
    ]
    assert labels_of(first) == ["Start", "Geen herinneringen meer"]
    assert reminder(pupil, "2026-03-10T15:00:00+00:00").outbound == ()
    assert texts_of(reminder(pupil, "2026-03-11T09:00:00+00:00"))


def test_no_reminder_when_off_busy_or_done() -> None:
    pupil = Replay("terugblik")
    pupil.feed({"command": "herinneringen"})
    assert reminder(pupil, "2026-03-10T09:00:00+00:00").outbound == ()
    busy = started("terugblik")
    assert reminder(busy, "2026-03-10T09:00:00+00:00").outbound == ()
    done = Replay("terugblik")
    done.status["terugblik"] = "done"
    assert reminder(done, "2026-03-10T09:00:00+00:00").outbound == ()


# ---------------------------------------------------------------- purity and NLU


def test_step_does_not_change_the_state_it_was_given() -> None:
    cat = catalog()
    state = PupilState(mode="menu", age_band="13plus")
    ctx = Context(catalog=cat, assignments=(Assignment(module="wie-ben-ik"),))
    before = state.stored()
    result = step(
        state, Inbound(kind=InboundKind.BUTTON, payload=f"{state.turn}:m:wie-ben-ik"), ctx, now=NOW
    )
    assert result.state.run is not None
    assert state.stored() == before


@pytest.mark.parametrize(
    ("mode", "text", "wanted"),
    [
        ("module", "ik weet het echt niet zo goed", True),
        ("module", "pauze", False),
        ("menu", "verder", False),
        ("new", "hallo", False),
    ],
)
def test_needs_nlu_only_for_free_text_that_may_carry_an_intent(
    mode: str, text: str, wanted: bool
) -> None:
    state = PupilState(mode=mode)  # type: ignore[arg-type]
    assert needs_nlu(state, Inbound(kind=InboundKind.TEXT, text=text)) is wanted


def test_mijnantwoorden_in_a_module_shows_the_answers_then_the_same_question() -> None:
    pupil = started("wie-ben-ik")
    pupil.feed({"press": "Buiten zijn"})
    pupil.feed({"press": "Klaar ✅"})
    result = pupil.feed({"command": "mijnantwoorden"})
    assert texts_of(result)[0].splitlines()[-1] == "• Wat doe je graag: Buiten zijn"
    assert texts_of(result)[1].startswith("Vraag 2 van 5\nWaar ben je goed in?")
    assert pupil.state.mode == "module"


def test_going_to_the_menu_in_a_module_pauses_it() -> None:
    pupil = started("wie-ben-ik")
    result = pupil.feed({"text": "menu"})
    assert [type(e).__name__ for e in result.events] == ["RunPaused"]
    assert pupil.state.run is None
    assert "wie-ben-ik" in pupil.state.paused


def test_an_owned_state_gives_the_same_steps_as_a_copied_one() -> None:
    # The bot lets the engine work on the state it just loaded (`owned=True`, no copy); over
    # a long scripted walk through every module that must change nothing but the speed.
    from bench.engine_bench import context, script

    cat = catalog()
    ctx = context(cat)
    copied = owned = PupilState(mode="menu", age_band="13plus").to_json()
    for inbound in script(3_000, cat):
        a = step(PupilState.from_json(copied), inbound, ctx, now=NOW)
        b = step(PupilState.from_json(owned), inbound, ctx, now=NOW, owned=True)
        assert (a.outbound, a.events) == (b.outbound, b.events)
        copied, owned = a.state.to_json(), b.state.to_json()
        assert copied == owned


def test_a_step_that_needs_no_overview_reads_none() -> None:
    # The bot skips loading the class, its assignments and the pupil's runs when
    # `needs_overview` says so: over a long walk through every module, such a step must give
    # exactly what it gives with the full context.
    from bench.engine_bench import context, script

    cat = catalog()
    full, bare = context(cat), Context(catalog=cat, class_name=None)
    blob = PupilState(mode="menu", age_band="13plus").to_json()
    skipped = 0
    for inbound in script(3_000, cat):
        state = PupilState.from_json(blob)
        a = step(state, inbound, full, now=NOW)
        if not needs_overview(state, inbound, cat):
            skipped += 1
            b = step(state, inbound, bare, now=NOW)
            assert (a.outbound, a.events, a.state) == (b.outbound, b.events, b.state)
        blob = a.state.to_json()
    assert skipped > 300  # multi-select presses are common: the check really ran


def test_needs_overview_for_anything_but_redrawing_the_question() -> None:
    pupil = started("wie-ben-ik")
    state = pupil.state
    assert not needs_overview(
        state, Inbound(kind=InboundKind.BUTTON, payload=f"{state.turn}:o:0"), pupil.catalog
    )
    for inbound in (
        Inbound(kind=InboundKind.BUTTON, payload=f"{state.turn}:ok"),  # may end the question
        Inbound(kind=InboundKind.BUTTON, payload=f"{state.turn - 1}:o:0"),  # an old keyboard
        Inbound(kind=InboundKind.BUTTON, payload=f"{state.turn}:menu"),
        Inbound(kind=InboundKind.TEXT, text="Met mijn handen werken"),
        Inbound(kind=InboundKind.COMMAND, command="menu"),
    ):
        assert needs_overview(state, inbound, pupil.catalog), inbound
