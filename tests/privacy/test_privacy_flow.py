"""The engine side of the pupil's rights: /privacy, /mijngegevens, /vergeetmij (no database)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from content.loader import Catalog, load_catalog
from flows import engine
from flows.types import (
    Context,
    EraseConfirmed,
    ExportRequested,
    Inbound,
    InboundKind,
    PupilState,
    StepResult,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def command(catalog: Catalog, state: PupilState, name: str) -> StepResult:
    inbound = Inbound(kind=InboundKind.COMMAND, command=name)
    return engine.step(state, inbound, Context(catalog=catalog), now=NOW)


def press(catalog: Catalog, state: PupilState, payload: str) -> StepResult:
    inbound = Inbound(kind=InboundKind.BUTTON, payload=payload)
    return engine.step(state, inbound, Context(catalog=catalog), now=NOW)


def test_privacy_text_says_what_who_how_long_and_how_to_erase(catalog: Catalog) -> None:
    result = command(catalog, PupilState(mode="menu"), "privacy")
    text = result.outbound[0].text
    for part in (
        "Wat bewaar ik?",
        "Wie ziet wat?",
        "leerlingenbegeleider",
        "Hoe lang?",
        "1 jaar na het einde van het schooljaar",
        "/mijngegevens",
        "/vergeetmij",
    ):
        assert part in text, part


def test_rights_are_open_before_consent_without_skipping_it(catalog: Catalog) -> None:
    state = PupilState(mode="consent", age_band="u13", turn=3)
    exported = command(catalog, state, "mijngegevens")
    assert exported.events == (ExportRequested(),)
    document = exported.outbound[0]
    assert (document.kind, document.attachment) == ("document", "export:mijn-gegevens-leerbot.txt")
    asked = command(catalog, state, "vergeetmij")
    assert asked.state.mode == "consent"
    labels = [b.label for row in asked.outbound[-1].buttons for b in row]
    assert labels == ["Ja, wis alles", "Nee, toch niet"]
    declined = press(catalog, asked.state, f"{asked.state.turn}:er:no")
    assert declined.state.mode == "consent"
    assert "Is dat oké voor jou?" in declined.outbound[-1].text
    assert declined.events == ()
    # Other commands still wait for the consent answer.
    assert command(catalog, state, "menu").state.mode == "consent"


def test_erase_needs_the_current_confirmation_button(catalog: Catalog) -> None:
    asked = command(catalog, PupilState(mode="menu", turn=7), "vergeetmij")
    assert asked.state.mode == "erase"
    stale = press(catalog, asked.state, f"{asked.state.turn - 1}:er:yes")
    assert EraseConfirmed() not in stale.events
    confirmed = press(catalog, asked.state, f"{asked.state.turn}:er:yes")
    assert confirmed.events == (EraseConfirmed(),)
    assert confirmed.state == PupilState(mode="new")
    assert confirmed.outbound == ()  # the adapter erases first, then says goodbye
    goodbye = engine.step(
        PupilState(),
        Inbound(kind=InboundKind.SYSTEM, command="erase_done"),
        Context(catalog=catalog),
        now=NOW,
    )
    assert goodbye.outbound[0].text.startswith("Je gegevens zijn gewist.")


def test_privacy_texts_are_plain_dutch(catalog: Catalog) -> None:
    keys = [
        k
        for k in catalog.texts.entries
        if k.startswith("vergeetmij.") or k in {"mijngegevens.caption", "privacy.erased"}
    ]
    assert len(keys) >= 6
    for key in keys:
        text = catalog.texts.get(key)
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", text) if s]
        assert len(sentences) <= 3, key
        for sentence in sentences:
            assert len(sentence.split()) <= 15, f"{key}: {sentence}"
