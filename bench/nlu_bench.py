"""NLU timings: the in-process safety layer per message, and Rasa parse over HTTP.

    python -m bench.nlu_bench

Safety: a few thousand varied pupil messages (held-out sets, training data, chat-spelling and
long variants), timed one by one; target p99 < 1 ms. Rasa: the cached model (trained first if
needed) served by a real `rasa run` on 127.0.0.1, 200 sequential parses through RasaClient.
Writes bench/results/nlu.json.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from nlu import lifecycle
from nlu.client import RasaClient
from nlu.safety import assess, load_lexicon

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "nlu.json"
SAFETY_MESSAGES = 5000
RASA_REQUESTS = 200
WARMUP = 20
TARGET_SAFETY_P99_MS = 1.0


def _texts() -> list[str]:
    nlu = ROOT / "nlu"
    texts: list[str] = []
    for name in ("data/nlu.yml", "tests/test_nlu.yml"):
        for item in yaml.safe_load((nlu / name).read_text())["nlu"]:
            if "intent" in item:
                texts += [
                    line.strip()[2:] for line in item["examples"].splitlines() if line.strip()
                ]
    crisis = yaml.safe_load((nlu / "tests" / "crisis_set.yml").read_text())
    texts += [i["text"] for part in ("crisis", "concern", "check_in") for i in crisis[part]]
    texts += yaml.safe_load((nlu / "tests" / "casual_set.yml").read_text())["casual"]
    return texts


def _variants(texts: list[str], n: int) -> list[str]:
    rnd = random.Random(42)
    out: list[str] = []
    while len(out) < n:
        text = rnd.choice(texts)
        kind = rnd.randrange(6)
        if kind == 1:
            text = text.upper() + "!!!"
        elif kind == 2:
            text = text.replace("ik ", "k ").replace("niet", "ni") + " 😂"
        elif kind == 3:
            text = f"{text}, {rnd.choice(texts)} en {rnd.choice(texts)}"
        elif kind == 4:
            text = " ".join(rnd.choice(texts) for _ in range(8))  # a long answer
        out.append(text)
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p99": round(ordered[int(len(ordered) * 0.99)], 4),
        "max": round(ordered[-1], 4),
    }


def bench_safety() -> dict[str, Any]:
    """Time assess() per message: wall clock, and this thread's CPU (immune to noisy CPUs)."""
    started = time.perf_counter()
    load_lexicon()
    load_ms = (time.perf_counter() - started) * 1000
    messages = _variants(_texts(), SAFETY_MESSAGES)
    for message in messages[:200]:
        assess(message)
    wall: list[float] = []
    cpu: list[float] = []
    for message in messages:
        w, c = time.perf_counter_ns(), time.thread_time_ns()
        assess(message)
        cpu.append((time.thread_time_ns() - c) / 1e6)
        wall.append((time.perf_counter_ns() - w) / 1e6)
    return {
        "messages": len(messages),
        "lexicon_load_ms": round(load_ms, 1),
        "wall_ms": _percentiles(wall),
        "cpu_ms": _percentiles(cpu),
        "target_p99_ms": TARGET_SAFETY_P99_MS,
        "ok": _percentiles(cpu)["p99"] < TARGET_SAFETY_P99_MS,
    }


async def _bench_rasa() -> dict[str, Any]:
    started = time.perf_counter()
    model = await asyncio.to_thread(lifecycle.train)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    async with lifecycle.rasa_server() as url:
        start_s = time.perf_counter() - started
        client = RasaClient(url, timeout=5)
        texts = _variants(_texts(), RASA_REQUESTS + WARMUP)
        latencies: list[float] = []
        try:
            for i, text in enumerate(texts):
                t = time.perf_counter()
                parse = await client.parse(text)
                if i >= WARMUP:
                    latencies.append((time.perf_counter() - t) * 1000)
                if parse.source != "rasa":
                    raise RuntimeError("Rasa stopped answering during the benchmark")
        finally:
            await client.aclose()
    return {
        "model": model.name,
        "train_or_cache_s": round(train_s, 1),
        "server_start_s": round(start_s, 1),
        "requests": len(latencies),
        "parse_ms": _percentiles(latencies),
    }


def run() -> dict[str, Any]:
    """Run both benchmarks and write bench/results/nlu.json."""
    results = {"safety": bench_safety(), "rasa": asyncio.run(_bench_rasa())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
