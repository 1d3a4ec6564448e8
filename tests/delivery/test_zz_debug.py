import pytest
from tests.delivery import test_sender as T

@pytest.mark.parametrize("i", range(4))
async def test_debug(i, sessions, client, tg_bot):
    await client.config(rate_limits=True)
    chats = [p.chat_id for p in await T.pupils(client, 41)]
    await T.queue(sessions, chats[0], [f"deel {i}" for i in range(6)])
    for chat in chats[1:]:
        await T.queue(sessions, chat, ["Nieuwe opdracht!"], priority=9)
    await T.sender_for(sessions, tg_bot).drain(limit_s=20)
    log = await client.log()
    t0 = log[0]["time"]
    bad = [e for e in log if e["outcome"] != "ok"]
    for e in bad:
        print(round(e["time"] - t0, 3), e["method"], e["chat_id"], e["outcome"], e.get("description"))
        for f in log:
            if f["chat_id"] == e["chat_id"] or abs(f["time"]-e["time"]) < 0.05:
                print("   ", round(f["time"] - t0, 3), f["method"], f["chat_id"], f["outcome"])
    assert not bad
