"""End to end: the real bot process, the sandbox Bot API, a pupil and staff on Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sandbox.driver import BotMessage, SimulatedPupil
from tests.support.stack import CLOSED_PORT_URL, Stack, free_port, running_stack

pytestmark = pytest.mark.e2e

SCHOOL = "Sint-Jozef VTI"
CRISIS = "ik wil dood"


def has(text: str) -> Callable[[BotMessage], bool]:
    return lambda message: text in message.content


def button(label: str) -> Callable[[BotMessage], bool]:
    return lambda message: label in message.labels


async def link_staff(stack: Stack, name: str, email: str, role: str) -> SimulatedPupil:
    """A staff account made with the CLI and linked to a Telegram user with its code."""
    await stack.cli_ok(
        "staff",
        "add",
        "--school",
        SCHOOL,
        "--email",
        email,
        "--name",
        name,
        "--role",
        role,
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    code = (await stack.cli_ok("staff", "link", "--email", email)).strip()
    user = await stack.pupil(name.split()[0])
    await user.send(f"/start {code}")
    await user.wait_for(has(f"Gelukt, {name}."))
    return user


async def pupil_in_module(stack: Stack, code: str) -> SimulatedPupil:
    """A pupil who joined, consented and is at the open question of "Wie ben ik?"."""
    pupil = await stack.pupil("Noor")
    await pupil.send(f"/start {code}")
    await pupil.wait_for(has("Hoe oud ben je?"))
    await pupil.press("13 of ouder")
    await pupil.wait_for(has("Is dat oké voor jou?"))
    await pupil.press("Ja, dat is oké")
    await pupil.wait_for(has("Wat wil je doen?"))
    await pupil.press("🆕 Wie ben ik?")
    await pupil.wait_for(has("Vraag 1 van 5"))
    await pupil.press("Met mijn handen werken")
    await pupil.wait_for(button("✅ Met mijn handen werken"))
    await pupil.press("Klaar ✅")
    await pupil.wait_for(has("Vraag 2 van 5"))
    for n, label in enumerate(("Handig met mijn handen", "Goed met mensen", "Ik hou vol")):
        await pupil.press(label)
        await pupil.wait_for(button(f"Klaar ({n + 1} van 3)"))
    await pupil.press("Klaar (3 van 3)")
    await pupil.wait_for(has("Vraag 3 van 5"))
    # A person takes a moment to type: the chat's send budget is not what we measure here.
    await asyncio.sleep(1.5)
    return pupil


async def flags(stack: Stack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(await stack.cli_ok("flags", "list", "--json"))
    return rows


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def stack_for(database_url: str, **kw: Any) -> AsyncIterator[Stack]:
    """`running_stack`, printing the bot's last log lines when the test fails."""
    async with running_stack(database_url, **kw) as stack:
        try:
            yield stack
        except BaseException:
            if stack.bot is not None:
                print("\n".join(stack.bot.lines[-40:]))  # pytest shows it with the failure
            raise


