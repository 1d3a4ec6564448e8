"""The sender's send-rate gauge: messages of the last minute, old ones forgotten."""

from __future__ import annotations

import pytest

from bot import ops
from bot.ops import RATE_WINDOW_S, DeliveryMetrics


def test_the_send_rate_counts_the_last_minute_only(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(ops.time, "monotonic", lambda: clock[0])
    metrics = DeliveryMetrics()
    for _ in range(6_000):  # more than 4,096: the old code's trim threshold
        metrics.record_sent("sendMessage", call_s=0.01, queued_s=0.1)
        clock[0] += 0.005  # 200 per second, 30 s in all
    assert metrics.rate() == pytest.approx(6_000 / RATE_WINDOW_S)
    clock[0] += RATE_WINDOW_S - 15  # the first half of the sends is now older than a minute
    assert metrics.rate() == pytest.approx(3_000 / RATE_WINDOW_S, rel=0.01)
    clock[0] += 60
    assert metrics.rate() == 0.0
    metrics.record_sent("sendMessage", call_s=0.01, queued_s=None)
    assert metrics.rate() == pytest.approx(1 / RATE_WINDOW_S)
