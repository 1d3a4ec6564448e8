"""Telegram update dicts, as the Bot API sends them, for feeding PTB directly.

update = message(update_id=7, user_id=1001, text="/start ABCD2345")
await app.process_update(Update.de_json(update, app.bot))
"""

from __future__ import annotations

import itertools
import time
from typing import Any

JSON = dict[str, Any]

_ids = itertools.count(1)


def next_id() -> int:
    """A fresh id for messages and callback queries in one test process."""
    return next(_ids)


def user(user_id: int, first_name: str = "Noor", **extra: Any) -> JSON:
    """A Telegram user."""
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": first_name,
        "language_code": "nl",
        **extra,
    }


def chat(chat_id: int, chat_type: str = "private", **extra: Any) -> JSON:
    """A chat: private chats carry the user's name, groups a title."""
    base: JSON = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        base["first_name"] = extra.pop("first_name", "Noor")
    else:
        base["title"] = extra.pop("title", "Klasgroep")
    return {**base, **extra}


def message_body(
    *,
    user_id: int,
    chat_id: int | None = None,
    chat_type: str = "private",
    text: str | None = None,
    first_name: str = "Noor",
    **extra: Any,
) -> JSON:
    """The `message` object of an update (text, or whatever `extra` holds)."""
    body: JSON = {
        "message_id": next_id(),
        "date": int(time.time()),
        "chat": chat(
            chat_id if chat_id is not None else user_id, chat_type, first_name=first_name
        ),
        "from": user(user_id, first_name),
    }
    if text is not None:
        body["text"] = text
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0].encode("utf-16-le")) // 2
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    body.update(extra)
    return body


def message(
    *, update_id: int, user_id: int, text: str | None = None, key: str = "message", **kwargs: Any
) -> JSON:
    """An update with a message (key: message, edited_message, channel_post, ...)."""
    return {"update_id": update_id, key: message_body(user_id=user_id, text=text, **kwargs)}


def callback(
    *,
    update_id: int,
    user_id: int,
    data: str,
    chat_id: int | None = None,
    chat_type: str = "private",
    message_id: int | None = None,
    first_name: str = "Noor",
) -> JSON:
    """A button press on a bot message in `chat_id` (the user's private chat by default)."""
    where = chat_id if chat_id is not None else user_id
    bot_message: JSON = {
        "message_id": message_id or next_id(),
        "date": int(time.time()),
        "chat": chat(where, chat_type, first_name=first_name),
        "from": {
            "id": 424242,
            "is_bot": True,
            "first_name": "Leerbot",
            "username": "leerbot_test_bot",
        },
        "text": "…",
    }
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(next_id()),
            "from": user(user_id, first_name),
            "chat_instance": str(where),
            "data": data,
            "message": bot_message,
        },
    }