@contextlib.asynccontextmanager
async def hanging_rasa() -> AsyncIterator[str]:
    """A Rasa that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = free_port()
    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


@contextlib.asynccontextmanager
async def rasa_down(mode: str) -> AsyncIterator[str]:
    if mode == "refused":
        yield CLOSED_PORT_URL
    else:
        async with hanging_rasa() as url:
            yield url


@pytest.mark.parametrize("rasa", ["refused", "hanging"])
async def test_crisis_mid_module_reaches_the_counsellor_who_talks_with_the_pupil(
    database_url: str, rasa: str
) -> None:
    async with rasa_down(rasa) as rasa_url, stack_for(database_url, rasa_url=rasa_url) as stack:
        code = await stack.seed_class()
        sara = await link_staff(stack, "Sara Janssens", "sara@school.be", "counsellor")
        pupil = await pupil_in_module(stack, code)

        started = time.monotonic()
        await pupil.send(CRISIS)
        lines = await pupil.wait_for(has("1813"), timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert "Dank je dat je mij dit vertelt." in lines.content
        assert "112" in lines.content
        menu = await pupil.wait_for(has("Ik ben een computerprogramma."))
        assert menu.labels == [
            "Ik ben nu in gevaar",
            "Toon alle hulplijnen",
            "Ik wil verder praten",
        ]

        [flag] = await flags(stack)
        assert (flag["type"], flag["urgency"], flag["state"], flag["class"]) == (
            "crisis",
            "urgent",
            "open",
            "5A",
        )
        number = flag["id"]
        notice = await sara.wait_for(
            has(f"crisismelding #{number}"), timeout=5.0 - (time.monotonic() - started)
        )
        assert "Klas: 5A" in notice.content
        assert f"/meldingen/{number}" in notice.content
        assert "dood" not in notice.content

        await sara.press("Ik neem dit op")
        await sara.wait_for(has(f"Je neemt melding #{number} op."))
        await sara.send(f"/antwoord {number} Hoi, ik ben Sara. Ik wil je graag spreken.")
        await sara.wait_for(has("Verstuurd naar"))
        message = await pupil.wait_for(has("Bericht van Sara, leerlingenbegeleider:"))
        assert "Ik wil je graag spreken." in message.content

        await pupil.send("oke, morgen?")
        forwarded = await sara.wait_for(has(f"Melding #{number} · {flag['pupil']}:"))
        assert "oke, morgen?" in forwarded.content

        await sara.send(f"/sluit {number} Gesprek gepland met de leerling.")
        await sara.wait_for(has(f"Melding #{number} is gesloten."))
        await pupil.wait_for(has("Het gesprek is afgesloten."))
        await pupil.wait_for(has("Wat wil je doen?"))
        [closed] = await flags(stack)
        assert closed["state"] == "closed"
        assert closed["acknowledged_at"] is not None

        await sara.send(f"/antwoord {number} nog iets")
        await sara.wait_for(has("Deze melding is al gesloten. Je bericht is niet verstuurd."))


async def test_a_crisis_nobody_picks_up_is_escalated_to_counsellors_and_admins(
    database_url: str,
) -> None:
    env = {"LEERBOT_ESCALATION_MINUTES": "0.03"}  # 1.8 s instead of 15 minutes
    async with stack_for(database_url, extra_env=env) as stack:
        code = await stack.seed_class()
        sara = await link_staff(stack, "Sara Janssens", "sara@school.be", "counsellor")
        dirk = await link_staff(stack, "Dirk Claes", "dirk@school.be", "admin")
        pupil = await pupil_in_module(stack, code)

        await pupil.send(CRISIS)
        await sara.wait_for(has("DRINGEND: crisismelding"))
        again = await sara.wait_for(has("nog niet opgenomen"), timeout=8.0)
        admin = await dirk.wait_for(has("nog niet opgenomen"), timeout=2.0)
        assert again.labels == admin.labels == ["Ik neem dit op"]
        [flag] = await flags(stack)
        assert flag["escalated_at"] is not None

        await dirk.press("Ik neem dit op")
        await dirk.wait_for(has("Je neemt melding"))
        [flag] = await flags(stack)
        assert flag["state"] == "acknowledged"
        assert flag["assigned_to"] == "Dirk Claes"


async def test_a_reply_to_a_pupil_who_blocked_the_bot_is_recorded_as_not_delivered(
    database_url: str,
) -> None:
    async with stack_for(database_url) as stack:
        code = await stack.seed_class()
        sara = await link_staff(stack, "Sara Janssens", "sara@school.be", "counsellor")
        pupil = await pupil_in_module(stack, code)
        await pupil.send(CRISIS)
        notice = await sara.wait_for(has("crisismelding"))
        number = int(notice.content.split("#")[1].split()[0])

        await pupil.block()
        await sara.send(f"/antwoord {number} Hoi, ik ben Sara.")
        await sara.wait_for(has("Verstuurd naar"))

        async def failed() -> bool:
            [flag] = await flags(stack)
            return bool(flag["delivery_failed"])

        assert await until(failed), "the flag does not show that the reply never arrived"
        [flag] = await flags(stack)
        assert flag["state"] == "in_conversation"


async def test_a_contact_request_from_the_menu_notifies_the_linked_class_teacher(
    database_url: str,
) -> None:
    async with stack_for(database_url) as stack:
        code = await stack.seed_class()  # teacher an@school.be for 5A
        code_out = (await stack.cli_ok("staff", "link", "--email", "an@school.be")).strip()
        an = await stack.pupil("An")
        await an.send(f"/start {code_out}")
        await an.wait_for(has("Gelukt, An Peeters."))
        mo = await link_staff(stack, "Mo Benali", "mo@school.be", "counsellor")
        pupil = await stack.pupil("Noor")
        await pupil.send(f"/start {code}")
        await pupil.wait_for(has("Hoe oud ben je?"))
        await pupil.press("13 of ouder")
        await pupil.wait_for(has("Is dat oké voor jou?"))
        await pupil.press("Ja, dat is oké")
        await pupil.wait_for(has("Wat wil je doen?"))

        await pupil.press("Ik wil met iemand praten")
        await pupil.wait_for(has("Met wie wil je praten?"))
        await pupil.press("Mijn klastitularis")
        await pupil.wait_for(has("Waarover wil je praten?"))
        await pupil.send("over mijn punten")
        await pupil.wait_for(has("Is het dringend?"))
        await pupil.press("Nee, het kan wachten")
        await pupil.wait_for(has("Ik heb je vraag doorgegeven aan je klastitularis."))

        notice = await an.wait_for(has("Contactvraag #"))
        assert "Klas: 5A" in notice.content
        assert "punten" not in notice.content
        [flag] = await flags(stack)
        assert (flag["type"], flag["target"], flag["state"]) == (
            "contactvraag",
            "leerkracht",
            "open",
        )
        assert not any("Contactvraag" in m.content for m in mo.messages)  # teacher's request
