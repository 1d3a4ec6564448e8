"""Assigning a module to a class: one transaction for the row and every pupil's notice."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation import Conversation
from content.loader import Catalog
from store import repo
from store.models import SchoolClass

BROADCAST = 9  # replies to pupils go first; a class-wide notice may wait


async def assign_module(
    session: AsyncSession,
    *,
    catalog: Catalog,
    secret: bytes,
    klass: SchoolClass,
    module_id: str,
    due: date | None,
    staff_id: int | None = None,
) -> tuple[bool, int]:
    """Assign and queue a notice for each consenting pupil; (is new, pupils notified)."""
    _, new = await repo.assign(
        session, klass=klass, module_id=module_id, due=due, staff_id=staff_id
    )
    conversation = Conversation(sessions=None, catalog=catalog, secret=secret)  # type: ignore[arg-type]  # only system_in is used, inside our session
    notified = 0
    data = {"module": module_id, "due": due.strftime("%d/%m") if due else None}
    for pupil in await repo.pupils_in_class(session, klass.id):
        if pupil.blocked:
            continue
        result = await conversation.system_in(
            session, pupil_id=pupil.id, command="assigned", data=data, priority=BROADCAST
        )
        if result is not None and result.outbound:
            notified += 1
    return new, notified
