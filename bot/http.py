"""python-telegram-bot's Bot API transport over aiohttp (PTB's `BaseRequest` interface).

PTB ships an httpx transport. Measured here against the sandbox (one process, 8 connections,
bench notes in README "Benchmarks"), an httpx call cost 1.5-2.6 ms of CPU and an aiohttp call
0.26-0.75 ms: httpx's pool walks its connections and its queue of waiting requests on every
request. The bot and the sender make two Bot API calls per pressed button between them, so
the transport was half of the bot's CPU. `LEERBOT_HTTP_CLIENT=httpx` goes back to PTB's own.
"""

from __future__ import annotations

from typing import Literal

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

HttpClient = Literal["aiohttp", "httpx"]


class AiohttpRequest(BaseRequest):
    """A PTB request backend on one aiohttp session with a bounded connection pool.

    Timeouts map onto aiohttp's: `connect_timeout` → `sock_connect`, `read_timeout` →
    `sock_read` (per read, as httpx counts it), `pool_timeout` + `connect_timeout` →
    `connect` (waiting for a pooled connection included). aiohttp has no write timeout; an
    upload (a file) has `media_timeout` as its total instead.
    """

    def __init__(
        self,
        *,
        pool_size: int = 8,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_timeout: float = 60.0,
    ) -> None:
        self._pool_size = pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_timeout = media_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """See `BaseRequest.read_timeout` (PTB adds it to a long poll's own timeout)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (inside the running loop, as aiohttp wants)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See `BaseRequest.do_request`: form fields, or multipart when files go along."""
        del write_timeout  # aiohttp has none; see the class docstring
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        files = request_data is not None and request_data.contains_files
        timeout = aiohttp.ClientTimeout(
            total=self._media_timeout if files else None,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            fields = request_data.json_parameters
            if files:
                form = aiohttp.FormData(fields)
                for name, (filename, content, mime) in request_data.multipart_data.items():
                    form.add_field(name, content, filename=filename, content_type=mime)
                data = form
            else:
                data = fields
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as res:
                return res.status, await res.read()
        except TimeoutError as exc:
            raise TimedOut(f"aiohttp: {exc.__class__.__name__}") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc


def bot_request(
    client: HttpClient,
    *,
    pool_size: int,
    read_timeout: float | None,
    connect_timeout: float = 5.0,
    pool_timeout: float = 10.0,
) -> BaseRequest:
    """The transport a Leerbot process talks to the Bot API with."""
    if client == "httpx":
        return HTTPXRequest(
            connection_pool_size=pool_size,
            read_timeout=read_timeout,
            write_timeout=15.0,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
    return AiohttpRequest(
        pool_size=pool_size,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        pool_timeout=pool_timeout,
    )
