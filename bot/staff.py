"""Staff in their own Telegram chat with the bot: linking, and later replies to flags."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.conversation import Incoming
from store import repo

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger("leerbot.staff")


class StaffChat:
    """Handles updates from staff members (linked accounts and `/start st_...` codes)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def t(self, key: str, **values: object) -> str:
        return self.runtime.catalog.texts.get(key, "nl", **values)

    async def handle(self, incoming: Incoming) -> bool:
        """True when this update was a staff matter and is dealt with."""
        is_link = (incoming.kind == "command" and incoming.command == "start"
                   and incoming.args.startswith(repo.STAFF_CODE_PREFIX))
        now = self.runtime.conversation.clock()
        async with self.runtime.sessions.begin() as session:
            if is_link:
                if incoming.update_id is not None and not await repo.claim_update(
                        session, incoming.update_id, now=now):
                    return True
                staff = await repo.link_staff(session, code=incoming.args.strip(),
                                              telegram_user_id=incoming.user_id, now=now)
                text = self.t("staff.linked", name=staff.name) if staff else \
                    self.t("staff.link_invalid")
                await repo.enqueue(session, chat_id=incoming.chat_id, method="sendMessage",
                                   payload={"chat_id": incoming.chat_id, "text": text},
                                   priority=3, staff_id=staff.id if staff else None, now=now)
            else:
                staff = await repo.staff_by_telegram(session, incoming.user_id)
                if staff is None:
                    return False
                if incoming.update_id is not None and not await repo.claim_update(
                        session, incoming.update_id, now=now):
                    return True
                handler = self.runtime.extras.get("staff_commands")
                if handler is None or not await handler(session, staff, incoming, now):
                    role = self.t(f"roles.{staff.role}")
                    await repo.enqueue(session, chat_id=incoming.chat_id, method="sendMessage",
                                       payload={"chat_id": incoming.chat_id,
                                                "text": self.t("staff.help", role=role)},
                                       priority=3, staff_id=staff.id, now=now)
        self.runtime.conversation.on_commit()
        return True
