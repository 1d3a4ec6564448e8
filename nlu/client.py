"""Async client for Rasa's `POST /model/parse`, with a short timeout and a circuit breaker.

Rasa is a help, never a dependency: every failure (refused, slow, HTTP error, bad JSON) gives
a keyword parse from nlu/fallback.py instead, and `parse` never raises. After a failure Rasa
is skipped for `retry_after` seconds, then tried again. One log line when Rasa goes away and
one when it is back, never pupil text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from nlu.fallback import classify
from nlu.types import INTENTS, Parse

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 0.8
RETRY_AFTER = 15.0
MAX_CHARS = 2000  # Rasa slows down on essays; the intent is in the first lines anyway
_KNOWN = frozenset(INTENTS)


class RasaClient:
    """Parse pupil text with a Rasa server, falling back to keywords when it is unavailable."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry_after = retry_after
        self._clock = clock
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._down = False  # an outage is going on (logged once)
        self._retry_at = 0.0  # skip Rasa until this moment

    @property
    def available(self) -> bool:
        """False while the circuit breaker keeps Rasa out after a failure."""
        return not self._down

    async def parse(self, text: str) -> Parse:
        """Rasa's intent for `text`, or the keyword fallback; never raises."""
        if not text.strip():
            return classify(text)
        if self._down:
            now = self._clock()
            if now < self._retry_at:
                return classify(text)
            # One caller probes; the others keep using the fallback until it answers.
            self._retry_at = now + self.retry_after
        try:
            # A lone surrogate (broken emoji) cannot be sent as UTF-8; it is not Rasa's fault.
            parse = await self._ask(text[:MAX_CHARS].encode("utf-8", "replace").decode())
        except Exception as exc:  # any failure at all means: use the fallback
            self._failed(exc)
            return classify(text)
        if self._down:
            self._down = False
            log.info("Rasa back at %s", self.base_url)
        return parse

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._own_http:
            await self._http.aclose()

    async def _ask(self, text: str) -> Parse:
        reply = await self._http.post(
            f"{self.base_url}/model/parse", json={"text": text}, timeout=self.timeout
        )
        reply.raise_for_status()
        return _to_parse(reply.json())

    def _failed(self, exc: Exception) -> None:
        self._retry_at = self._clock() + self.retry_after
        if not self._down:
            self._down = True
            log.warning(
                "Rasa unavailable, using fallback (%s at %s; retrying every %.0f s)",
                type(exc).__name__,
                self.base_url,
                self.retry_after,
            )


def _to_parse(body: Any) -> Parse:  # JSON from the wire: a bad shape raises, which is a failure
    intent = body["intent"]
    name = str(intent["name"])
    confidence = float(intent["confidence"])
    if name == "nlu_fallback" or name not in _KNOWN:
        # FallbackClassifier says "not sure": that is our out_of_scope.
        name = "out_of_scope"
    entities = tuple((str(e["entity"]), str(e["value"])) for e in body.get("entities") or ())
    return Parse(
        intent=name, confidence=max(0.0, min(confidence, 1.0)), source="rasa", entities=entities
    )
