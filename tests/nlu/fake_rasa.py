"""A tiny HTTP server on 127.0.0.1 that plays Rasa's /model/parse: answers, stalls or fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["ok", "slow", "error", "garbage"]


@dataclass
class FakeRasa:
    """What the server does next (`mode`), and what it has seen (`requests`)."""

    url: str = ""
    mode: Mode = "ok"
    intent: str = "pause"
    confidence: float = 0.93
    stall: float = 5.0
    requests: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            self.requests.append(json.loads(body or b"{}").get("text", ""))
            if self.mode == "slow":
                await asyncio.sleep(self.stall)
            if self.mode == "error":
                status, payload = "500 Internal Server Error", b'{"error": "boom"}'
            elif self.mode == "garbage":
                status, payload = "200 OK", b"<html>not json</html>"
            else:
                status = "200 OK"
                payload = json.dumps(
                    {
                        "text": self.requests[-1],
                        "intent": {"name": self.intent, "confidence": self.confidence},
                        "entities": [],
                        "intent_ranking": [{"name": self.intent, "confidence": self.confidence}],
                    }
                ).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def fake_rasa() -> AsyncIterator[FakeRasa]:
    """Run a FakeRasa on a free port for the duration of the block."""
    fake = FakeRasa()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)
