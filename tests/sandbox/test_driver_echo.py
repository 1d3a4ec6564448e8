"""A real PTB Application (the echo bot) polling the sandbox, driven by simulated pupils."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from sandbox.driver import BotMessage, SandboxClient
from sandbox.echo import AGAIN, BURST, DONE, build_echo_application, start_echo, stop_echo

ECHO_TOKEN = "4711:ECHO-test"


@pytest.fixture(scope="module")
async def echo(sandbox: tuple[str, Starlette]) -> AsyncIterator[str]:
    """The echo bot polling the session sandbox under its own token."""
    url = sandbox[0]
    app = build_echo_application(api_url=f"{url}/bot", token=ECHO_TOKEN)
    await start_echo(app)
    try:
        yield url
    finally:
        await stop_echo(app)


@pytest.fixture(params=["http", "in-process"])
async def echo_client(
    echo: str, sandbox: tuple[str, Starlette], request: pytest.FixtureRequest
) -> AsyncIterator[SandboxClient]:
    """The driver over HTTP, and wired straight into the sandbox in this loop."""
    app = sandbox[1] if request.param == "in-process" else None
    async with SandboxClient(echo, token=ECHO_TOKEN, app=app) as client:
        yield client


async def test_pupil_gets_the_echo_with_buttons_and_a_press_edits_it(
    echo_client: SandboxClient,
) -> None:
    pupil = await echo_client.create_pupil("Noor")
    await pupil.send("Hallo bot")
    (reply,) = await pupil.wait_for_reply()
    assert reply.text == "Echo: Hallo bot"
    assert reply.buttons == [[AGAIN, DONE]]
    await pupil.press(DONE)
    (edit,) = await pupil.wait_for_reply()
    assert edit.message_id == reply.message_id
    assert edit.edited
    assert edit.text is not None
    assert edit.text.startswith("Gekozen: done")
    assert pupil.callback_answers == ["Gedrukt"]
    assert [m.text for m in pupil.messages] == [edit.text]  # one message, newest version


async def test_wait_for_reply_collects_a_burst_and_wait_for_finds_a_match(
    echo_client: SandboxClient,
) -> None:
    pupil = await echo_client.create_pupil("Yusuf")
    await pupil.send(BURST)
    replies = await pupil.wait_for_reply(quiet=0.3)
    assert [m.text for m in replies] == ["Bericht 1", "Bericht 2", "Bericht 3"]
    assert pupil.last_buttons == [[AGAIN, DONE]]

    await pupil.send("eerste")
    await pupil.send("tweede")
    found = await pupil.wait_for(lambda m: m.text == "Echo: tweede", timeout=5)
    assert found.text == "Echo: tweede"
    with pytest.raises(AssertionError, match=r"no reply from the bot within 0\.3s"):
        await pupil.wait_for_reply(timeout=0.3)


async def test_press_names_the_labels_on_offer_when_the_button_is_missing(
    echo_client: SandboxClient,
) -> None:
    pupil = await echo_client.create_pupil("Lotte")
    await pupil.send("hoi")
    await pupil.wait_for_reply()
    with pytest.raises(AssertionError, match=r"no button 'Misschien'.*'Nog eens', 'Klaar'"):
        await pupil.press("Misschien", wait=0.1)


async def test_an_old_message_can_still_be_pressed_with_press_on(
    echo_client: SandboxClient,
) -> None:
    pupil = await echo_client.create_pupil("Mila")
    await pupil.send("een")
    (old,) = await pupil.wait_for_reply()
    await pupil.send("twee")
    await pupil.wait_for_reply()
    await pupil.press_on(old, AGAIN)
    (edit,) = await pupil.wait_for_reply()
    assert edit.message_id == old.message_id
    with pytest.raises(AssertionError, match="has no callback button 'Weg'"):
        await pupil.press_on(old, "Weg")


async def test_group_messages_are_answered_in_the_group(echo_client: SandboxClient) -> None:
    pupil = await echo_client.create_pupil("Sam")
    await echo_client.send_group_message(user_id=pupil.user_id, chat_id=-100123, text="groep")
    replies = await echo_client.wait_chat_messages(-100123)
    assert [(m.text, m.chat_id) for m in replies] == [("Echo: groep", -100123)]


async def test_media_from_a_pupil_reaches_the_bot_and_is_logged_nowhere_as_a_send(
    echo_client: SandboxClient,
) -> None:
    pupil = await echo_client.create_pupil("Jens")
    await pupil.send_media("sticker")
    await pupil.send("na de sticker")
    (reply,) = await pupil.wait_for_reply()
    assert reply.text == "Echo: na de sticker"  # the text-only echo bot ignored the sticker
    log = await echo_client.log(chat_id=pupil.chat_id)
    assert [e["method"] for e in log] == ["sendMessage"]


async def test_fifty_pupils_at_once_each_get_their_own_answer(echo_client: SandboxClient) -> None:
    pupils = [await echo_client.create_pupil(f"Leerling {i}") for i in range(50)]
    started = time.monotonic()

    async def talk(index: int) -> list[BotMessage]:
        await pupils[index].send(f"ik ben {index}")
        return await pupils[index].wait_for_reply(timeout=10, quiet=0)

    answers = await asyncio.gather(*(talk(i) for i in range(50)))
    assert [a[0].text for a in answers] == [f"Echo: ik ben {i}" for i in range(50)]
    assert time.monotonic() - started < 5
