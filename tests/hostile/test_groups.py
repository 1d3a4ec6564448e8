"""Groups, supergroups and channels are refused without storing anything."""

from __future__ import annotations

from typing import Any

from tests.support import updates
from tests.support.dbstate import diff, snapshot
from tests.support.ptb import BotRig

REFUSAL = "Ik werk alleen in een privégesprek. Stuur mij een persoonlijk bericht."


def group_updates(
    rig: BotRig, *, group: int, supergroup: int, channel: int, user_id: int, code: str
) -> dict[str, dict[str, Any]]:
    def msg(chat_id: int, chat_type: str, text: str | None, **extra: Any) -> dict[str, Any]:
        return updates.message(
            update_id=rig.next_update(),
            user_id=user_id,
            chat_id=chat_id,
            chat_type=chat_type,
            text=text,
            **extra,
        )

    bot_user = updates.user(424242, "Leerbot", is_bot=True, username="leerbot_test_bot")
    return {
        "group_join_code": msg(group, "group", f"/start {code}"),
        "group_crisis_text": msg(group, "group", "ik wil dood"),
        "group_sticker": msg(group, "group", None, **updates.MEDIA["sticker"]),
        "group_bot_added": msg(group, "group", None, new_chat_members=[bot_user]),
        "supergroup_menu": msg(supergroup, "supergroup", "/menu@leerbot_test_bot"),
        "supergroup_text": msg(supergroup, "supergroup", "hallo allemaal"),
        "supergroup_edit": msg(
            supergroup, "supergroup", "/start", key="edited_message", edit_date=1
        ),
        "channel_post": msg(channel, "channel", "/start " + code, key="channel_post"),
        "channel_edit": msg(channel, "channel", "nieuws", key="edited_channel_post", edit_date=1),
        "group_button": updates.callback(
            update_id=rig.next_update(),
            user_id=user_id,
            chat_id=group,
            chat_type="group",
            data="1:menu|AAAAAAAAAAAA",
        ),
        "group_member_change": {
            "update_id": rig.next_update(),
            "my_chat_member": {
                "chat": updates.chat(group, "group"),
                "from": updates.user(user_id),
                "date": 1,
                "old_chat_member": {"status": "left", "user": bot_user},
                "new_chat_member": {"status": "member", "user": bot_user},
            },
        },
    }


async def test_group_supergroup_and_channel_updates_store_nothing(rig: BotRig) -> None:
    code = await rig.seed_class()
    pupil = await rig.join(code)  # a pupil of the class writes in a group too
    group = int((await rig.client.create_chat(chat_type="group"))["id"])
    supergroup = int((await rig.client.create_chat(chat_type="supergroup"))["id"])
    channel = int((await rig.client.create_chat(chat_type="channel"))["id"])
    stranger = await rig.sandbox_user("Mallory")
    before = await snapshot(rig.runtime.engine)
    for who in (pupil, stranger):
        cases = group_updates(
            rig, group=group, supergroup=supergroup, channel=channel, user_id=who, code=code
        )
        for name, update in cases.items():
            await rig.feed(update)
            changed = diff(before, await snapshot(rig.runtime.engine))
            assert changed == [], f"{name}: {changed}"
    assert rig.errors == []
    # A command (or being added) in a group gets one line pointing to a private chat;
    # plain talk in a group and anything in a channel gets nothing.
    sent = await rig.client.log(method="sendMessage")
    refusals = {(entry["chat_id"]) for entry in sent}
    assert refusals == {group, supergroup}
    for chat_id in (group, supergroup):
        timeline = await rig.client.chat_messages(chat_id)
        from_bot = [m["text"] for m in timeline["messages"] if m["from_bot"]]
        assert from_bot
        assert set(from_bot) == {REFUSAL}
