"""The sandbox web chat in a real browser: a pupil talks to the echo bot and presses a button."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from sandbox.echo import build_echo_application, start_echo, stop_echo
from sandbox.server import running

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "31337:WEBCHAT-test"


class _Live:
    """Sandbox + echo bot in an event loop of their own (Playwright's sync API needs none)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[str] | None = None
        self._main: Any = None

    def start(self) -> str:
        async def main(ready: asyncio.Future[str]) -> None:
            async with running() as (url, _app):
                bot = build_echo_application(api_url=f"{url}/bot", token=TOKEN)
                await start_echo(bot)
                ready.set_result(url)
                try:
                    await self._stop.wait()
                finally:
                    await stop_echo(bot)

        async def launch() -> str:
            ready: asyncio.Future[str] = self.loop.create_future()
            self._main = asyncio.ensure_future(main(ready))
            return await asyncio.wait_for(ready, 20)

        return asyncio.run_coroutine_threadsafe(launch(), self.loop).result(30)

    def stop(self) -> None:
        async def finish() -> None:
            self._stop.set()
            await asyncio.wait_for(self._main, 20)

        asyncio.run_coroutine_threadsafe(finish(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def chat_url() -> Iterator[str]:
    live = _Live()
    url = live.start()
    try:
        yield f"{url}/?token={TOKEN}"
    finally:
        live.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport={"width": 400, "height": 820}, locale="nl-BE")
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            browser.close()


def test_pupil_chats_with_the_echo_bot_and_presses_its_button(chat_url: str, page: Page) -> None:
    page.goto(chat_url)
    page.get_by_label("Jouw naam").fill("Noor")
    page.get_by_label("Uitnodigingslink of code").fill("https://t.me/leerbot_bot?start=KLAS5A")
    page.get_by_role("button", name="Start gesprek").click()
    log = page.get_by_role("log", name="Berichten")
    expect(log.get_by_text("Echo: /start KLAS5A")).to_be_visible()

    page.get_by_role("textbox", name="Bericht").fill("Hallo bot")
    page.get_by_role("button", name="Verstuur").click()
    expect(log.get_by_text("Hallo bot", exact=True)).to_be_visible()  # the pupil's own bubble
    expect(log.get_by_text("Echo: Hallo bot")).to_be_visible()
    expect(log.get_by_role("button", name="Nog eens")).to_have_count(2)

    log.get_by_role("button", name="Klaar").last.click()
    expect(log.get_by_text(re.compile(r"Gekozen: done \(\d+\)"))).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Gedrukt")  # the callback answer toast
    expect(log.get_by_text("bewerkt", exact=False)).to_be_visible()

    # Back to the start screen: the pupil is listed and the conversation is still there.
    page.get_by_role("button", name="Andere leerling").click()
    page.get_by_role("button", name="Noor").click()
    expect(log.get_by_text("Echo: /start KLAS5A")).to_be_visible()
    expect(log.get_by_text(re.compile(r"Gekozen: done"))).to_be_visible()
