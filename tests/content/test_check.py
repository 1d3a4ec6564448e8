"""`leerbot content check`: one clear line per problem, a non-zero exit, for every rule."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from leerbot.cli import app

VALID: dict[str, Any] = {
    "id": "proef",
    "title": "Proef",
    "competency": "kwaliteitenreflectie",
    "description": "Een kleine proefmodule.",
    "steps": [
        {
            "id": "graag",
            "type": "single_choice",
            "text": "Wat doe je graag?",
            "options": ["Koken", "Sporten"],
            "next": "waarom",
        },
        {
            "id": "waarom",
            "type": "open_text",
            "text": "Waarom doe je dat graag? Bijvoorbeeld: ik word er rustig van.",
            "hint": "ik zie graag iets groeien.",
            "next": "einde",
        },
        {
            "id": "einde",
            "type": "end",
            "text": "Dank je!",
            "summary": "Dit heb je verteld:\n• Graag: {a.graag}\n• Waarom: {a.waarom}",
            "contact": "Wil je hierover praten met iemand?",
        },
    ],
}


def check(*paths: Path) -> tuple[int, list[str]]:
    """Run `leerbot content check PATH...` in process; exit code and printed lines."""
    result = CliRunner().invoke(app, ["content", "check", *map(str, paths)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout.splitlines()


def write(tmp_path: Path, module: dict[str, Any], name: str = "proef.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(module, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def broken(**changes: Any) -> dict[str, Any]:
    """VALID, changed: `steps={index: {field: value}}` edits steps, a list replaces them all.

    A field set to None is left out, as an author who forgot it would.
    """
    module = copy.deepcopy(VALID)
    steps = changes.pop("steps", {})
    if isinstance(steps, list):
        module["steps"] = copy.deepcopy(steps)
    else:
        for index, fields in steps.items():
            module["steps"][index].update(fields)
    module.update(changes)
    for step in module["steps"]:
        for key in [k for k, v in step.items() if v is None]:
            del step[key]
    return module


def test_a_valid_module_passes_with_exit_zero(tmp_path: Path) -> None:
    code, lines = check(write(tmp_path, VALID))
    assert (code, lines) == (0, [])


def test_the_shipped_modules_pass_in_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leerbot.cli", "content", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert "content ok" in result.stderr


def long_module() -> dict[str, Any]:
    """12 open questions in a row: far more than one sitting."""
    questions = [
        {
            "id": f"w{i}",
            "type": "open_text",
            "hint": "iets.",
            "text": "Wat deed je vandaag? Bijvoorbeeld: ik hielp een klant.",
            "next": f"w{i + 1}" if i < 12 else "einde",
        }
        for i in range(1, 13)
    ]
    return broken(
        steps=[
            VALID["steps"][0] | {"next": "w1"},
            *questions,
            VALID["steps"][2] | {"summary": "Dit heb je verteld: {a.graag}"},
        ]
    )


CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown next": (
        broken(steps={0: {"next": "waarm"}}),
        [
            "proef.yaml: proef/graag: unknown next step 'waarm'",
            "proef.yaml: proef/waarom: unreachable: no step leads here",
            "proef.yaml: proef/einde: unreachable: no step leads here",
        ],
    ),
    "unreachable step": (
        broken(steps={0: {"next": "einde"}}),
        ["proef.yaml: proef/waarom: unreachable: no step leads here"],
    ),
    "duplicate ids": (
        broken(steps={1: {"id": "graag"}}),
        [
            "proef.yaml: proef/graag: step id used 2 times (each id once)",
            "proef.yaml: proef/graag: unknown next step 'waarom'",
            "proef.yaml: proef/einde: unreachable: no step leads here",
            "proef.yaml: proef/einde: summary: template {a.waarom} refers to an unknown answer",
        ],
    ),
    "missing Dutch text": (
        broken(steps={0: {"text": {"en": "What do you like?"}}}),
        ["proef.yaml: proef/graag: text: missing Dutch text (nl)"],
    ),
    "empty Dutch text": (
        broken(steps={0: {"text": "  "}}),
        ["proef.yaml: proef/graag: text: missing Dutch text (nl)"],
    ),
    "long button label": (
        broken(steps={0: {"options": ["Koken", "Taarten bakken voor verjaardagen"]}}),
        [
            "proef.yaml: proef/graag: button 'Taarten bakken voor verjaardagen' is 32 characters "
            "(max 30)"
        ],
    ),
    "too many button words": (
        broken(steps={0: {"options": ["Koken", "Met al mijn vrienden op pad"]}}),
        ["proef.yaml: proef/graag: button 'Met al mijn vrienden op pad' has 6 words (max 5)"],
    ),
    "callback data over 64 bytes": (
        broken(id="een-heel-lange-naam-voor-een-module-over-stage"),
        [
            "proef.yaml: een-heel-lange-naam-voor-een-module-over-stage: module id is 46 "
            "characters: its start button's callback data would be 72 bytes (Telegram allows "
            "64)"
        ],
    ),
    "message over 4096 characters": (
        broken(steps={1: {"explain": "Kort. " * 700}}),
        ["proef.yaml: proef/waarom: explain: message is 4200 characters (Telegram allows 4096)"],
    ),
    "sentence over 20 words": (
        broken(
            steps={
                0: {
                    "text": "Wat doe je graag als je na een lange dag op school of op je "
                    "stage thuis komt en even niets moet doen?"
                }
            }
        ),
        [
            "proef.yaml: proef/graag: text: sentence of 23 words (max 20): 'Wat doe je graag als "
            "je'..."
        ],
    ),
    "module too long": (
        long_module(),
        ["proef.yaml: proef: takes about 14 minutes (max 10): split it up"],
    ),
    "missing end step": (
        broken(steps=[VALID["steps"][0], VALID["steps"][1] | {"next": None}]),
        [
            "proef.yaml: proef/waarom: the module stops here without an end step (add next: ...)",
            "proef.yaml: proef: missing end step (type: end, with a summary and a contact offer)",
        ],
    ),
    "missing contact offer": (
        broken(steps={2: {"contact": None}}),
        ["proef.yaml: proef/einde: end step has no contact offer (contact: ...)"],
    ),
    "template with unknown answer": (
        broken(steps={2: {"summary": "Dit heb je verteld: {a.graag} en {a.hobby}"}}),
        ["proef.yaml: proef/einde: summary: template {a.hobby} refers to an unknown answer"],
    ),
    "condition on an unknown option": (
        broken(steps={0: {"branch": [{"if": {"eq": "Koke"}, "next": "einde"}]}}),
        [
            "proef.yaml: proef/graag: condition compares with 'Koke', which is not an option of "
            "'graag'"
        ],
    ),
    "open question without an example": (
        broken(steps={1: {"hint": None}}),
        [
            "proef.yaml: proef/waarom: an open question needs an example for 'weet ik niet' "
            "(hint: ...)"
        ],
    ),
    "two emoji in one message": (
        broken(steps={0: {"text": "Wat doe je graag? 😄👍"}}),
        ["proef.yaml: proef/graag: text: 2 emoji (max 1 per message)"],
    ),
    "too many options": (
        broken(steps={0: {"options": ["A", "B", "C", "D", "E", "F", "G", "Weet ik niet"]}}),
        ["proef.yaml: proef/graag: 7 options (max 6, plus 'Weet ik niet')"],
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_problem_gets_one_clear_line_and_exit_one(kind: str, tmp_path: Path) -> None:
    module, expected = CASES[kind]
    code, lines = check(write(tmp_path, module))
    assert lines == expected
    assert code == 1


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "kapot.yaml"
    path.write_text(
        'id: kapot\ntitle: Kapot\nsteps:\n  - id: a\n    text: "niet gesloten\n', encoding="utf-8"
    )
    code, lines = check(path)
    assert lines == ["kapot.yaml:6: YAML syntax error: found unexpected end of stream"]
    assert code == 1


def test_a_folder_is_checked_file_by_file_and_ids_must_be_unique(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, broken(steps={2: {"contact": None}}), "b.yaml")
    code, lines = check(tmp_path)
    assert lines == [
        "b.yaml: proef: module id also used in a.yaml",
        "b.yaml: proef/einde: end step has no contact offer (contact: ...)",
    ]
    assert code == 1


def test_a_missing_path_is_one_line(tmp_path: Path) -> None:
    code, lines = check(tmp_path / "weg.yaml")
    assert (code, lines) == (1, [f"{tmp_path / 'weg.yaml'}: no such file or folder"])


def test_an_unknown_step_type_names_the_step(tmp_path: Path) -> None:
    code, lines = check(write(tmp_path, broken(steps={0: {"type": "slider"}})))
    assert code == 1
    assert lines[0].startswith("proef.yaml: proef/graag: type: Input should be 'message'")
