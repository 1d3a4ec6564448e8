"""The didactic package as shipped: the catalogue of content-brief §3, in plain Dutch (§1)."""

from __future__ import annotations

import re

import pytest

from content.loader import load_catalog
from content.models import Competency, Module, StepKind

CATALOG = load_catalog()
MODULES = sorted(CATALOG.modules.values(), key=lambda m: m.id)
BRIEF = {
    "wie-ben-ik",
    "wat-vind-ik-belangrijk",
    "mijn-stage",
    "beroepen-ontdekken",
    "hoe-gaat-het-op-school",
    "mijn-volgende-stap",
    "mijn-netwerk",
    "mijn-talenten-in-actie",
    "jezelf-voorstellen",
    "terugblik",
}
# Words from the Netherlands that a Flemish pupil reads as foreign (content-brief §1). "Mentor"
# stays: at a stage it is the Flemish word too (the mentor op je werkplek, sketch A).
NOT_FLEMISH = re.compile(
    r"\b(docent|decaan|vertrouwenspersoon|cijfers|verzuim|profiel|mbo|"
    r"bbl|UWV|GGD|BPV|praktijkopleider)\b",
    re.IGNORECASE,
)


def test_the_catalogue_of_the_brief_is_complete() -> None:
    assert set(CATALOG.modules) >= BRIEF
    assert len(CATALOG.modules) >= 10


def test_all_five_competencies_and_the_check_in_are_covered() -> None:
    covered = {m.competency for m in MODULES}
    assert covered >= set(Competency)
    assert CATALOG.modules["hoe-gaat-het-op-school"].rules, "the check-in flags dropout risk"
    assert CATALOG.modules["terugblik"].card


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.id)
def test_a_module_is_one_short_sitting_that_ends_with_the_pupils_words(module: Module) -> None:
    assert 5 <= module.question_count <= 8
    end = module.steps[-1]
    assert end.type is StepKind.END
    assert end.summary is not None
    assert "{a." in end.summary.nl
    assert end.contact is not None


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.id)
def test_every_question_can_be_said_otherwise_and_open_ones_give_an_example(
    module: Module,
) -> None:
    for step in module.steps:
        if step.asks:
            assert step.explain is not None, f"{module.id}/{step.id}: explain"
            question = step.text.nl.split("Bijvoorbeeld:")[0]  # an example may be a question
            assert question.count("?") <= 1, f"{module.id}/{step.id}: one question"
        if step.type is StepKind.OPEN_TEXT:
            assert "Bijvoorbeeld:" in step.text.nl, f"{module.id}/{step.id}: example"
            assert step.hint is not None


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.id)
def test_modules_speak_flemish_school_words(module: Module) -> None:
    for step in module.steps:
        texts = [step.text.nl, *(o.label.nl for o in step.options)]
        for text in texts:
            assert not NOT_FLEMISH.search(text), f"{module.id}/{step.id}: {text}"


def test_an_edited_copy_works_out_its_cached_values_again() -> None:
    """Option keys, "asks" and the version hash are cached; a changed copy must not keep them."""
    module = CATALOG.modules["wie-ben-ik"]
    step = next(s for s in module.steps if s.options and s.asks)
    option = step.options[0]
    assert option.value is None or option.key == option.value  # cached on the original
    renamed = option.model_copy(update={"value": "iets-anders"})
    assert renamed.key == "iets-anders"
    assert option.key != "iets-anders"
    told = step.model_copy(update={"type": StepKind.MESSAGE})
    assert step.asks
    assert not told.asks
    assert module.model_copy(update={"minutes": 9}).version != module.version
