"""The emulated Bot API as python-telegram-bot sees it: results, errors, limits, webhooks."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from typing import Any

import httpx
import pytest
import telegram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter

from sandbox.driver import SandboxClient, SimulatedPupil
from sandbox.media import PHOTO_PNG
from sandbox.server import create_app
from sandbox.state import SandboxState
from tests.support.sandbox_server import serving


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=f"cb:{label}") for label in labels]]
    )


async def drain(bot: telegram.Bot) -> list[Update]:
    """Read and confirm everything queued for the bot."""
    updates = list(await bot.get_updates(timeout=0))
    if updates:
        await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    return updates


async def started_pupil(
    client: SandboxClient, bot: telegram.Bot, name: str = "Noor"
) -> SimulatedPupil:
    """A pupil who pressed Start, with the queue emptied."""
    pupil = await client.create_pupil(name)
    await pupil.send("/start")
    await drain(bot)
    return pupil


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def eventually(check: Any, timeout: float = 5.0) -> None:
    """Poll a condition until true (for effects of background delivery)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ identity and envelope


async def test_get_me_reports_the_bot_from_the_token(bot: telegram.Bot, token: str) -> None:
    me = await bot.get_me()
    assert me.id == int(token.split(":")[0])
    assert me.is_bot
    assert me.username == "leerbot_sandbox_bot"


async def test_unknown_method_and_bad_tokens_answer_like_telegram(url: str, token: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        unknown = await http.post(f"/bot{token}/sendTelepathy", json={})
        malformed = await http.get("/botnot-a-token/getMe")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    assert malformed.status_code == 404

    fixed = create_app(token="1:RIGHT")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fixed), base_url="http://sandbox"
    ) as http:
        wrong = await http.get("/bot2:WRONG/getMe")
        right = await http.get("/bot1:RIGHT/getMe")
    assert wrong.status_code == 401
    assert wrong.json()["description"] == "Unauthorized"
    assert right.json()["result"]["id"] == 1
    async with serving(fixed) as fixed_url:
        with pytest.raises(InvalidToken, match=r"^Unauthorized$"):
            await telegram.Bot("2:WRONG", base_url=f"{fixed_url}/bot").get_me()


