"""The dashboard in a real browser on a seeded database: every role's main pages.

Saves screenshots of the main pages to docs/screenshots/ (linked from the README).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bot.flags import raise_flag
from flows.types import FlagRaised
from store.db import make_engine, make_sessions
from store.models import Flag, Outbox, Pupil
from tests.dashboard.live import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, LoopThread, serve_dashboard
from tests.dashboard.seed import PASSWORD, PRIVATE_MARK, Seed, seed, seeded_catalog
from tests.support.databases import SqliteFactory


class Site:
    """The seeded dashboard and a browser to look at it."""

    def __init__(self, live: LoopThread, url: str, data: Seed, browser: Browser) -> None:
        self.live = live
        self.url = url
        self.data = data
        self.browser = browser

    def page(self, who: str | None = None) -> Page:
        """A new browser context, signed in as `who` (an e-mail key of the seed)."""
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 800}, locale="nl-BE", base_url=self.url
        )
        page = context.new_page()
        page.set_default_timeout(10_000)
        if who is not None:
            page.goto("/login")
            page.get_by_label("E-mailadres").fill(self.data.emails[who])
            page.get_by_label("Wachtwoord").fill(PASSWORD)
            page.get_by_role("button", name="Aanmelden").click()
            expect(page.get_by_role("button", name="Afmelden")).to_be_visible()
        return page

    def db(self, work: Any) -> Any:
        """Run `await work(session)` in one transaction on the site's database."""

        async def run() -> Any:
            engine = make_engine(self.data.url)
            try:
                async with make_sessions(engine).begin() as session:
                    return await work(session)
            finally:
                await engine.dispose()

        return self.live.run(run())


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def site(sqlite_factory: SqliteFactory) -> Iterator[Site]:
    live = LoopThread()
    try:
        url = sqlite_factory.new()
        data = live.run(seed(url, now=datetime.now(UTC)))
        base = serve_dashboard(live, database_url=url, catalog=seeded_catalog())
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield Site(live, base, data, browser)
            finally:
                browser.close()
    finally:
        live.close()


def test_login_refuses_a_wrong_password_and_lets_a_teacher_in(site: Site) -> None:
    page = site.page()
    page.goto("/klassen")
    expect(page).to_have_url(re.compile(r"/login\?next=/klassen"))
    shot(page, "login")
    page.get_by_label("E-mailadres").fill("an@sintjozef.be")
    page.get_by_label("Wachtwoord").fill("fout")
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.get_by_role("alert")).to_have_text("Dit e-mailadres of wachtwoord klopt niet.")
    expect(page.get_by_label("E-mailadres")).to_have_value("an@sintjozef.be")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.get_by_role("heading", name="Mijn klassen")).to_be_visible()
    page.context.close()


