"""`leerbot nlu train|serve|parse`: the Rasa model and server, and a line-by-line parse tool."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from leerbot.settings import load_settings

if TYPE_CHECKING:
    from nlu.client import RasaClient

nlu_app = typer.Typer(
    help="NLU: train and run the Rasa model, parse text from stdin.", no_args_is_help=True
)


def _logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )


def _fail(command: str, exc: Exception) -> None:
    typer.echo(f"leerbot nlu {command}: {exc}", err=True)
    raise typer.Exit(1) from exc


@nlu_app.command()
def train(
    force: Annotated[
        bool, typer.Option("--force", help="Train again even if a model for this data exists.")
    ] = False,
) -> None:
    """Train the Rasa model if nlu/ changed (cached by content hash); print its path."""
    from nlu import lifecycle  # imported when used: every `leerbot` command loads this module

    _logging()
    try:
        model = lifecycle.train(force=force)
    except lifecycle.RasaSetupError as exc:
        _fail("train", exc)
        return
    typer.echo(str(model))


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # `leerbot up` and service managers send SIGTERM: unwind so Rasa is stopped too.
    raise SystemExit(0)


@nlu_app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="Port (default: the one in LEERBOT_RASA_URL, else 5005).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface (default: the host in LEERBOT_RASA_URL if it is local)."),
    ] = None,
) -> None:
    """Train if needed, then run the Rasa server until Ctrl-C."""
    from nlu import lifecycle

    _logging()
    url = urlsplit(load_settings().rasa_url)
    port = port or url.port or 5005
    if host is None:
        local = {"127.0.0.1", "localhost", "0.0.0.0", "::1"}  # noqa: S104 (listed, not bound)
        host = url.hostname if url.hostname in local else "127.0.0.1"
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A shell that starts us in the background ignores SIGINT for us; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server = lifecycle.start_server(port=port, host=host, quiet=False, console=True)
    except lifecycle.RasaSetupError as exc:
        _fail("serve", exc)
        return
    typer.echo(f"Rasa is ready on {server.url} (model {server.model.name}); Ctrl-C stops it")
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
    if code:
        raise typer.Exit(code)


async def _parse_line(client: RasaClient, text: str) -> dict[str, Any]:
    from nlu.safety import assess, combine

    safety = assess(text)
    parse = await client.parse(text)
    combined = combine(safety, parse)
    return {
        "text": text,
        "intent": parse.intent,
        "confidence": round(parse.confidence, 4),
        "crisis": combined.crisis,
        "category": combined.category.value if combined.category else None,
        "level": combined.level.value,
        "source": parse.source,
    }


@nlu_app.command()
def parse() -> None:
    """Read lines on stdin and print one JSON object per line (Rasa, else the fallback)."""
    from nlu.client import RasaClient

    settings = load_settings()
    out = sys.stdout.buffer
    with asyncio.Runner() as runner:
        client = RasaClient(settings.rasa_url, timeout=settings.rasa_timeout)
        try:
            while line := sys.stdin.buffer.readline():
                # Bytes in, so a broken UTF-8 sequence is one odd line, not a crash.
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                result = runner.run(_parse_line(client, text))
                out.write(json.dumps(result, ensure_ascii=False).encode("utf-8") + b"\n")
                out.flush()
        finally:
            runner.run(client.aclose())
