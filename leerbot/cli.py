"""`leerbot`: the one command-line entry point (operator contract in design.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from leerbot.settings import Settings, load_settings

T = TypeVar("T")

app = typer.Typer(
    help="Leerbot: learning-career reflection on Telegram, with a warm handover.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
school_app = typer.Typer(help="Schools.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
class_app = typer.Typer(help="Classes and join links.", no_args_is_help=True)
content_app = typer.Typer(help="The didactic package (modules).", no_args_is_help=True)
flags_app = typer.Typer(help="Flags for counsellors.", no_args_is_help=True)
retention_app = typer.Typer(
    help="Data retention (see leerbot/retention.py).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(school_app, name="school")
app.add_typer(staff_app, name="staff")
app.add_typer(class_app, name="class")
app.add_typer(content_app, name="content")
app.add_typer(flags_app, name="flags")
app.add_typer(retention_app, name="retention")

try:
    from nlu.commands import nlu_app

    app.add_typer(nlu_app, name="nlu")
except ImportError:  # pragma: no cover - the NLU commands ship with the nlu package
    pass


def fail(message: str, code: int = 1) -> None:
    """One line naming the problem, then a non-zero exit."""
    print(f"leerbot: {message}", file=sys.stderr)
    raise typer.Exit(code)


def settings() -> Settings:
    """Settings from the environment (exits with one line on a bad value)."""
    return load_settings()


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Logs on stderr (`json`: one object per line), never pupil text (see bot/ops.py)."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if fmt == "json":
        from bot.ops import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one coroutine to completion."""
    return asyncio.run(factory())


