"""Logs name pupils by pseudonym only: never a Telegram id, chat id or name."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from tests.privacy.conftest import answer_first_steps
from tests.support import updates
from tests.support.ptb import BotRig

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "flows", "store", "nlu", "dashboard", "leerbot", "content")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
# Identifiers that are, or lead to, who a pupil is on Telegram.
IDENTIFYING = {
    "telegram_user_id",
    "user_id",
    "chat_id",
    "first_name",
    "last_name",
    "username",
    "phone_number",
    "from_user",
    "effective_user",
    "effective_chat",
}


def _names(node: ast.AST) -> set[str]:
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def identifying_log_calls(path: Path) -> list[str]:
    """`log.info("...", chat_id)`-style calls in one file, as "file:line: names"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"log", "logger", "_log", "LOG"}
        ):
            continue
        args = node.args[1:] + [k.value for k in node.keywords if k.arg != "exc_info"]
        if node.args and isinstance(node.args[0], ast.JoinedStr):
            args.append(node.args[0])  # an f-string message carries its values itself
        hits = set().union(*(_names(a) for a in args)) & IDENTIFYING if args else set()
        if hits:
            problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(hits)}")
    return problems


def test_no_log_call_passes_a_telegram_id_or_name() -> None:
    files = [
        p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts
    ]
    assert len(files) > 20
    problems = [line for path in files for line in identifying_log_calls(path)]
    assert problems == [], "log the pupil's pseudonym instead:\n" + "\n".join(problems)


async def test_a_conversation_logs_pseudonyms_only(
    rig: BotRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="leerbot")
    code = await rig.seed_class()
    noor = await rig.join(code, name="Kunigunde")
    await answer_first_steps(rig, noor, "ik hielp mijn oma met boodschappen")
    await rig.feed(
        updates.callback(
            update_id=rig.next_update(), user_id=noor, data="1:m:wie-ben-ik|AAAAAAAAAAAA"
        )
    )
    await rig.say(noor, "ik wil dood")
    await rig.say(noor, "/mijngegevens")
    await rig.say(noor, "/vergeetmij")
    pupil = await rig.pupil(noor)
    assert pupil is not None
    await rig.press(noor, "Ja, wis alles")
    await rig.drain()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("leerbot")]
    assert any(pupil.pseudonym in m for m in messages)
    for message in messages:
        assert str(noor) not in message
        assert "Kunigunde" not in message
        assert "oma" not in message  # nor what they wrote
