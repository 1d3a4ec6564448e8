"""The whole story in a real browser: a teacher, a pupil in the sandbox, a counsellor.

The sandbox Bot API, the real `leerbot bot` process and the dashboard (uvicorn) run in a
background event loop; Playwright drives the dashboard; a simulated pupil talks to the bot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dashboard.security import hash_password
from sandbox.driver import BotMessage, SimulatedPupil
from store import repo
from store.db import make_engine, make_sessions
from tests.dashboard.live import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, LoopThread, serve_dashboard
from tests.support.databases import SqliteFactory
from tests.support.stack import BOT_USERNAME, Stack, running_stack

pytestmark = pytest.mark.e2e

SCHOOL = "Sint-Jozef VTI"
PASSWORD = "correct horse battery"
TEACHER = "an@sintjozef.be"
COUNSELLOR = "sara@sintjozef.be"
REPLY = "Dag, ik ben Sara van de leerlingenbegeleiding. Ik kom zo naar je klas."


async def add_school_and_counsellor(url: str) -> None:
    engine = make_engine(url)
    try:
        async with make_sessions(engine).begin() as session:
            school = await repo.add_school(session, name=SCHOOL)
            await repo.add_staff(
                session,
                school=school,
                email=COUNSELLOR,
                name="Sara Janssens",
                role="counsellor",
                password_hash=await hash_password(PASSWORD),
            )
    finally:
        await engine.dispose()


def texts(messages: list[BotMessage]) -> str:
    return "\n".join(m.content for m in messages)


@pytest.fixture
def world(sqlite_factory: SqliteFactory) -> Iterator[tuple[LoopThread, Stack, str, Browser]]:
    live = LoopThread()
    try:
        url = sqlite_factory.new()
        stack = live.enter(running_stack(url))
        live.run(add_school_and_counsellor(url))
        # The teacher comes from the CLI, as an operator adds the first accounts: the
        # dashboard must accept the CLI's password hash.
        live.run(
            stack.cli_ok(
                "staff",
                "add",
                "--school",
                SCHOOL,
                "--email",
                TEACHER,
                "--name",
                "An Peeters",
                "--role",
                "teacher",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
        )
        base = serve_dashboard(live, database_url=url, bot_username=BOT_USERNAME)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield live, stack, base, browser
            finally:
                browser.close()
    finally:
        live.close()


def signed_in(browser: Browser, base: str, email: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/login")
    page.get_by_label("E-mailadres").fill(email)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.get_by_role("button", name="Afmelden")).to_be_visible()
    return page


def pupil_finishes_wie_ben_ik(live: LoopThread, pupil: SimulatedPupil, code: str) -> None:
    def say(coro: Any) -> Any:
        return live.run(coro, timeout=20)

    say(pupil.send(f"/start {code}"))
    assert "Je zit nu in de klas 5A." in texts(say(pupil.wait_for_reply()))
    say(pupil.press("13 of ouder"))
    say(pupil.wait_for_reply())
    say(pupil.press("Ja, dat is oké"))
    say(pupil.wait_for_reply())
    say(pupil.press("🆕 Wie ben ik?"))
    say(pupil.wait_for_reply())
    say(pupil.press("Met mijn handen werken"))
    say(pupil.wait_for_reply())
    say(pupil.press("Klaar ✅"))
    say(pupil.wait_for_reply())
    for label in ("Handig met mijn handen", "Goed met mensen", "Ik hou vol"):
        say(pupil.press(label))
        say(pupil.wait_for_reply())
    say(pupil.press("Klaar (3 van 3)"))
    say(pupil.wait_for_reply())
    say(pupil.send("Ik heb thuis een fiets gemaakt"))
    say(pupil.wait_for_reply())
    say(pupil.press("Dat ik hard werk"))
    say(pupil.wait_for_reply())
    say(pupil.press("🙂 Fijn"))
    say(pupil.wait_for_reply())
    say(pupil.press("Alles"))
    say(pupil.wait_for_reply())
    say(pupil.press("Nee, dank je"))
    assert "Goed gedaan!" in texts(say(pupil.wait_for_reply()))


def test_teacher_pupil_and_counsellor_in_one_story(
    world: tuple[LoopThread, Stack, str, Browser],
) -> None:
    live, stack, base, browser = world

    # The teacher makes a class, shows the QR code and assigns a module.
    teacher = signed_in(browser, base, TEACHER)
    teacher.get_by_label("Naam van de klas").fill("5A")
    teacher.get_by_role("button", name="Klas maken").click()
    expect(teacher.locator(".join-qr svg")).to_be_visible()
    link = teacher.locator(".join-link a").inner_text()
    match = re.fullmatch(rf"https://t\.me/{BOT_USERNAME}\?start=([A-Z2-9]{{8}})", link)
    assert match, link
    code = match.group(1)
    teacher.get_by_role("link", name="← Terug naar 5A").click()
    teacher.get_by_label("Module", exact=True).select_option("wie-ben-ik")
    due = (datetime.now(UTC) + timedelta(days=7)).date()
    teacher.get_by_label("Klaar tegen").fill(due.isoformat())
    teacher.get_by_role("button", name="Geven").click()
    expect(teacher.get_by_role("status")).to_contain_text("Wie ben ik? is gegeven aan 5A.")

    # A pupil joins with the code from the QR link and finishes the module, sharing everything.
    pupil = live.run(stack.pupil("Noor"))
    pupil_finishes_wie_ben_ik(live, pupil, code)

    teacher.reload()
    row = teacher.get_by_role("row", name=re.compile("Noor"))
    expect(row.get_by_text("klaar")).to_be_visible()
    teacher.get_by_role("link", name="Wie ben ik?").first.click()
    expect(teacher.get_by_text("Ik heb thuis een fiets gemaakt")).to_be_visible()
    expect(teacher.get_by_text("Dat ik hard werk")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    teacher.screenshot(path=str(SCREENSHOTS / "e2e-teacher-shared.png"), full_page=True)

    # The pupil writes something alarming; the counsellor's open queue shows it by itself.
    counsellor = signed_in(browser, base, COUNSELLOR)
    expect(counsellor.get_by_text("Geen open meldingen.")).to_be_visible()
    counsellor.evaluate("window.__sameDocument = true")
    live.run(pupil.send("ik zie het niet meer zitten, ik wil dood"))
    crisis_reply = texts(live.run(pupil.wait_for_reply(timeout=10)))
    assert "112" in crisis_reply
    crisis = counsellor.locator("tr.row-crisis")
    expect(crisis).to_be_visible(timeout=10_000)
    assert counsellor.evaluate("window.__sameDocument") is True
    counsellor.screenshot(path=str(SCREENSHOTS / "e2e-counsellor-queue.png"), full_page=True)

    # The counsellor replies through the bot; the pupil gets it in the chat; then closes.
    crisis.get_by_role("link", name=re.compile("Openen")).click()
    expect(counsellor.get_by_text("ik wil dood").first).to_be_visible()
    counsellor.get_by_label("Bericht aan de leerling").fill(REPLY)
    counsellor.get_by_role("button", name="Bericht sturen").click()
    expect(counsellor.get_by_text("Je bericht is verstuurd.")).to_be_visible()
    received = live.run(pupil.wait_for(lambda m: REPLY in m.content, timeout=15), timeout=20)
    assert REPLY in received.content
    counsellor.once("dialog", lambda dialog: dialog.accept())
    counsellor.get_by_label("Notitie bij het sluiten").fill("Gesprek gehad in de klas.")
    counsellor.get_by_role("button", name="Melding sluiten").click()
    expect(counsellor.get_by_text("De melding is gesloten.")).to_be_visible()
    counsellor.get_by_role("link", name="← Alle meldingen").click()
    expect(counsellor.get_by_text("Geen open meldingen.")).to_be_visible()
