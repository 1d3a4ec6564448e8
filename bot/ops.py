"""Operations: Prometheus metrics, health and readiness checks, JSON log lines.

Everything here is about the process, never about what a pupil wrote: metrics carry methods and
outcomes, log lines carry pseudonyms and ids.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from store import repo
from store.db import Sessions

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DeliveryMetrics",
    "JsonFormatter",
    "Readiness",
    "check_readiness",
    "ops_routes",
    "render_metrics",
    "split_listen",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RATE_WINDOW_S = 60.0


class DeliveryMetrics:
    """Counters and histograms of one process (each worker exposes its own /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sent = Counter(
            "leerbot_messages_sent",
            "Bot API calls from the outbox that Telegram accepted",
            ["method"],
            registry=r,
        )
        self.retry_after = Counter(
            "leerbot_send_retry_after", "429 answers (RetryAfter) from Telegram", registry=r
        )
        self.errors = Counter(
            "leerbot_send_errors", "failed Bot API calls from the outbox", ["kind"], registry=r
        )
        self.blocked = Counter("leerbot_chats_blocked", "chats found blocked (403)", registry=r)
        self.send_seconds = Histogram(
            "leerbot_send_seconds",
            "duration of one Bot API call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "leerbot_outbox_wait_seconds",
            "from commit (queued) to accepted by Telegram",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.record_gap = Histogram(
            "leerbot_send_record_seconds",
            "from Telegram's answer "
            "to the sent mark committed: a crash inside this gap "
            "sends that message again",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.update_seconds = Histogram(
            "leerbot_update_seconds",
            "handling of one inbound update (transaction included)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.updates = Counter(
            "leerbot_updates", "inbound updates handled", ["outcome"], registry=r
        )
        self.quick_presses = Counter(
            "leerbot_quick_presses",
            "pressed buttons the quick way (store/lean.py) handled, or left to the normal way",
            ["outcome"],
            registry=r,
        )
        self.backlog = Gauge(
            "leerbot_outbox_backlog", "messages waiting in the outbox", ["state"], registry=r
        )
        self.send_rate = Gauge(
            "leerbot_send_rate",
            "messages sent per second over the last minute (this process)",
            registry=r,
        )
        self._recent: deque[float] = deque()  # send times of the last RATE_WINDOW_S

    def record_sent(self, method: str, *, call_s: float, queued_s: float | None) -> None:
        """One message accepted by Telegram."""
        self.sent.labels(method=method).inc()
        self.send_seconds.observe(call_s)
        if queued_s is not None:
            self.queue_seconds.observe(max(0.0, queued_s))
        now = time.monotonic()
        self._recent.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        # Oldest first: drop from the left, so each send time is dropped once (a list
        # rebuilt per send was a twentieth of the sender's CPU at 1,000 pupils).
        cutoff, recent = now - RATE_WINDOW_S, self._recent
        while recent and recent[0] < cutoff:
            recent.popleft()

    def rate(self) -> float:
        """Messages per second over the last minute."""
        now = time.monotonic()
        self._trim(now)
        return len(self._recent) / RATE_WINDOW_S


async def render_metrics(metrics: DeliveryMetrics, sessions: Sessions | None) -> bytes:
    """The Prometheus text page, with the backlog read from the database just now."""
    if sessions is not None:
        try:
            async with sessions() as session:
                counts = await repo.outbox_counts(session, now=datetime.now(UTC))
            for state, value in counts.items():
                metrics.backlog.labels(state=state).set(value)
        except Exception:  # a scrape must not fail because the database hiccups
            logging.getLogger("leerbot.ops").warning("metrics: outbox backlog unavailable")
    metrics.send_rate.set(metrics.rate())
    return generate_latest(metrics.registry)


@dataclass
class Readiness:
    """What /readyz found: ready means updates can be taken and answered."""

    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)


async def check_readiness(
    *, sessions: Sessions, rasa_url: str | None, max_lag_s: float, timeout_s: float = 2.0
) -> Readiness:
    """Database (required), sender lag (required), Rasa (reported; the bot degrades without)."""
    checks: dict[str, Any] = {}
    ready = True
    now = datetime.now(UTC)
    try:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            counts = await repo.outbox_counts(session, now=now)
            oldest = await repo.oldest_due_message(session, now=now)
        checks["database"] = "ok"
        lag = (now - oldest).total_seconds() if oldest is not None else 0.0
        checks["outbox"] = {**counts, "oldest_due_s": round(max(0.0, lag), 1)}
        if lag > max_lag_s:
            ready = False
            checks["outbox"]["problem"] = f"a message waits longer than {max_lag_s:.0f} s"
    except Exception as exc:
        ready = False
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if rasa_url:
        # Rasa down is not "not ready": safety rules run in process and buttons still work.
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                reply = await client.get(f"{rasa_url.rstrip('/')}/status")
            checks["rasa"] = "ok" if reply.status_code == 200 else f"HTTP {reply.status_code}"
        except httpx.HTTPError as exc:
            checks["rasa"] = f"degraded: {type(exc).__name__}"
    return Readiness(ready=ready, checks=checks)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception type, not text)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def ops_routes(
    *,
    metrics: DeliveryMetrics,
    sessions: Callable[[], Sessions | None],
    rasa_url: str | None,
    max_lag_s: float = 300.0,
) -> list[Route]:
    """/healthz (the process answers), /readyz (it can do its work) and /metrics."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        current = sessions()
        if current is None:
            return JSONResponse({"ready": False, "checks": {"startup": "not finished"}}, 503)
        found = await check_readiness(sessions=current, rasa_url=rasa_url, max_lag_s=max_lag_s)
        return JSONResponse(
            {"ready": found.ready, "checks": found.checks}, 200 if found.ready else 503
        )

    async def metrics_page(_request: Request) -> Response:
        body = await render_metrics(metrics, sessions())
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
    ]


def split_listen(listen: str) -> tuple[str, int]:
    """ "host:port" → (host, port), with a one-line error for anything else."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"listen address must look like HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)
