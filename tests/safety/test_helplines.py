"""Which help lines a pupil in crisis gets: by signal category and by the school's region.

The safety layer (nlu, its own tests) decides the category; here: category → what is said.
"""

from __future__ import annotations

import pytest

from content.loader import load_catalog
from flows.engine import crisis_helplines, helplines
from flows.types import Context
from nlu.types import SafetyCategory

CATALOG = load_catalog()


def lines(category: SafetyCategory | None, region: str = "BE") -> str:
    return crisis_helplines(Context(catalog=CATALOG, region=region), category)


@pytest.mark.parametrize(
    "category",
    [None, SafetyCategory.SUICIDAL, SafetyCategory.SELF_HARM, SafetyCategory.ACUTE_DANGER],
)
def test_suicidal_self_harm_and_danger_get_112_1813_and_awel(
    category: SafetyCategory | None,
) -> None:
    said = lines(category)
    assert "Bel 112" in said
    assert "1813, dag en nacht" in said
    assert "102 (Awel" in said


def test_violence_at_home_adds_1712_and_nupraatikerover() -> None:
    said = lines(SafetyCategory.HOME_VIOLENCE)
    assert "112" in said
    assert "101" in said
    assert "1712" in said
    assert "nupraatikerover.be" in said


def test_sexual_abuse_adds_the_zorgcentrum_na_seksueel_geweld() -> None:
    said = lines(SafetyCategory.SEXUAL_ABUSE)
    assert "Zorgcentrum na Seksueel Geweld" in said
    assert "1712" in said


def test_a_dutch_school_gets_113_and_the_kindertelefoon() -> None:
    said = lines(SafetyCategory.SUICIDAL, region="NL")
    assert "113 of 0800-0113, dag en nacht" in said
    assert "0800-0432" in said
    assert "Veilig Thuis: 0800-2000" in lines(SafetyCategory.HOME_VIOLENCE, region="nl")


def test_a_region_without_its_own_lines_gets_the_belgian_ones() -> None:
    assert lines(SafetyCategory.SUICIDAL, region="LU") == lines(SafetyCategory.SUICIDAL)


def test_in_danger_now_gives_only_the_emergency_numbers() -> None:
    said = helplines(Context(catalog=CATALOG), "danger")
    assert said == "Bel nu 112. Of bel de politie: 101. Zeg waar je bent."


def test_safety_messages_carry_no_emoji_and_keep_the_door_open() -> None:
    texts = CATALOG.texts
    for key in ("crisis.reply1", "crisis.reply3", "helplines.BE.crisis", "helplines.NL.crisis"):
        assert all(ord(ch) < 0x2600 for ch in texts.get(key)), key
    assert "Je mag mij altijd opnieuw schrijven." in texts.get("crisis.reply3")
