"""The webhook refuses requests without Telegram's secret token, and stores nothing for them."""

from __future__ import annotations

import httpx
import pytest

from bot.webhook import SECRET_HEADER, create_app, webhook_path, webhook_secret
from leerbot.settings import Settings
from store.db import make_engine
from tests.support import updates
from tests.support.dbstate import diff, snapshot
from tests.support.ptb import rig_settings
from tests.support.sandbox_server import running_sandbox, serving


async def test_webhook_without_the_secret_token_is_refused(database_url: str) -> None:
    async with running_sandbox() as (sandbox_url, _sandbox):
        settings = rig_settings(
            database_url, sandbox_url, webhook_url="https://leerbot.example-school.be/telegram"
        )
        async with serving(create_app(settings)) as url:
            endpoint = url + webhook_path(settings)
            engine = make_engine(database_url)
            try:
                before = await snapshot(engine)
                update = updates.message(update_id=77, user_id=555, text="/start ABCD2345")
                async with httpx.AsyncClient(timeout=10) as client:
                    for headers in (
                        {},
                        {SECRET_HEADER: ""},
                        {SECRET_HEADER: "raad-eens"},
                        {SECRET_HEADER: webhook_secret(settings)[:-1]},
                        {"X-Telegram-Bot-Api-Secret": webhook_secret(settings)},
                    ):
                        reply = await client.post(endpoint, json=update, headers=headers)
                        assert reply.status_code == 403, headers
                    assert diff(before, await snapshot(engine)) == []
                    # With the token the same update is handled (and remembered as handled).
                    reply = await client.post(
                        endpoint, json=update, headers={SECRET_HEADER: webhook_secret(settings)}
                    )
                    assert reply.status_code == 200
                after = await snapshot(engine)
                assert [row[0] for row in after["processed_update"]] == [77]
            finally:
                await engine.dispose()


async def test_an_empty_webhook_secret_does_not_open_the_webhook(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEERBOT_WEBHOOK_SECRET", "")  # as in a half-filled .env file
    assert Settings(database_url=database_url).webhook_secret is None
    async with running_sandbox() as (sandbox_url, _sandbox):
        settings = rig_settings(database_url, sandbox_url, webhook_secret="")
        assert len(webhook_secret(settings)) >= 32  # derived from the secret key instead
        async with serving(create_app(settings)) as url, httpx.AsyncClient() as client:
            update = updates.message(update_id=78, user_id=556, text="hallo")
            for headers in ({}, {SECRET_HEADER: ""}):
                reply = await client.post(
                    url + webhook_path(settings), json=update, headers=headers
                )
                assert reply.status_code == 403