async def _with_session(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    from store.db import make_engine, make_sessions

    engine = make_engine(url)
    try:
        async with make_sessions(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


def store_call(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` in one transaction; store errors become one-line exits."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from store.repo import StoreError

    url = settings().database_url
    try:
        return asyncio.run(_with_session(url, work))
    except StoreError as exc:
        fail(str(exc))
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        fail(f"database error ({reason}); did you run 'leerbot db upgrade'?")
    raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------ db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (Alembic)."""
    from store.db import upgrade

    url = settings().database_url
    try:
        upgrade(url)
    except Exception as exc:
        fail(f"cannot migrate {url.split('@')[-1]}: {str(exc).splitlines()[0]}")
    print("database is up to date")


# ------------------------------------------------------------------ schools and staff


@school_app.command("add")
def school_add(name: str, region: Annotated[str, typer.Option(help="BE or NL")] = "BE") -> None:
    """Add a school."""
    from store import repo

    if region.upper() not in {"BE", "NL"}:
        fail(f"unknown region {region!r}: use BE or NL")

    async def work(session: Any) -> str:
        school = await repo.add_school(session, name=name, region=region)
        return school.name

    print(f"school added: {store_call(work)}")


def hash_password(password: str) -> str:
    """An argon2 hash."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


@staff_app.command("add")
def staff_add(
    school: Annotated[str, typer.Option(help="school name")],
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="teacher, counsellor or admin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Add a staff account."""
    from store import repo

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            fail("password must be at least 8 characters")
    hashed = hash_password(password) if password else None

    async def work(session: Any) -> str:
        found = await repo.school_by_name(session, school)
        if found is None:
            raise repo.StoreError(f"unknown school {school!r}")
        staff = await repo.add_staff(
            session, school=found, email=email, name=name, role=role, password_hash=hashed
        )
        return f"{staff.email} ({staff.role})"

    print(f"staff added: {store_call(work)}")


@staff_app.command("link")
def staff_link(email: Annotated[str, typer.Option()]) -> None:
    """Print a one-time code the staff member sends to the bot (/start CODE)."""
    from store import repo

    async def work(session: Any) -> str:
        staff = await repo.staff_by_email(session, email)
        if staff is None:
            raise repo.StoreError(f"unknown staff e-mail {email!r}")
        return await repo.new_staff_link_code(session, staff, now=datetime.now(UTC))

    code = store_call(work)
    print(code)
    print(f"send to the bot: /start {code}   or open {deep_link(code)}", file=sys.stderr)


# ------------------------------------------------------------------ classes and assignments


def bot_username(cfg: Settings) -> str:
    """The bot's username for deep links: configured, else asked with getMe, else a default."""
    from leerbot import links

    return links.bot_username(cfg)


def deep_link(code: str, cfg: Settings | None = None) -> str:
    """https://t.me/<bot>?start=<code>"""
    from leerbot import links

    return links.deep_link(bot_username(cfg or settings()), code)


@class_app.command("add")
def class_add(
    school: Annotated[str, typer.Option(help="school name")],
    name: Annotated[str, typer.Option(help="class name, e.g. 5BSO-A")],
    teacher: Annotated[str, typer.Option(help="the teacher's e-mail")],
) -> None:
    """Add a class; prints its join code and deep link."""
    from store import repo

    async def work(session: Any) -> str:
        found = await repo.school_by_name(session, school)
        if found is None:
            raise repo.StoreError(f"unknown school {school!r}")
        staff = await repo.staff_by_email(session, teacher)
        if staff is None or staff.school_id != found.id:
            raise repo.StoreError(f"unknown teacher {teacher!r} in school {school!r}")
        klass = await repo.add_class(session, school=found, name=name, teacher=staff)
        return klass.join_code

    code = store_call(work)
    print(f"join code: {code}")
    print(f"deep link: {deep_link(code)}")


def parse_due(value: str | None) -> date | None:
    """YYYY-MM-DD, or a one-line error."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"bad date {value!r}: use YYYY-MM-DD, e.g. 2026-12-18")
    return None  # pragma: no cover


@app.command("assign")
def assign_cmd(
    klass: Annotated[str, typer.Option("--class", help="class name")],
    module: Annotated[str, typer.Option(help="module id, e.g. wie-ben-ik")],
    due: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    school: Annotated[str | None, typer.Option(help="school, when class names repeat")] = None,
) -> None:
    """Assign a module to a class; pupils are notified through the bot."""
    from bot.assign import assign_module
    from content.loader import ContentError, load_catalog
    from store import repo

    due_date = parse_due(due)
    try:
        catalog = load_catalog()
    except ContentError as exc:
        fail(f"content is invalid: {exc.problems[0]}")
    if module not in catalog.modules:
        fail(f"unknown module {module!r}; known: {', '.join(sorted(catalog.modules))}")
    cfg = settings()

    async def work(session: Any) -> tuple[bool, int]:
        school_id = None
        if school is not None:
            found = await repo.school_by_name(session, school)
            if found is None:
                raise repo.StoreError(f"unknown school {school!r}")
            school_id = found.id
        classes = await repo.classes_by_name(session, klass, school_id)
        if not classes:
            raise repo.StoreError(f"unknown class {klass!r}")
        if len(classes) > 1:
            raise repo.StoreError(f"class {klass!r} exists in several schools: add --school")
        return await assign_module(
            session,
            catalog=catalog,
            secret=cfg.secret,
            klass=classes[0],
            module_id=module,
            due=due_date,
        )

    new, notified = store_call(work)
    verb = "assigned" if new else "updated"
    print(
        f"{verb} {module} to {klass}"
        + (f" (due {due_date})" if due_date else "")
        + f"; {notified} pupils notified"
    )


# ------------------------------------------------------------------ content


@content_app.command("check")
def content_check(paths: Annotated[list[Path] | None, typer.Argument()] = None) -> None:
    """Validate modules; one line per problem, non-zero exit when any."""
    from content.check import check_paths
    from content.loader import MODULES_DIR

    problems = check_paths(paths or [MODULES_DIR])
    for line in problems:
        print(line)
    if problems:
        raise typer.Exit(1)
    print("content ok", file=sys.stderr)


@content_app.command("schema")
def content_schema() -> None:
    """Print the JSON Schema of a module file."""
    from content.models import Module

    print(json.dumps(Module.model_json_schema(by_alias=True), indent=2, ensure_ascii=False))


# ------------------------------------------------------------------ flags


@flags_app.command("list")
def flags_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Open and closed flags, newest first."""
    from bot.flagview import flag_rows

    rows = store_call(flag_rows)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=None))
        return
    for row in rows:
        print(
            f"#{row['id']:<5} {row['type']:<12} {row['urgency']:<8} {row['state']:<15} "
            f"{row['pupil']:<10} {row['class'] or '-':<10} {row['created_at']}"
        )


# ------------------------------------------------------------------ retention and health


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count, delete nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    now: Annotated[str | None, typer.Option(help="pretend it is this ISO date/time")] = None,
) -> None:
    """Delete transcripts, answers and inactive pupils older than the retention period."""
    from zoneinfo import ZoneInfo

    from leerbot.retention import run_retention, summary
    from store.db import make_engine, make_sessions

    cfg = settings()
    zone = ZoneInfo(cfg.timezone)
    moment = datetime.now(UTC)
    if now is not None:
        try:
            moment = datetime.fromisoformat(now)
        except ValueError:
            fail(f"bad --now {now!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM")
        moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)

    async def work() -> dict[str, Any]:
        engine = make_engine(cfg.database_url)
        try:
            return await run_retention(
                make_sessions(engine),
                now=moment,
                zone=zone,
                retention_days=cfg.retention_days,
                dry_run=dry_run,
            )
        finally:
            await engine.dispose()

    report = asyncio.run(work())
    print(json.dumps(report) if as_json else summary(report))


@app.command("health")
def health_cmd(
    component: Annotated[str, typer.Option(help="db, sender, bot, dashboard or rasa")],
    url: Annotated[str | None, typer.Option(help="HTTP endpoint to check instead")] = None,
    max_lag: Annotated[float, typer.Option(help="sender: seconds a due message may wait")] = 900.0,
) -> None:
    """Exit 0 when a component is healthy (for container health checks)."""
    from leerbot.health import Component, check

    try:
        which = Component(component)
    except ValueError:
        fail(f"unknown component {component!r}: use {', '.join(c.value for c in Component)}")
        return
    problem = asyncio.run(check(which, settings(), url=url, max_lag=max_lag))
    if problem:
        fail(f"{which.value} unhealthy: {problem}")
    print(f"{which.value} ok")


# ------------------------------------------------------------------ processes


@app.command("bot")
def bot_cmd(
    webhook: Annotated[bool, typer.Option("--webhook")] = False,
    workers: Annotated[int, typer.Option(min=1, help="webhook worker processes")] = 1,
    with_sender: Annotated[
        bool,
        typer.Option(
            "--with-sender",
            help="webhook, one worker: send from this process too (else run `leerbot sender`)",
        ),
    ] = False,
) -> None:
    """Run the Telegram bot (polling; --webhook for webhook mode)."""
    cfg = settings()
    setup_logging(cfg.log_level, cfg.log_format)
    from content.loader import ContentError, load_catalog

    try:
        load_catalog()
    except ContentError as exc:
        for line in exc.problems:
            print(f"leerbot: content: {line}", file=sys.stderr)
        fail("refusing to start with invalid content (run 'leerbot content check')")
    if webhook:
        from bot.webhook import run_webhook

        try:
            run_webhook(cfg, workers=workers, with_sender=with_sender)
        except ValueError as exc:
            fail(str(exc))
    else:
        if workers != 1 or with_sender:
            fail("--workers and --with-sender are for --webhook; polling always sends itself")
        from bot.app import run_polling

        run_polling(cfg)


@app.command("sender")
def sender_cmd(
    listen: Annotated[
        str, typer.Option(help="HOST:PORT for /healthz, /readyz and /metrics ('' for none)")
    ] = "127.0.0.1:9464",
    wake_stdin: Annotated[
        bool,
        typer.Option(
            "--wake-stdin",
            hidden=True,
            help="run as a bot's child: woken by stdin, stops when it closes",
        ),
    ] = False,
) -> None:
    """Send the outbox to Telegram (the one sending process next to webhook workers)."""
    cfg = settings()
    setup_logging(cfg.log_level, cfg.log_format)
    from bot.sender import run_standalone

    try:
        run_standalone(cfg, listen=listen or None, wake_stdin=wake_stdin)
    except ValueError as exc:
        fail(str(exc))


@app.command("sandbox")
def sandbox_cmd(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8081,
    rate_limits: Annotated[bool, typer.Option("--rate-limits/--no-rate-limits")] = False,
) -> None:
    """Local Bot API emulator with a web chat (prints LEERBOT_TELEGRAM_API_URL)."""
    from sandbox.server import run

    run(host=host, port=port, token=None, rate_limits=rate_limits)


@app.command("dashboard")
def dashboard_cmd(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the staff web app."""
    from urllib.parse import urlsplit

    cfg = settings()
    setup_logging(cfg.log_level)
    parts = urlsplit(cfg.dashboard_url)
    from dashboard.app import run

    run(cfg, host=host or parts.hostname or "127.0.0.1", port=port or parts.port or 8000)


@app.command("up")
def up_cmd(
    no_nlu: Annotated[bool, typer.Option("--no-nlu", help="skip the Rasa server")] = False,
    sandbox_port: Annotated[int, typer.Option(help="port of the sandbox web chat")] = 8081,
) -> None:
    """Everything for a local demo on SQLite: sandbox, bot, dashboard, NLU."""
    from leerbot.up import run_demo

    run_demo(settings(), with_nlu=not no_nlu, sandbox_port=sandbox_port)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
