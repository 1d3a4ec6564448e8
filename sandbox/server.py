"""The sandbox: a local Telegram Bot API emulator with a phone-like web chat (`leerbot sandbox`).

Point python-telegram-bot at it with `base_url="http://HOST:PORT/bot"` and
`base_file_url="http://HOST:PORT/file/bot"`. Pupils chat through the page at `/`; tests and
benchmarks drive it through `/sandbox/api/…` (see `sandbox.driver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from leerbot.heap import freeze_survivors
from sandbox.botapi import HANDLERS, Call, Params, Upload
from sandbox.control import ROUTES as CONTROL_ROUTES
from sandbox.errors import ApiError
from sandbox.state import SEND_METHODS, BotState, SandboxState

__all__ = ["SandboxState", "create_app", "run", "running", "serve_in_loop"]

STATIC = Path(__file__).resolve().parent / "static"
JSON_HEADERS = {"content-type": "application/json"}
# What nginx in front of api.telegram.org answers when the backend is down.
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0"
    b"</center>\r\n</body>\r\n</html>\r\n"
)
MAX_FORM_FILES = 20
START_TIMEOUT = 10.0


def _dump(data: Any) -> bytes:
    return msgspec.json.encode(data)  # compact UTF-8, like json.dumps(ensure_ascii=False)


def _error(err: ApiError) -> Response:
    if err.code >= 500:
        return Response(BAD_GATEWAY_HTML, status_code=err.code, media_type="text/html")
    return Response(_dump(err.payload()), status_code=err.code, headers=JSON_HEADERS)


async def _read_params(request: Request) -> Params:
    """Query string, then JSON body or (multipart) form on top, as Telegram accepts them all."""
    values: dict[str, Any] = dict(request.query_params)
    files: dict[str, Upload] = {}
    if request.method != "POST":
        return Params(values)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: can't parse JSON")
            values.update(body)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        # What PTB sends for most calls: parse_qsl reads it in a fraction of the time the
        # streaming form parser takes (a tenth of the sandbox's CPU under load); the last
        # value of a repeated field wins, as below.
        raw = await request.body()
        try:
            values.update(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise ApiError(400, "Bad Request: can't decode the form") from None
    elif content_type.startswith("multipart/form-data"):
        async with request.form(max_files=MAX_FORM_FILES) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[key] = Upload(value.filename, await value.read(), value.content_type)
                else:
                    values[key] = value
    return Params(values, files)


async def bot_api(request: Request) -> Response:
    """`/bot{token}/{method}`: one Bot API call, answered exactly like Telegram's envelope."""
    state: SandboxState = request.app.state.sandbox
    state.stats["requests"] += 1
    try:
        bot = state.bot_for_token(request.path_params["token"])
    except ApiError as err:
        return _error(err)
    bot.stats["requests"] += 1
    method = request.path_params["method"]
    name = method.lower()
    handler = HANDLERS.get(name)
    if handler is None:
        return _error(ApiError(404, "Not Found: method not found"))
    call: Call | None = None
    try:
        call = Call(state=state, bot=bot, params=await _read_params(request), method=method)
        # Known before any check, so even an injected fault is logged against its chat.
        call.chat_id = call.params.values.get("chat_id")
        state.check_faults(name)
        result = await handler(call)
    except ApiError as err:
        _account(state, bot, method, call, err)
        return _error(err)
    _account(state, bot, method, call, None)
    return Response(b'{"ok":true,"result":' + _dump(result) + b"}", headers=JSON_HEADERS)


def _account(
    state: SandboxState, bot: BotState, method: str, call: Call | None, err: ApiError | None
) -> None:
    """Counters and the call log (getUpdates is left out: it is polling noise)."""
    name = method.lower()
    if err is not None:
        key = f"http_{err.code}"
        if key in state.stats:
            state.count(bot, key)
        if name in SEND_METHODS:
            state.count(bot, "sends_failed")
    elif name in SEND_METHODS:
        state.count(bot, "sends_ok")
    if name == "getupdates":
        return
    chat_id = call.chat_id if call is not None else None
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        chat_id = int(chat_id)
    state.log_call(
        bot,
        method=method,
        chat_id=chat_id,
        outcome="ok" if err is None else str(err.code),
        error=err,
        message_id=call.message_id if call is not None else None,
    )


async def file_download(request: Request) -> Response:
    """`/file/bot{token}/{file_path}`: bytes of a file, as api.telegram.org serves them."""
    state: SandboxState = request.app.state.sandbox
    try:
        state.bot_for_token(request.path_params["token"])
    except ApiError as err:
        return _error(err)
    stored = state.files_by_path.get(request.path_params["file_path"])
    if stored is None:
        return _error(ApiError(404, "Not Found"))
    return Response(stored.data, media_type=stored.mime_type or "application/octet-stream")


async def page(_request: Request) -> Response:
    """The web chat."""
    return FileResponse(STATIC / "chat.html", media_type="text/html")


async def _control_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101  # registered for ApiError only
    return JSONResponse({"error": exc.description}, status_code=exc.code)


def create_app(
    *,
    token: str | None = None,
    rate_limits: bool = False,
    bot_username: str = "leerbot_sandbox_bot",
) -> Starlette:
    """The sandbox ASGI app; its state is `app.state.sandbox` (a `SandboxState`).

    With `token=None` any well-formed token is accepted and gets its own bot.
    """
    state = SandboxState(token=token, rate_limits=rate_limits, bot_username=bot_username)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close_waiters()
            await state.aclose()

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/bot{token}/{method}", bot_api, methods=["GET", "POST"]),
            Route("/file/bot{token}/{file_path:path}", file_download, methods=["GET"]),
            *CONTROL_ROUTES,
            Mount("/sandbox/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={ApiError: _control_error},
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.sandbox_rate_limits = rate_limits
    return app


class _InLoopServer(uvicorn.Server):
    """uvicorn without signal handling: the host program keeps Ctrl-C; stop is explicit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_in_loop(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    before_stop: Callable[[], None] | None = None,
) -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn inside the running event loop; yields its base URL.

    Port 0 picks a free port. `before_stop` runs first on exit (e.g. to end long polls).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = _InLoopServer(config)
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{host}:{port}")
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # re-raise why it could not start
                    raise RuntimeError(f"server on {host}:{port} stopped during start-up")
                await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10.0)


@asynccontextmanager
async def running(
    *,
    token: str | None = None,
    rate_limits: bool = False,
    bot_username: str = "leerbot_sandbox_bot",
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[tuple[str, Starlette]]:
    """A fresh sandbox served in this event loop; yields (base_url, app)."""
    app = create_app(token=token, rate_limits=rate_limits, bot_username=bot_username)
    # Long polls in flight answer at once, so shutdown does not wait for them.
    async with serve_in_loop(
        app, host=host, port=port, before_stop=app.state.sandbox.close_waiters
    ) as url:
        yield url, app


def run(*, host: str, port: int, token: str | None, rate_limits: bool) -> None:
    """Serve the sandbox until interrupted; prints the API URL for the bot and the web chat."""
    app = create_app(token=token, rate_limits=rate_limits)
    # The timeline of every chat stays in memory: without this, a full collection that walks
    # it pauses every chat at once (100-150 ms at 1,000 pupils; leerbot/heap.py).
    freeze_survivors()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104  # display only
    sys.stdout.write(
        f"LEERBOT_TELEGRAM_API_URL=http://{shown}:{port}/bot\nWeb chat: http://{shown}:{port}/\n"
    )
    sys.stdout.flush()
    # Long polls would hold a graceful shutdown for up to a minute; cut them short.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
