"""The stored pupil state: what the database keeps between updates and how it reads back."""

from __future__ import annotations

import json

import pytest

from flows.types import PupilState, RunState, StateError


def busy_state() -> PupilState:
    run = RunState(
        module="wie-ben-ik",
        version="v1",
        step="sterk",
        answers={"graag": ["Met mijn handen werken"], "schaal": 4, "open": "ik help graag"},
        displays={"graag": "Met mijn handen werken"},
        selection=["handig"],
    )
    paused = RunState(module="mijn-motieven", version="v2", step="s2", phase="share")
    return PupilState(mode="module", turn=12, age_band="13plus", run=run, paused={"m": paused})


def test_stored_state_reads_back_equal_and_leaves_defaults_out() -> None:
    state = busy_state()
    stored = state.stored()
    assert PupilState.load(stored) == state
    assert PupilState.from_json(state.to_json()) == state
    assert json.loads(state.to_json()) == stored
    assert "lang" not in stored  # defaults are not written
    assert "contact" not in stored
    assert "answers" not in stored["paused"]["m"]
    assert stored["run"]["answers"]["schaal"] == 4


def test_a_new_pupil_has_no_stored_state() -> None:
    assert PupilState.load(None) == PupilState()
    assert PupilState.load({}) == PupilState()
    assert PupilState().stored() == {}


def test_fields_a_later_version_dropped_are_ignored() -> None:
    assert PupilState.load({"mode": "menu", "old_field": 3}).mode == "menu"


def test_defaults_are_fresh_per_state() -> None:
    a, b = PupilState(), PupilState()
    a.paused["x"] = RunState(module="x", version="1", step="s")
    assert b.paused == {}


@pytest.mark.parametrize(
    "stored",
    [{"mode": "zwemmen"}, {"turn": "drie"}, {"run": {"module": "x"}}, {"paused": []}],
)
def test_a_stored_state_that_does_not_fit_is_a_clear_error(stored: dict[str, object]) -> None:
    with pytest.raises(StateError, match="stored pupil state does not fit"):
        PupilState.load(stored)
    with pytest.raises(StateError, match="stored pupil state does not fit"):
        PupilState.from_json(json.dumps(stored))
