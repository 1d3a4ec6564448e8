"""Staff in their own Telegram chat with the bot: linking, and acting on flags."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import relay
from bot.callbacks import verify
from bot.conversation import Incoming
from store import repo
from store.models import Staff

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger("leerbot.staff")

STAFF_IDS_TTL_S = 2.0


class StaffChat:
    """Handles updates from staff members (linked accounts and `/start st_...` codes)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._staff_ids: set[int] = set()
        self._staff_read = -STAFF_IDS_TTL_S

    def t(self, key: str, **values: object) -> str:
        return self.runtime.catalog.texts.get(key, "nl", **values)

    async def _is_staff(self, user_id: int) -> bool:
        # Every update asks; reading the few linked ids every few seconds instead of one
        # transaction per update keeps pupils' updates to a single transaction (a write lock on
        # SQLite). A link made in another process is seen within STAFF_IDS_TTL_S.
        if time.monotonic() - self._staff_read > STAFF_IDS_TTL_S:
            async with self.runtime.sessions() as session:
                self._staff_ids = await repo.staff_telegram_ids(session)
            self._staff_read = time.monotonic()
        return user_id in self._staff_ids

    async def handle(self, incoming: Incoming) -> bool:
        """True when this update was a staff matter and is dealt with."""
        is_link = (
            incoming.kind == "command"
            and incoming.command == "start"
            and incoming.args.startswith(repo.STAFF_CODE_PREFIX)
        )
        if not is_link and not await self._is_staff(incoming.user_id):
            return False
        now = self.runtime.conversation.clock()
        async with self.runtime.sessions.begin() as session:
            if is_link:
                if incoming.update_id is not None and not await repo.claim_update(
                    session, incoming.update_id, now=now
                ):
                    return True
                staff = await repo.link_staff(
                    session, code=incoming.args.strip(), telegram_user_id=incoming.user_id, now=now
                )
                if staff is not None:
                    self._staff_ids.add(incoming.user_id)
                text = (
                    self.t("staff.linked", name=staff.name)
                    if staff
                    else self.t("staff.link_invalid")
                )
                await repo.enqueue(
                    session,
                    chat_id=incoming.chat_id,
                    method="sendMessage",
                    payload={"chat_id": incoming.chat_id, "text": text},
                    priority=3,
                    staff_id=staff.id if staff else None,
                    now=now,
                )
            else:
                staff = await repo.staff_by_telegram(session, incoming.user_id)
                if staff is None:
                    return False
                if incoming.update_id is not None and not await repo.claim_update(
                    session, incoming.update_id, now=now
                ):
                    return True
                handler = self.runtime.extras.get("staff_commands")
                if handler is None or not await handler(session, staff, incoming, now):
                    role = self.t(f"roles.{staff.role}")
                    await repo.enqueue(
                        session,
                        chat_id=incoming.chat_id,
                        method="sendMessage",
                        payload={
                            "chat_id": incoming.chat_id,
                            "text": self.t("staff.help", role=role),
                        },
                        priority=3,
                        staff_id=staff.id,
                        now=now,
                    )
        self.runtime.conversation.on_commit()
        return True


class StaffCommands:
    """`runtime.extras["staff_commands"]`: "Ik neem dit op", /antwoord and /sluit from staff."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(
        self, session: AsyncSession, staff: Staff, incoming: Incoming, now: datetime
    ) -> bool:
        """True when the update was a command on a flag and is answered."""
        if incoming.kind == "callback":
            payload = (
                verify(self.runtime.settings.secret, incoming.chat_id, incoming.callback_data)
                or ""
            )
            if not payload.startswith("fa:") or not payload[3:].isdigit():
                await self._say(session, staff, incoming, relay.t("notify.button_expired"), now)
                return True
            await self._acknowledge(session, staff, incoming, int(payload[3:]), now)
            return True
        if incoming.kind != "command" or incoming.command.lower() not in {"antwoord", "sluit"}:
            return False
        command = incoming.command.lower()
        number, _, rest = re.sub(r"\s", " ", incoming.args.strip(), count=1).partition(" ")
        number = number.lstrip("#")
        if not number.isdigit() or not rest.strip():
            key = "notify.usage_reply" if command == "antwoord" else "notify.usage_close"
            await self._say(session, staff, incoming, relay.t(key), now)
            return True
        try:
            async with session.begin_nested():
                text = await self._act(session, staff, command, int(number), rest.strip(), now)
        except relay.RelayError as exc:
            text = str(exc)
        await self._say(session, staff, incoming, text, now)
        return True

    async def _act(
        self,
        session: AsyncSession,
        staff: Staff,
        command: str,
        flag_id: int,
        text: str,
        now: datetime,
    ) -> str:
        runtime = self.runtime
        if command == "antwoord":
            flag = await relay.reply(
                session,
                flag_id=flag_id,
                staff=staff,
                text=text,
                now=now,
                catalog=runtime.catalog,
                secret=runtime.settings.secret,
            )
            return relay.t("notify.reply_sent", id=flag.id, pupil=flag.pupil_pseudonym)
        flag = await relay.close(
            session,
            flag_id=flag_id,
            staff=staff,
            note=text,
            now=now,
            catalog=runtime.catalog,
            secret=runtime.settings.secret,
        )
        return relay.t("notify.closed", id=flag.id)

    async def _acknowledge(
        self, session: AsyncSession, staff: Staff, incoming: Incoming, flag_id: int, now: datetime
    ) -> None:
        try:
            async with session.begin_nested():
                flag = await relay.acknowledge(session, flag_id=flag_id, staff=staff, now=now)
        except relay.RelayError as exc:
            await self._say(session, staff, incoming, str(exc), now)
            return
        taker = (
            await session.get(Staff, flag.assigned_staff_id) if flag.assigned_staff_id else None
        )
        if taker is not None and taker.id != staff.id:
            text = relay.t("notify.taken", id=flag.id, name=taker.name)
        else:
            text = relay.t("notify.acknowledged", id=flag.id)
        if incoming.message_id is not None:
            # The button has done its work: take it off so nobody presses it twice.
            markup: dict[str, Any] = {"inline_keyboard": []}
            await repo.enqueue(
                session,
                chat_id=incoming.chat_id,
                method="editMessageReplyMarkup",
                payload={
                    "chat_id": incoming.chat_id,
                    "message_id": incoming.message_id,
                    "reply_markup": markup,
                },
                priority=1,
                staff_id=staff.id,
                now=now,
            )
        await self._say(session, staff, incoming, text, now)

    async def _say(
        self, session: AsyncSession, staff: Staff, incoming: Incoming, text: str, now: datetime
    ) -> None:
        await repo.enqueue(
            session,
            chat_id=incoming.chat_id,
            method="sendMessage",
            payload={"chat_id": incoming.chat_id, "text": text},
            priority=1,
            staff_id=staff.id,
            now=now,
        )