async def test_methods_accept_query_json_and_form_parameters(
    url: str, token: str, client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    async with httpx.AsyncClient(base_url=f"{url}/bot{token}") as http:
        by_query = await http.get("/sendMessage", params={"chat_id": pupil.chat_id, "text": "123"})
        by_json = await http.post("/sendmessage", json={"chat_id": pupil.chat_id, "text": "json"})
        by_form = await http.post(
            "/sendMessage",
            data={
                "chat_id": str(pupil.chat_id),
                "text": "form",
                "reply_markup": '{"inline_keyboard": [[{"text": "Ok", "callback_data": "ok"}]]}',
            },
        )
    assert by_query.json()["result"]["text"] == "123"  # text stays text
    assert by_json.json()["result"]["text"] == "json"
    assert by_form.json()["result"]["reply_markup"] == {
        "inline_keyboard": [[{"text": "Ok", "callback_data": "ok"}]]
    }
    ids = [r.json()["result"]["message_id"] for r in (by_query, by_json, by_form)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


# ------------------------------------------------------------------ updates


async def test_pupil_message_reaches_get_updates_with_a_command_entity(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await client.create_pupil("Noor", username="noor_x")
    await pupil.send("/start KLAS5A")
    (update,) = await bot.get_updates(timeout=1)
    message = update.effective_message
    assert message is not None
    assert message.text == "/start KLAS5A"
    assert message.chat.type == "private"
    assert message.chat.id == pupil.user_id
    assert message.from_user is not None
    assert message.from_user.username == "noor_x"
    assert message.parse_entities(["bot_command"]) == {message.entities[0]: "/start"}


async def test_get_updates_long_poll_wakes_as_soon_as_an_update_is_queued(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await client.create_pupil("Yusuf")
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await asyncio.sleep(0.2)
    assert not poll.done()
    started = time.monotonic()
    await pupil.send("hallo")
    updates = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 0.5
    assert [u.effective_message.text for u in updates if u.effective_message] == ["hallo"]


async def test_confirmed_updates_are_dropped_once_offset_passes_them(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await client.create_pupil("Lotte")
    for text in ("een", "twee", "drie"):
        await pupil.send(text)
    first = await bot.get_updates(timeout=0)
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in first] == [u.update_id for u in again]  # not yet confirmed
    rest = await bot.get_updates(offset=first[1].update_id, timeout=0)
    assert [u.message.text for u in rest if u.message] == ["twee", "drie"]
    assert await bot.get_updates(offset=rest[-1].update_id + 1, timeout=0) == ()
    limited = await bot.get_updates(timeout=0, limit=1)
    assert limited == ()


async def test_allowed_updates_filters_what_the_bot_receives(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    await bot.send_message(pupil.chat_id, "Kies", reply_markup=keyboard("A"))
    await pupil.send("tekst")
    await pupil.press("A")  # waits briefly for the feed to show the button
    updates = await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    assert [u.callback_query.data for u in updates if u.callback_query] == ["cb:A"]
    assert all(u.message is None for u in updates)


async def test_group_chat_updates_have_group_type_and_negative_ids(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await client.create_pupil("Sam")
    await client.send_group_message(user_id=pupil.user_id, chat_id=-4242, text="/start@bot x")
    group = await client.create_chat(chat_type="supergroup", title="5A")
    await client.send_group_message(user_id=pupil.user_id, chat_id=group["id"], text="hoi")
    first, second = await bot.get_updates(timeout=1)
    assert first.message is not None
    assert second.message is not None
    assert (first.message.chat.type, first.message.chat.id) == ("group", -4242)
    assert second.message.chat.type == "supergroup"
    assert second.message.chat.id < -1_000_000_000_000
    assert second.message.chat.title == "5A"
    reply = await bot.send_message(-4242, "Alleen in een privégesprek")
    assert reply.chat.type == "group"
    # Writing in a group does not start the private chat.
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        await bot.send_message(pupil.user_id, "psst")


async def test_raw_update_is_queued_as_is_with_a_fresh_update_id(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    update_id = await client.send_raw_update({"message": {"weird": True}})
    given = await client.send_raw_update({"update_id": update_id + 50, "poll": None})
    async with httpx.AsyncClient(base_url=client.base_url) as http:
        raw = (await http.get(f"/bot{bot.token}/getUpdates")).json()["result"]
    assert raw == [
        {"update_id": update_id, "message": {"weird": True}},
        {"update_id": update_id + 50, "poll": None},
    ]
    assert given == update_id + 50


async def test_pupil_media_edits_and_blocking_are_well_formed_updates(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await client.create_pupil("Mila")
    message_id = await pupil.send("eerst dit")
    await pupil.edit(message_id, "toch dit")
    for kind in ("sticker", "photo", "voice", "document", "location", "poll", "contact", "video"):
        await pupil.send_media(kind)
    await pupil.block()
    updates = await bot.get_updates(timeout=0)
    assert updates[1].edited_message is not None
    assert updates[1].edited_message.text == "toch dit"
    assert updates[1].edited_message.message_id == message_id
    media = [u.message for u in updates[2:10]]
    assert all(m is not None for m in media)
    kinds = [m.effective_attachment.__class__.__name__ for m in media if m is not None]
    assert kinds == [
        "Sticker",
        "tuple",
        "Voice",
        "Document",
        "Location",
        "Poll",
        "Contact",
        "Video",
    ]
    photo = media[1]
    assert photo is not None
    file = await bot.get_file(photo.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == PHOTO_PNG
    member = updates[10].my_chat_member
    assert member is not None
    assert (member.old_chat_member.status, member.new_chat_member.status) == ("member", "kicked")


# ------------------------------------------------------------------ sending


async def test_send_message_returns_a_telegram_shaped_message(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    first = await bot.send_message(
        pupil.chat_id, "Welkom!", reply_markup=keyboard("Ja", "Nee"), disable_notification=True
    )
    second = await bot.send_message(pupil.chat_id, "Tweede", reply_to_message_id=first.id)
    assert first.from_user is not None
    assert first.from_user.id == bot.id
    assert first.chat.id == pupil.chat_id
    assert first.chat.first_name == "Noor"
    assert second.message_id == first.message_id + 1
    assert first.reply_markup == keyboard("Ja", "Nee")
    assert second.reply_to_message is not None
    assert second.reply_to_message.text == "Welkom!"
    replies = await pupil.wait_for_reply()
    assert [m.text for m in replies] == ["Welkom!", "Tweede"]
    assert replies[0].buttons == [["Ja", "Nee"]]
    assert replies[0].callback_data == {"Ja": "cb:Ja", "Nee": "cb:Nee"}


async def test_reply_keyboards_are_shown_to_the_pupil_until_removed(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    await bot.send_message(
        pupil.chat_id,
        "Hoe gaat het?",
        reply_markup=ReplyKeyboardMarkup([["Goed", "Slecht"]], one_time_keyboard=True),
    )
    await pupil.wait_for_reply()
    assert pupil.reply_keyboard == [["Goed", "Slecht"]]
    await pupil.press("Goed")  # a reply-keyboard button sends its label
    assert pupil.reply_keyboard is None  # one-time keyboards fold away once used
    assert (await client.chat_messages(pupil.chat_id))["keyboard"] is None
    await bot.send_message(
        pupil.chat_id, "Nog eens?", reply_markup=ReplyKeyboardMarkup([["Ja", "Nee"]])
    )
    await pupil.wait_for_reply()
    (update,) = await bot.get_updates(timeout=1)
    assert update.message is not None
    assert update.message.text == "Goed"
    await bot.send_message(pupil.chat_id, "Vertel", reply_markup=ForceReply())
    await pupil.wait_for_reply()
    assert pupil.reply_keyboard == [["Ja", "Nee"]]  # a force-reply leaves it in place
    await bot.send_message(pupil.chat_id, "Oké", reply_markup=ReplyKeyboardRemove())
    await pupil.wait_for_reply()
    assert pupil.reply_keyboard is None
    timeline = await client.chat_messages(pupil.chat_id)
    assert timeline["keyboard"] is None
    assert [m["force_reply"] for m in timeline["messages"][-2:]] == [True, False]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": " "}, "Message text is empty"),
        ({"text": "x" * 4097}, "Message is too long"),
        (
            {
                "text": "ok",
                "reply_markup": InlineKeyboardMarkup(
                    [[InlineKeyboardButton("lang", callback_data="x" * 65)]]
                ),
            },
            "Button_data_invalid",
        ),
        (
            {"text": "ok", "reply_markup": InlineKeyboardMarkup([[InlineKeyboardButton("leeg")]])},
            "Button_data_invalid",
        ),
        (
            {"text": "<b>open", "parse_mode": "HTML"},
            "Can't parse entities: can't find end tag corresponding to start tag \"b\"",
        ),
        (
            {"text": "Klaar.", "parse_mode": "MarkdownV2"},
            "Can't parse entities: character '.' is reserved and must be escaped with the "
            "preceding '\\'",
        ),
        ({"text": "ok", "reply_to_message_id": 999}, "Message to be replied not found"),
    ],
)
async def test_invalid_messages_raise_bad_request_with_telegrams_words(
    client: SandboxClient, bot: telegram.Bot, kwargs: dict[str, Any], error: str
) -> None:
    pupil = await started_pupil(client, bot)
    with pytest.raises(BadRequest) as info:
        await bot.send_message(pupil.chat_id, **kwargs)
    assert info.value.message == error
    timeline = (await client.chat_messages(pupil.chat_id))["messages"]
    assert [m["text"] for m in timeline] == ["/start"]  # nothing reached the pupil
    (entry,) = await client.log(method="sendMessage")
    assert (entry["outcome"], entry["chat_id"]) == ("400", pupil.chat_id)
    assert entry["description"].lower().endswith(error.lower())


async def test_unreachable_chats_raise_forbidden_or_chat_not_found(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    never_started = await client.create_pupil("Stil")
    with pytest.raises(Forbidden, match=r"^Forbidden: bot can't initiate conversation with a "):
        await bot.send_message(never_started.chat_id, "hallo")
    blocker = await started_pupil(client, bot, "Weg")
    await blocker.block()
    with pytest.raises(Forbidden, match=r"^Forbidden: bot was blocked by the user$"):
        await bot.send_message(blocker.chat_id, "hallo")
    with pytest.raises(BadRequest, match=r"^Chat not found$"):
        await bot.send_message(123456789, "hallo")
    await blocker.block(False)
    assert (await bot.send_message(blocker.chat_id, "terug")).text == "terug"


async def test_html_and_markdown_become_plain_text_with_entities(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    html = await bot.send_message(
        pupil.chat_id,
        '<b>Vet</b> &amp; <a href="https://x.be">link</a> 🎉 <i>schuin</i>',
        parse_mode="HTML",
    )
    assert html.text == "Vet & link 🎉 schuin"
    assert [(e.type, e.offset, e.length) for e in html.entities] == [
        ("bold", 0, 3),
        ("text_link", 6, 4),
        ("italic", 14, 6),
    ]  # 🎉 is two UTF-16 units
    md = await bot.send_message(
        pupil.chat_id, r"*Stap 1\.* _kies_ `code`", parse_mode="MarkdownV2"
    )
    assert md.text == "Stap 1. kies code"
    assert [e.type for e in md.entities] == ["bold", "italic", "code"]


async def test_edits_change_the_message_and_show_up_as_edits(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    sent = await bot.send_message(pupil.chat_id, "Vraag 1", reply_markup=keyboard("A", "B"))
    await pupil.wait_for_reply()
    edited = await bot.edit_message_text(
        "Vraag 1 ✅", chat_id=pupil.chat_id, message_id=sent.message_id
    )
    assert isinstance(edited, telegram.Message)
    assert edited.edit_date is not None
    assert edited.reply_markup is None
    (change,) = await pupil.wait_for_reply()
    assert (change.text, change.edited, change.buttons) == ("Vraag 1 ✅", True, [])
    await bot.edit_message_reply_markup(
        chat_id=pupil.chat_id, message_id=sent.message_id, reply_markup=keyboard("C")
    )
    (change,) = await pupil.wait_for_reply()
    assert pupil.last_buttons == change.buttons == [["C"]]
    with pytest.raises(BadRequest, match=r"^Message is not modified: specified new message"):
        await bot.edit_message_reply_markup(
            chat_id=pupil.chat_id, message_id=sent.message_id, reply_markup=keyboard("C")
        )
    with pytest.raises(BadRequest, match=r"^Message to edit not found$"):
        await bot.edit_message_text("x", chat_id=pupil.chat_id, message_id=9999)
    assert await bot.delete_message(pupil.chat_id, sent.message_id)
    with pytest.raises(BadRequest, match=r"^Message to delete not found$"):
        await bot.delete_message(pupil.chat_id, sent.message_id)
    await eventually(lambda: sent.message_id not in {m.message_id for m in pupil.messages})


async def test_callback_query_can_be_answered_once_and_shows_its_text(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    await bot.send_message(pupil.chat_id, "Kies", reply_markup=keyboard("Ja"))
    await pupil.wait_for_reply()
    await pupil.press("Ja")
    (update,) = await bot.get_updates(timeout=1)
    query = update.callback_query
    assert query is not None
    assert query.data == "cb:Ja"
    assert query.message is not None
    assert query.from_user.id == pupil.user_id
    assert query.message.text == "Kies"
    assert await query.answer("Genoteerd")
    with pytest.raises(BadRequest, match=r"^Query is too old and response timeout expired"):
        await query.answer("nog eens")
    await eventually(lambda: pupil.callback_answers == ["Genoteerd"])


async def test_photos_and_documents_upload_and_download_through_get_file(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    photo = await bot.send_photo(
        pupil.chat_id, PHOTO_PNG, caption="Jouw kaart", reply_markup=keyboard("Mooi")
    )
    assert (photo.photo[-1].width, photo.photo[-1].height) == (64, 48)
    assert photo.caption == "Jouw kaart"
    doc = await bot.send_document(pupil.chat_id, b"antwoorden\n", filename="antwoorden.txt")
    assert doc.document is not None
    assert (doc.document.file_name, doc.document.mime_type) == ("antwoorden.txt", "text/plain")
    again = await bot.send_photo(pupil.chat_id, photo.photo[-1].file_id)
    assert again.photo[-1].file_id == photo.photo[-1].file_id
    by_url = await bot.send_document(pupil.chat_id, "https://example.org/gids.pdf")
    assert by_url.document is not None
    assert by_url.document.file_name == "gids.pdf"

    file = await bot.get_file(doc.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"antwoorden\n"
    replies = await pupil.wait_for_reply()
    assert [m.kind for m in replies] == ["photo", "document", "photo", "document"]
    assert replies[0].caption == "Jouw kaart"
    assert replies[0].buttons == [["Mooi"]]
    assert replies[3].file_url == "https://example.org/gids.pdf"
    async with httpx.AsyncClient() as http:
        assert replies[0].file_url is not None
        assert (await http.get(replies[0].file_url)).content == PHOTO_PNG

    with pytest.raises(BadRequest, match=r"^Message caption is too long$"):
        await bot.send_photo(pupil.chat_id, PHOTO_PNG, caption="x" * 1025)
    with pytest.raises(BadRequest, match=r"^Image_process_failed$"):
        await bot.send_photo(pupil.chat_id, b"not an image")
    with pytest.raises(BadRequest, match=r"^Wrong file identifier/http url specified$"):
        await bot.send_document(pupil.chat_id, "no-such-file-id")


async def test_commands_menu_chat_info_and_chat_action(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    await bot.set_my_commands([BotCommand("start", "Begin"), BotCommand("pauze", "Even stoppen")])
    await bot.set_my_commands(
        [BotCommand("help", "Hulp")], language_code="nl", scope=BotCommandScopeAllPrivateChats()
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start", "pauze"]
    nl = await bot.get_my_commands(language_code="nl", scope=BotCommandScopeAllPrivateChats())
    assert [c.command for c in nl] == ["help"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest, match=r"^Bot_command_invalid$"):
        await bot.set_my_commands([BotCommand("Niet Goed", "x")])
    assert await bot.set_chat_menu_button()
    chat = await bot.get_chat(pupil.chat_id)
    assert (chat.id, chat.type, chat.first_name) == (pupil.chat_id, "private", "Noor")
    assert await bot.send_chat_action(pupil.chat_id, "typing")
    assert (await client.chat_messages(pupil.chat_id))["typing"] == "typing"


# ------------------------------------------------------------------ webhook


async def test_webhook_gets_updates_in_order_with_the_secret_and_retries(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    received: list[tuple[str, str | None]] = []
    failures_left = [2]

    async def hook(request: Request) -> Response:
        body = await request.json()
        if failures_left[0] > 0:
            failures_left[0] -= 1
            return Response(status_code=500)
        received.append(
            (body["message"]["text"], request.headers.get("x-telegram-bot-api-secret-token"))
        )
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    pupil = await client.create_pupil("Hook")
    async with serving(receiver) as hook_url:
        await pupil.send("een")  # queued before the webhook: delivered first
        assert await bot.set_webhook(f"{hook_url}/hook", secret_token="geheim-123")
        with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates(timeout=0)
        for text in ("twee", "drie"):
            await pupil.send(text)
        await eventually(lambda: len(received) == 3)
        info = await bot.get_webhook_info()
        assert info.url == f"{hook_url}/hook"
        assert info.pending_update_count == 0
        assert info.last_error_message == "Wrong response from the webhook: 500"
        assert await bot.delete_webhook()
    assert received == [("een", "geheim-123"), ("twee", "geheim-123"), ("drie", "geheim-123")]
    await pupil.send("weer pollen")
    assert [u.message.text for u in await bot.get_updates(timeout=1) if u.message] == [
        "weer pollen"
    ]


# ------------------------------------------------------------------ limits and faults


async def test_stats_count_requests_per_bot_and_in_all(
    client: SandboxClient, bot: telegram.Bot, url: str
) -> None:
    # The bot's own counter is what a harness waits on ("has this bot called yet?").
    async def overall() -> int:
        return int((await client.http.get("/sandbox/api/stats")).json()["requests"])

    before, everything = await client.stats(), await overall()
    other = telegram.Bot("999:OTHER", base_url=f"{url}/bot")
    async with other:  # getMe
        await other.get_updates(timeout=0)
    await bot.get_updates(timeout=0)
    await bot.get_me()
    after = await client.stats()
    assert after["requests"] - before["requests"] == 2
    assert await overall() - everything == 4  # the other bot's getMe and getUpdates too


async def test_without_rate_limits_a_burst_to_one_chat_all_succeeds(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    await asyncio.gather(*(bot.send_message(pupil.chat_id, f"{i}") for i in range(20)))
    stats = await client.stats()
    assert (stats["sends_ok"], stats["http_429"]) == (20, 0)


async def test_rate_limits_answer_429_and_hold_the_chat_for_retry_after(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    other = await started_pupil(client, bot, "Ander")
    await client.config(rate_limits=True)
    for number in range(3):  # the burst allowance
        await bot.send_message(pupil.chat_id, f"snel {number}")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(pupil.chat_id, "te snel")
    assert seconds(info.value.retry_after) >= 1
    with pytest.raises(RetryAfter):
        await bot.send_message(pupil.chat_id, "nog steeds te snel")  # inside the window
    assert (await bot.send_message(other.chat_id, "andere chat mag")).text == "andere chat mag"

    log = await client.log(chat_id=pupil.chat_id, method="sendMessage")
    assert [e["outcome"] for e in log] == ["ok", "ok", "ok", "429", "429"]
    assert log[3]["retry_after"] >= 1
    assert log[3]["description"].startswith("Too Many Requests: retry after ")
    assert (await client.stats())["http_429"] == 2

    await client.config(rate_limits=False)
    assert (await bot.send_message(pupil.chat_id, "weer vrij")).text == "weer vrij"


async def test_global_rate_limit_counts_every_chat_of_the_bot(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupils = [await started_pupil(client, bot, f"P{i}") for i in range(4)]
    await client.config(rate_limits=True, global_rate=3, global_burst=3)
    for pupil in pupils[:3]:
        await bot.send_message(pupil.chat_id, "ok")
    with pytest.raises(RetryAfter):
        await bot.send_message(pupils[3].chat_id, "vierde chat, maar de bot zit vol")
    await client.config(global_rate=30, global_burst=30)


async def test_injected_faults_answer_429_then_502_and_then_recover(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    await client.config(faults=[{"status": 429, "count": 2, "retry_after": 7}])
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(pupil.chat_id, "x")
        assert seconds(info.value.retry_after) == 7
    assert (await bot.send_message(pupil.chat_id, "door")).text == "door"

    await client.config(faults=[{"status": 502, "seconds": 30}])
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(pupil.chat_id, "x")
    assert (await bot.get_me()).id == bot.id  # only send methods fail by default
    await client.config(faults=[])
    assert (await bot.send_message(pupil.chat_id, "weer ok")).text == "weer ok"
    outcomes = [e["outcome"] for e in await client.log(chat_id=pupil.chat_id)]
    assert outcomes == ["429", "429", "ok", "502", "ok"]


# ------------------------------------------------------------------ control API


async def test_chat_timeline_long_poll_wakes_on_a_new_message_and_on_edits(
    client: SandboxClient, bot: telegram.Bot
) -> None:
    pupil = await started_pupil(client, bot)
    head = (await client.chat_messages(pupil.chat_id))["seq"]
    waiting = asyncio.create_task(client.chat_messages(pupil.chat_id, after=head, wait=10))
    await asyncio.sleep(0.1)
    sent = await bot.send_message(pupil.chat_id, "Nieuw")
    timeline = await asyncio.wait_for(waiting, 5)
    assert [(m["text"], m["from_bot"]) for m in timeline["messages"]] == [("Nieuw", True)]
    await bot.edit_message_text("Nieuw!", chat_id=pupil.chat_id, message_id=sent.message_id)
    changed = await client.chat_messages(pupil.chat_id, after=timeline["seq"])
    assert [(m["text"], m["edited"]) for m in changed["messages"]] == [("Nieuw!", True)]
    everything = await client.chat_messages(pupil.chat_id)
    assert [(m["text"], m["outgoing"]) for m in everything["messages"]] == [
        ("/start", True),
        ("Nieuw!", False),
    ]


async def test_reset_forgets_pupils_but_keeps_update_ids_increasing(
    url: str, state: SandboxState
) -> None:
    token = "77:RESET-test"
    async with SandboxClient(url, token=token) as sandbox_client:
        pupil = await sandbox_client.create_pupil("Voor")
        await pupil.send("een")
        bot = state.bot_for_token(token)
        before = next(iter(bot.pending))
        await sandbox_client.reset()
        assert state.users == {}
        assert bot.pending == {}
        assert bot.chats == {}
        after = await sandbox_client.create_pupil("Na")
        await after.send("twee")
        assert next(iter(bot.pending)) > before
