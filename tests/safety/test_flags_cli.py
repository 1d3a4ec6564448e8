"""`leerbot flags list --json` through the real command line: open and closed, newest first."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from bot import relay
from tests.safety.world import World


async def leerbot(url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
    env["LEERBOT_DATABASE_URL"] = url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leerbot.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_flags_list_json_shows_open_and_closed_flags_newest_first(world: World) -> None:
    pupil = world.pupil("Noor", 1001)
    await pupil.join()
    await pupil.press("Ik wil met iemand praten")
    await pupil.press("Het CLB")
    await pupil.send("thuis is het moeilijk")
    await pupil.press("Nee, het kan wachten")
    await pupil.send("ik wil dood")
    contact, crisis = await world.flags()
    async with world.conversation.sessions.begin() as session:
        await relay.close(
            session,
            flag_id=contact.id,
            staff=await world.staff("sara"),
            note="Doorverwezen naar het CLB.",
            now=world.clock(),
            catalog=world.catalog,
            secret=world.settings.secret,
        )

    code, out, err = await leerbot(world.url, "flags", "list", "--json")

    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    assert [(r["id"], r["type"], r["urgency"], r["state"]) for r in rows] == [
        (crisis.id, "crisis", "urgent", "open"),
        (contact.id, "contactvraag", "normal", "closed"),
    ]
    newest, closed = rows
    assert newest["pupil"] == crisis.pupil_pseudonym
    assert newest["class"] == "5A"
    assert newest["school"] == "Sint-Jozef VTI"
    assert newest["category"] == crisis.category
    assert newest["created_at"] > closed["created_at"]
    assert closed["closed_at"] is not None
    assert closed["target"] == "clb"
    assert closed["assigned_to"] == "Sara Janssens"
    assert {"acknowledged_at", "escalated_at", "delivery_failed", "notified_at"} <= set(newest)
    # Pseudonyms only: what the pupil wrote is never in the export.
    assert "thuis" not in out
    assert "dood" not in out
    assert "Noor" not in out
