"""`leerbot up` / `make run`: the whole product on one machine, on SQLite, for a demo."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta

import httpx

from leerbot.settings import Settings

SANDBOX_PORT = 8081
DEMO_SCHOOL = "Demo Campus De Brug"
DEMO_CLASS = "5 BSO Hout"
DEMO_PASSWORD = "leerbot-demo"  # noqa: S105 (local demo accounts only, printed on screen)
DEMO_STAFF = (
    ("leerkracht@demo.school", "An Peeters", "teacher"),
    ("begeleider@demo.school", "Sara Janssens", "counsellor"),
    ("admin@demo.school", "Tom De Smet", "admin"),
)
DEMO_MODULES = ("wie-ben-ik", "hoe-gaat-het-op-school", "wat-vind-ik-belangrijk")


@dataclass
class Seeded:
    """What the demo seed made (or found)."""

    join_code: str
    new: bool


async def seed_demo(settings: Settings) -> Seeded:
    """Demo school, staff, class and assignments; idempotent."""
    from argon2 import PasswordHasher

    from bot.assign import assign_module
    from content.loader import load_catalog
    from store import repo
    from store.db import make_engine, make_sessions

    catalog = load_catalog()
    engine = make_engine(settings.database_url)
    try:
        async with make_sessions(engine).begin() as session:
            school = await repo.school_by_name(session, DEMO_SCHOOL)
            if school is not None:
                classes = await repo.classes_by_name(session, DEMO_CLASS, school.id)
                return Seeded(join_code=classes[0].join_code, new=False)
            school = await repo.add_school(session, name=DEMO_SCHOOL)
            hashed = await asyncio.to_thread(PasswordHasher().hash, DEMO_PASSWORD)
            staff = {}
            for email, name, role in DEMO_STAFF:
                staff[role] = await repo.add_staff(
                    session, school=school, email=email, name=name, role=role, password_hash=hashed
                )
            klass = await repo.add_class(
                session, school=school, name=DEMO_CLASS, teacher=staff["teacher"]
            )
            due = date.today() + timedelta(days=14)  # noqa: DTZ011 (a local demo date)
            for module in DEMO_MODULES:
                if module in catalog.modules:
                    await assign_module(
                        session,
                        catalog=catalog,
                        secret=settings.secret,
                        klass=klass,
                        module_id=module,
                        due=due,
                    )
            return Seeded(join_code=klass.join_code, new=True)
    finally:
        await engine.dispose()


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return True
        time.sleep(0.3)
    return False


def run_demo(
    settings: Settings, *, with_nlu: bool = True, sandbox_port: int = SANDBOX_PORT
) -> None:
    """Start sandbox, NLU, bot and dashboard; print the URLs; stop all on Ctrl-C."""
    from store.db import upgrade

    if not settings.database_url.startswith("sqlite"):
        print("leerbot up: the demo runs on SQLite; unset LEERBOT_DATABASE_URL", file=sys.stderr)
        raise SystemExit(2)
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env_overrides = {
        "LEERBOT_TELEGRAM_API_URL": f"{sandbox_url}/bot",
        "LEERBOT_BOT_USERNAME": "leerbot_sandbox_bot",
        "LEERBOT_DATABASE_URL": settings.database_url,
        "LEERBOT_RASA_URL": settings.rasa_url,
        "LEERBOT_DASHBOARD_URL": settings.dashboard_url,
    }
    _stop_on_signals()
    upgrade(settings.database_url)
    seeded = asyncio.run(seed_demo(settings))
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    env = _child_env(env_overrides)

    def start(name: str, *args: str) -> None:
        procs.append(
            (
                name,
                subprocess.Popen(
                    [sys.executable, "-m", "leerbot.cli", *args],
                    env=env,
                ),
            )
        )

    try:
        start("sandbox", "sandbox", "--port", str(sandbox_port))
        if not _wait_http(f"{sandbox_url}/", 30):
            raise SystemExit("leerbot up: the sandbox did not start")
        if with_nlu:
            start("nlu", "nlu", "serve")
        start("bot", "bot")
        start("dashboard", "dashboard")
        _wait_http(f"{settings.dashboard_url}/healthz", 30)
        link = f"https://t.me/leerbot_sandbox_bot?start={seeded.join_code}"
        print(
            f"""
Leerbot demo is running (Ctrl-C stops everything)
  web chat (sandbox):  {sandbox_url}/   join code {seeded.join_code}
  demo join link:      {link}
  dashboard:           {settings.dashboard_url}/
     leerkracht@demo.school / begeleider@demo.school / admin@demo.school, password {DEMO_PASSWORD}
  Bot API for the bot: LEERBOT_TELEGRAM_API_URL={sandbox_url}/bot
  NLU (Rasa):          {settings.rasa_url if with_nlu else "off (--no-nlu)"}
""",
            flush=True,
        )
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        dead = [name for name, p in procs if p.poll() is not None]
        print(f"leerbot up: {', '.join(dead)} stopped; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        for _, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10  # one deadline for all, then whatever is left dies
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the demo and its children.

    Also when it was started with SIGINT ignored, as a shell does for a background job
    (`make run &`): Python then leaves Ctrl-C ignored, and so would every child.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)  # raises KeyboardInterrupt


def _child_env(overrides: dict[str, str]) -> dict[str, str]:
    import os

    env = dict(os.environ)  # noqa: TID251 (child processes inherit the operator's environment)
    env.update(overrides)
    return env
