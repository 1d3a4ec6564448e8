"""Rasa lifecycle pieces that need no Rasa: the interpreter, cache keys and build locks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nlu import lifecycle


def test_a_python_310_interpreter_is_found() -> None:
    python = lifecycle.find_python310()
    assert python.exists()
    assert lifecycle._python_version(python).startswith("3.10.")


def test_cache_keys_live_outside_the_clone_and_are_stable(tmp_path: Path) -> None:
    model = lifecycle.model_path(cache_dir=tmp_path)
    assert model == lifecycle.model_path(cache_dir=tmp_path)
    assert model.parent == tmp_path / "models"
    assert model.name.endswith(".tar.gz")
    venv = lifecycle.venv_path(cache_dir=tmp_path)
    assert venv.parent == tmp_path
    assert venv.name.startswith("rasa-venv-")
    assert not str(model).startswith(str(lifecycle.NLU_DIR))


def test_two_builders_of_the_same_thing_take_turns(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "same.lock"
    spans: list[tuple[float, float]] = []

    def build() -> None:
        with lifecycle._locked(lock):
            start = time.monotonic()
            time.sleep(0.2)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (_, a_end), (b_start, _) = sorted(spans)
    assert b_start >= a_end  # never at the same time
