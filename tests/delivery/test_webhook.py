"""Webhook mode in one process: the secret, the update path, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy import func, select

from bot.webhook import SECRET_HEADER, create_app, register_webhook, webhook_secret
from leerbot.settings import Settings
from sandbox.driver import SandboxClient
from store.db import make_engine, make_sessions
from store.models import ProcessedUpdate
from tests.delivery.support import seed_class
from tests.support import updates
from tests.support.ptb import rig_settings
from tests.support.sandbox_server import free_port, running_sandbox, serving


@dataclass
class Hook:
    """A sandbox, and our webhook app serving on its own port."""

    url: str
    settings: Settings
    client: SandboxClient
    http: httpx.AsyncClient

    def headers(self, secret: str | None = None) -> dict[str, str]:
        return {SECRET_HEADER: webhook_secret(self.settings) if secret is None else secret}


@asynccontextmanager
async def webhook(database_url: str) -> AsyncIterator[Hook]:
    """The webhook app (sending from the same event loop) in front of a fresh sandbox."""
    port = free_port()
    async with running_sandbox() as (sandbox_url, _app):
        settings = rig_settings(
            database_url,
            sandbox_url,
            webhook_url=f"http://127.0.0.1:{port}/telegram",
            webhook_listen=f"127.0.0.1:{port}",
        )
        app = create_app(settings, sender_mode="inline")
        async with (
            serving(app, port=port) as url,
            SandboxClient(sandbox_url) as client,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            yield Hook(url=url, settings=settings, client=client, http=http)


async def test_a_post_without_the_right_secret_is_refused(sqlite_url: str) -> None:
    async with webhook(sqlite_url) as hook:
        update = updates.message(update_id=1, user_id=700_000_001, text="/start")
        assert (await hook.http.post("/telegram", json=update)).status_code == 403
        wrong = hook.headers("not-the-secret")
        assert (await hook.http.post("/telegram", json=update, headers=wrong)).status_code == 403
        garbage = await hook.http.post("/telegram", content=b"{nope", headers=hook.headers())
        assert garbage.status_code == 400
    engine = make_engine(sqlite_url)
    async with make_sessions(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
    await engine.dispose()


async def test_telegram_pushes_updates_and_the_pupil_gets_answers(database_url: str) -> None:
    async with webhook(database_url) as hook:
        engine = make_engine(database_url)
        code = await seed_class(make_sessions(engine))
        await engine.dispose()
        await register_webhook(hook.settings)
        info = await hook.client.get("/sandbox/api/stats")
        pupil = await hook.client.create_pupil("Noor")
        await pupil.send(f"/start {code}")
        replies = await pupil.wait_for_reply(timeout=10)
        assert "Welkom! Je zit nu in de klas 5A." in "\n".join(m.content for m in replies)
        await pupil.press("13 of ouder")
        assert "Je leerkracht ziet alleen wat jij deelt" in "\n".join(
            m.content for m in await pupil.wait_for_reply(timeout=10)
        )
        after = await hook.client.get("/sandbox/api/stats")
        assert after["webhook_posts"] - info["webhook_posts"] == 2
        assert after["webhook_failures"] == 0


async def test_health_readiness_and_metrics(sqlite_url: str) -> None:
    async with webhook(sqlite_url) as hook:
        pupil = await hook.client.create_pupil("Yusuf")
        await pupil.send("hallo")  # opens the chat; no webhook is set, so we post it ourselves
        update = updates.message(update_id=77, user_id=pupil.user_id, text="hallo")
        assert (
            await hook.http.post("/telegram", json=update, headers=hook.headers())
        ).status_code == 200
        await pupil.wait_for_reply(timeout=10)
        health = await hook.http.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = await hook.http.get("/readyz")
        assert ready.status_code == 200
        checks = ready.json()["checks"]
        assert checks["database"] == "ok"
        assert checks["rasa"].startswith("degraded")  # Rasa down: still ready, buttons work
        metrics = (await hook.http.get("/metrics")).text
        assert 'leerbot_updates_total{outcome="ok"} 1.0' in metrics
        assert 'leerbot_messages_sent_total{method="sendMessage"}' in metrics
        assert 'leerbot_outbox_backlog{state="pending"}' in metrics
        assert "leerbot_send_retry_after_total 0.0" in metrics
        assert "leerbot_send_seconds_bucket" in metrics
        assert "hallo" not in metrics
