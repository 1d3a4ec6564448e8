"""The real Rasa server (trained from nlu/, cached): intent accuracy and the combined safety net.

The first run on a cold cache builds the Rasa virtualenv and trains (minutes); later runs only
start the server (~30 s, once per session). Figures go to nlu/results/eval.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nlu import lifecycle
from nlu.client import RasaClient
from nlu.safety import assess, combine
from nlu.types import SafetyLevel
from tests.nlu.conftest import NLU_DIR, nlu_examples

pytestmark = [pytest.mark.rasa, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
RESULTS = NLU_DIR / "results" / "eval.json"
MIN_ACCURACY = 0.85


async def test_rasa_parses_pupil_chat_through_the_client(rasa_url: str) -> None:
    client = RasaClient(rasa_url, timeout=5)
    try:
        parse = await client.parse("ik stop even, later verder")
    finally:
        await client.aclose()
    assert (parse.intent, parse.source) == ("pause", "rasa")
    assert client.available


async def test_held_out_evaluation(
    rasa_url: str,
    crisis_set: dict[str, Any],
    casual_set: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = RasaClient(rasa_url, timeout=5)
    latencies: list[float] = []

    async def parse(text: str) -> Any:
        started = time.perf_counter()
        result = await client.parse(text)
        latencies.append((time.perf_counter() - started) * 1000)
        assert result.source == "rasa", "Rasa stopped answering during the evaluation"
        return result

    try:
        examples = nlu_examples("tests/test_nlu.yml")
        confusions: Counter[str] = Counter()
        right = 0
        normal_false_crises = []
        for intent, text in examples:
            got = await parse(text)
            if got.intent == intent:
                right += 1
            else:
                confusions[f"{intent} -> {got.intent}"] += 1
            if intent != "crisis" and combine(assess(text), got).level is SafetyLevel.CRISIS:
                normal_false_crises.append(text)
        missed, rasa_alone = [], 0
        for item in crisis_set["crisis"]:
            got = await parse(item["text"])
            rasa_alone += got.intent == "crisis"
            if not combine(assess(item["text"]), got).crisis:
                missed.append(item["text"])
        false_crises, check_ins = [], []
        for text in casual_set:
            level = combine(assess(text), await parse(text)).level
            if level is SafetyLevel.CRISIS:
                false_crises.append(text)
            elif level is SafetyLevel.UNCLEAR:
                check_ins.append(text)
    finally:
        await client.aclose()

    figures = {
        "intent_accuracy": round(right / len(examples), 4),
        "test_examples": len(examples),
        "confusions": dict(confusions.most_common()),
        "crisis_recall_combined": round(1 - len(missed) / len(crisis_set["crisis"]), 4),
        "crisis_recall_rasa_intent_alone": round(rasa_alone / len(crisis_set["crisis"]), 4),
        "crisis_phrasings": len(crisis_set["crisis"]),
        "crisis_missed": missed,
        "casual_false_crises": false_crises,
        "casual_check_ins": check_ins,
        "casual_phrasings": len(casual_set),
        "false_crises_on_normal_test_messages": normal_false_crises,
        "parse_ms_p50": round(statistics.median(latencies), 1),
        "parse_ms_p99": round(sorted(latencies)[int(len(latencies) * 0.99)], 1),
        "model": lifecycle.model_path().name,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    with capsys.disabled():
        print(
            f"\nNLU evaluation ({RESULTS.relative_to(ROOT)}): accuracy "
            f"{figures['intent_accuracy']:.3f} on {len(examples)} held-out examples; crisis "
            f"recall {figures['crisis_recall_combined']:.3f} combined "
            f"({figures['crisis_recall_rasa_intent_alone']:.3f} Rasa alone); false crises "
            f"{len(false_crises)}/{len(casual_set)} casual, "
            f"{len(normal_false_crises)} on normal messages; parse p50 "
            f"{figures['parse_ms_p50']} ms"
        )

    assert figures["intent_accuracy"] >= MIN_ACCURACY, figures["confusions"]
    assert missed == []
    assert len(false_crises) <= 1, false_crises
    assert len(normal_false_crises) <= 2, normal_false_crises


def test_train_is_idempotent_and_prints_the_model(rasa_url: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "leerbot.cli", "nlu", "train"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = Path(done.stdout.strip().splitlines()[-1])
    assert printed == lifecycle.model_path()
    assert printed.exists()
    assert time.monotonic() - started < 60  # cached: nothing to build
