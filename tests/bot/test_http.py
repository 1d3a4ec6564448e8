"""The aiohttp Bot API transport: PTB's errors for network trouble, both ways of posting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.http import AiohttpRequest, bot_request
from tests.support.sandbox_server import free_port


@asynccontextmanager
async def server(reply: bytes | None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A raw HTTP server on localhost: answers `reply` (or never answers); keeps requests."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        seen.append(head + await reader.readexactly(length))
        if reply is None:
            await asyncio.sleep(30)
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(reply)}\r\n\r\n".encode()
            + reply
        )
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        srv.close()


MESSAGE = json.dumps(
    {"ok": True, "result": {"message_id": 7, "date": 0, "chat": {"id": 42, "type": "private"}}}
).encode()


async def test_form_fields_go_out_and_the_answer_comes_back() -> None:
    async with server(MESSAGE) as (url, seen):
        bot = Bot("1:A", base_url=f"{url}/bot", request=AiohttpRequest())
        await bot.request.initialize()  # no getMe: the server knows one answer only
        try:
            message = await bot.send_message(42, "héhé")
        finally:
            await bot.request.shutdown()
    assert message.message_id == 7
    assert b"POST /bot1:A/sendMessage" in seen[0]
    assert b"application/x-www-form-urlencoded" in seen[0]
    assert seen[0].endswith(b"chat_id=42&text=h%C3%A9h%C3%A9")


async def test_a_file_goes_out_as_multipart() -> None:
    async with server(MESSAGE) as (url, seen):
        bot = Bot("1:A", base_url=f"{url}/bot", request=AiohttpRequest())
        await bot.request.initialize()
        try:
            await bot.send_document(42, document=b"PNGDATA", filename="kaart.png")
        finally:
            await bot.request.shutdown()
    assert b"multipart/form-data" in seen[0]
    assert b'filename="kaart.png"' in seen[0]
    assert b"PNGDATA" in seen[0]


async def test_a_refused_connection_is_a_network_error() -> None:
    request = bot_request("aiohttp", pool_size=2, read_timeout=1)
    await request.initialize()
    try:
        with pytest.raises(NetworkError, match="aiohttp"):
            await request.do_request(f"http://127.0.0.1:{free_port()}/bot1:A/getMe", "POST")
    finally:
        await request.shutdown()


async def test_no_answer_within_the_read_timeout_is_timed_out() -> None:
    async with server(None) as (url, _seen):
        request = AiohttpRequest(read_timeout=0.3)
        await request.initialize()
        try:
            with pytest.raises(TimedOut):
                await request.do_request(f"{url}/bot1:A/getMe", "POST")
        finally:
            await request.shutdown()


async def test_not_initialized_says_so() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:9/x", "POST")
