"""`make run` as a person sees it: the demo starts; a pupil joins in the web chat."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.demo import kill_demo, start_demo
from tests.support.sandbox_server import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, str]]:
    sandbox_port = free_port()
    proc, output = start_demo(tmp_path, sandbox_port=sandbox_port, dashboard_port=free_port())
    found = re.search(r"demo join link:\s+(\S+)", output)
    try:
        assert found, "leerbot up did not print a join link:\n" + output[-4000:]
        chat = f"http://127.0.0.1:{sandbox_port}/"
        yield {"chat": chat, "link": found.group(1), "output": output}
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does: `up` stops its children
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        kill_demo(proc)


def test_demo_prints_urls_and_a_pupil_joins_in_the_web_chat(demo: dict[str, str]) -> None:
    assert "web chat (sandbox):" in demo["output"]
    assert "dashboard:" in demo["output"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 400, "height": 780})
        page.goto(demo["chat"])
        page.get_by_label("Jouw naam").fill("Noor")
        page.get_by_label("Uitnodigingslink of code").fill(demo["link"])
        page.get_by_role("button", name="Start gesprek").click()
        expect(page.get_by_text("Hoe oud ben je?")).to_be_visible(timeout=15_000)
        page.get_by_role("button", name="13 of ouder").click()
        expect(page.get_by_text("Is dat oké voor jou?")).to_be_visible(timeout=10_000)
        page.get_by_role("button", name="Ja, dat is oké").click()
        expect(page.get_by_text("Wat wil je doen?")).to_be_visible(timeout=10_000)
        page.get_by_role("button", name=re.compile("Wie ben ik")).click()
        expect(page.get_by_text("Vraag 1 van")).to_be_visible(timeout=10_000)
        page.screenshot(path=str(SCREENSHOTS / "sandbox-chat.png"))
        browser.close()