def test_teacher_makes_a_class_and_projects_the_qr_code(site: Site) -> None:
    page = site.page("teacher_a")
    page.goto("/klassen")
    page.get_by_label("Naam van de klas").fill("5A")
    page.get_by_role("button", name="Klas maken").click()
    expect(page.locator("#name-error")).to_have_text(
        "Er is al een klas met de naam 5A in je school. Kies een andere naam."
    )
    expect(page.get_by_label("Naam van de klas")).to_have_value("5A")
    shot(page, "teacher-classes")
    page.get_by_label("Naam van de klas").fill("6 Hout")
    page.get_by_role("button", name="Klas maken").click()
    expect(page.get_by_role("heading", name="Doe mee met klas 6 Hout")).to_be_visible()
    qr = page.locator(".join-qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None
    assert box["width"] >= 400
    expect(page.locator(".join-link a")).to_have_text(
        re.compile(r"^https://t\.me/leerbot_test_bot\?start=[A-Z2-9]{8}$")
    )
    shot(page, "teacher-join-qr")
    page.context.close()


def test_teacher_follows_progress_assigns_and_reads_shared_answers(site: Site) -> None:
    page = site.page("teacher_a")
    page.goto(f"/klassen/{site.data.classes['a']}")
    row = page.get_by_role("row", name=re.compile("Noor"))
    expect(row.get_by_text("klaar")).to_be_visible()
    expect(
        page.get_by_role("row", name=re.compile("Jens")).get_by_text("pauze 3/5")
    ).to_be_visible()
    expect(page.get_by_role("img", name="Afgewerkte modules per module")).to_be_visible()
    page.get_by_label("Module", exact=True).select_option("wie-ben-ik")
    page.get_by_label("Klaar tegen").fill(
        (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    )
    page.get_by_role("button", name="Geven").click()
    expect(page.get_by_role("status")).to_contain_text("De deadline van Wie ben ik? is aangepast.")
    shot(page, "teacher-class")
    with page.expect_download() as download:
        page.get_by_role("link", name="Voortgang downloaden (CSV)").click()
    assert download.value.suggested_filename == "voortgang-5A.csv"
    page.get_by_role("link", name="Wie ben ik?").first.click()
    expect(page.get_by_text("Ik heb een fiets gemaakt")).to_be_visible()
    expect(page.get_by_text("Deelt niets, alleen dat het klaar is.")).to_be_visible()
    assert PRIVATE_MARK not in page.content()
    shot(page, "teacher-shared-answers")
    page.goto("/signalen")
    expect(page.get_by_text("Denkt vaak aan stoppen met school")).to_be_visible()
    shot(page, "early-warning")
    page.context.close()


def test_counsellor_sees_a_new_crisis_flag_without_reloading(site: Site) -> None:
    page = site.page("counsellor_x")
    expect(page.get_by_role("heading", name="Meldingen")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    async def new_flag(session: Any) -> int:
        pupil = await session.get(Pupil, site.data.pupils["kobe"])
        flag, _ = await raise_flag(
            session,
            pupil,
            FlagRaised(
                level="crisis",
                reason="zelfdoding",
                category="suicidal",
                evidence=("ik wil er niet meer zijn",),
                urgent=True,
            ),
            datetime.now(UTC),
        )
        return int(flag.id)

    flag_id = site.db(new_flag)
    row = page.locator(f'tr[data-flag="{flag_id}"]')
    expect(row).to_be_visible(timeout=8_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    expect(page).to_have_title(re.compile(r"^\(2 crisis\)"))
    shot(page, "counsellor-queue")

    row.get_by_role("link", name=re.compile("Openen")).click()
    expect(page.get_by_text("ik wil er niet meer zijn")).to_be_visible()
    page.get_by_role("button", name="Ik neem dit op").click()
    expect(page.get_by_text("De melding staat op gezien.")).to_be_visible()
    page.get_by_label("Bericht aan de leerling").fill("Dag, ik ben Sara. Ik zoek je zo op.")
    page.get_by_role("button", name="Bericht sturen").click()
    expect(page.get_by_text("Je bericht is verstuurd.")).to_be_visible()
    shot(page, "counsellor-flag")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Notitie bij het sluiten").fill("Gesprek gehad, ouders verwittigd.")
    page.get_by_role("button", name="Melding sluiten").click()
    expect(page.get_by_text("De melding is gesloten.")).to_be_visible()

    async def state(session: Any) -> tuple[str, list[str]]:
        flag = await session.get(Flag, flag_id)
        pupil = await session.get(Pupil, site.data.pupils["kobe"])
        rows = (
            await session.execute(Outbox.__table__.select().where(Outbox.chat_id == pupil.chat_id))
        ).all()
        return flag.state, [str(r.payload.get("text", "")) for r in rows]

    flag_state, texts = site.db(state)
    assert flag_state == "closed"
    assert any("Ik zoek je zo op." in text for text in texts)
    page.context.close()


def test_admin_invites_a_colleague_and_checks_modules_and_log(site: Site) -> None:
    page = site.page("admin_x")
    page.get_by_label("Naam").fill("Lien Vos")
    page.get_by_label("E-mailadres").fill("lien@sintjozef.be")
    page.get_by_label("Rol").select_option("counsellor")
    page.get_by_role("button", name="Uitnodigen").click()
    link = page.locator("#invite-link").inner_text()
    assert "/uitnodiging/" in link
    shot(page, "admin-staff")
    page.get_by_role("link", name="Modules").click()
    expect(page.get_by_text("in orde").first).to_be_visible()
    shot(page, "admin-modules")
    page.get_by_role("link", name="Logboek").click()
    expect(page.get_by_text("collega uitgenodigd").first).to_be_visible()

    invited = site.page()
    invited.goto(link)
    invited.get_by_label("Nieuw wachtwoord").fill("een lang wachtwoord")
    invited.get_by_label("Nog een keer").fill("een lang wachtwoord")
    invited.get_by_role("button", name="Wachtwoord opslaan").click()
    expect(invited.get_by_role("heading", name="Meldingen")).to_be_visible()
    invited.context.close()
    page.context.close()