MEDIA: dict[str, JSON] = {
    "sticker": {
        "sticker": {
            "file_id": "CAAC-st",
            "file_unique_id": "st1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": "😀",
        }
    },
    "voice": {"voice": {"file_id": "AwAC-vo", "file_unique_id": "vo1", "duration": 3}},
    "photo": {
        "photo": [{"file_id": "AgAC-ph", "file_unique_id": "ph1", "width": 90, "height": 90}]
    },
    "document": {
        "document": {"file_id": "BQAC-do", "file_unique_id": "do1", "file_name": "cv.pdf"}
    },
    "location": {"location": {"latitude": 50.93, "longitude": 5.33}},
    "contact": {"contact": {"phone_number": "+32470000000", "first_name": "Mama"}},
    "poll": {
        "poll": {
            "id": "p1",
            "question": "Wie komt?",
            "options": [
                {"text": "ik", "voter_count": 0, "persistent_id": "o1"},
                {"text": "jij", "voter_count": 0, "persistent_id": "o2"},
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    },
    "dice": {"dice": {"emoji": "🎲", "value": 4}},
    "video_note": {
        "video_note": {"file_id": "DQAC-vn", "file_unique_id": "vn1", "length": 240, "duration": 2}
    },
}


def odd_updates(*, update_id: int, user_id: int) -> dict[str, JSON]:
    """One update of every kind a pupil's client (or Telegram) may send besides text."""
    who = user(user_id)
    updates: dict[str, JSON] = {
        f"media_{kind}": message(update_id=update_id, user_id=user_id, **body)
        for kind, body in MEDIA.items()
    }
    updates |= {
        "edited_message": message(
            update_id=update_id,
            user_id=user_id,
            text="toch iets anders",
            key="edited_message",
            edit_date=int(time.time()),
        ),
        "poll_update": {"update_id": update_id, "poll": MEDIA["poll"]["poll"]},
        "poll_answer": {
            "update_id": update_id,
            "poll_answer": {
                "poll_id": "p1",
                "user": who,
                "option_ids": [0],
                "option_persistent_ids": ["o1"],
            },
        },
        "inline_query": {
            "update_id": update_id,
            "inline_query": {"id": str(next_id()), "from": who, "query": "hallo", "offset": ""},
        },
        "chosen_inline_result": {
            "update_id": update_id,
            "chosen_inline_result": {"result_id": "r1", "from": who, "query": "hallo"},
        },
        "my_chat_member": {
            "update_id": update_id,
            "my_chat_member": {
                "chat": chat(user_id),
                "from": who,
                "date": int(time.time()),
                "old_chat_member": {
                    "status": "member",
                    "user": user(424242, "Leerbot", is_bot=True),
                },
                "new_chat_member": {
                    "status": "kicked",
                    "until_date": 0,
                    "user": user(424242, "Leerbot", is_bot=True),
                },
            },
        },
        "callback_inline": {
            "update_id": update_id,
            "callback_query": {
                "id": str(next_id()),
                "from": who,
                "chat_instance": "x",
                "inline_message_id": "AAAA",
                "data": "1:menu|AAAAAAAAAAAA",
            },
        },
        "callback_game": {
            "update_id": update_id,
            "callback_query": {
                "id": str(next_id()),
                "from": who,
                "chat_instance": "x",
                "game_short_name": "quiz",
                "message": message_body(user_id=user_id, text="…"),
            },
        },
        "message_reaction": {
            "update_id": update_id,
            "message_reaction": {
                "chat": chat(user_id),
                "message_id": 1,
                "user": who,
                "date": int(time.time()),
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            },
        },
        "chat_join_request": {
            "update_id": update_id,
            "chat_join_request": {
                "chat": chat(-100777, "supergroup"),
                "from": who,
                "user_chat_id": user_id,
                "date": int(time.time()),
            },
        },
        "shipping_query": {
            "update_id": update_id,
            "shipping_query": {
                "id": "s1",
                "from": who,
                "invoice_payload": "x",
                "shipping_address": {
                    "country_code": "BE",
                    "state": "",
                    "city": "Hasselt",
                    "street_line1": "x",
                    "street_line2": "",
                    "post_code": "3500",
                },
            },
        },
        "unknown_type": {"update_id": update_id, "future_update_kind": {"anything": [1, 2]}},
        "empty_update": {"update_id": update_id},
        "message_without_sender": {
            "update_id": update_id,
            "message": {
                "message_id": next_id(),
                "date": int(time.time()),
                "chat": chat(user_id),
                "text": "hallo",
            },
        },
        "empty_text": message(update_id=update_id, user_id=user_id, text=""),
        "only_slash": message(update_id=update_id, user_id=user_id, text="/"),
        "bot_command_for_other_bot": message(
            update_id=update_id, user_id=user_id, text="/menu@een_andere_bot"
        ),
        "new_chat_title": message(
            update_id=update_id, user_id=user_id, new_chat_title="Nieuwe naam"
        ),
    }
    return updates
