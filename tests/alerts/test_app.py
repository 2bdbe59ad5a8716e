"""The alerts app (``tend alerts``) with its lifespan: consumer and dispatcher on a database of
its own, the in-process bus and a loopback Slack webhook; the alerts API (the web service's,
``tend web``) lists and acknowledges what it decided, on the same database."""

from __future__ import annotations

import asyncio

import httpx
from pydantic import SecretStr

from services.alerts.app import build_defaults, build_notifiers, create_app
from services.cli import embedded_services
from services.web.app import create_app as create_web_app
from shared import topics
from shared.bus.base import Message
from shared.bus.memory import InProcessBus
from shared.config import TendConfig
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings
from tests.alerts.snapshots import create_snapshot, only_rules, recent_day, unique_account
from tests.support.servers import SlackWebhookServer


class TestSettings:
    def test_email_only_with_an_smtp_host(self) -> None:
        assert set(build_notifiers(Settings())) == {"slack"}
        settings = Settings(smtp_host="mail.example", alerts={"default_emails": "a@x.io, b@x.io"})
        assert set(build_notifiers(settings)) == {"slack", "email"}
        defaults = build_defaults(settings)
        assert defaults.emails == ("a@x.io", "b@x.io") and defaults.email_enabled
        assert defaults.digest_hour_utc is None
        digest = Settings(
            smtp_host="m.example", alerts={"email_digest": True, "digest_hour_utc": 7}
        )
        assert build_defaults(digest).digest_hour_utc == 7

    def test_the_default_webhook_is_a_secret(self) -> None:
        settings = Settings(slack_webhook_url=SecretStr("https://hooks.example/T/B/x"))
        assert "hooks.example" not in repr(settings)
        assert build_defaults(settings).slack_webhook_url == "https://hooks.example/T/B/x"


class TestEmbedded:
    def test_tend_up_runs_the_alerts_service(self) -> None:
        assert {"scorer", "alerts"} <= set(embedded_services())


class TestApp:
    async def test_a_dormant_account_is_posted_listed_and_acked(
        self, own_db_url: str, slack: SlackWebhookServer
    ) -> None:
        account = unique_account()
        settings = Settings(
            database_url=own_db_url,
            api_token=SecretStr("alerts-app-test-token-0123456789a"),
            slack_webhook_url=SecretStr(slack.url()),
            console_url="http://console.example",
            alerts={"batch_max_wait_s": 0.05, "dispatch_interval_s": 0.1},
        )
        engine = create_engine(own_db_url)
        bus = InProcessBus(create_sessionmaker(engine), 2)
        producer = bus.producer()
        await producer.start()
        await producer.publish(
            topics.SCORES,
            [
                Message(
                    create_snapshot(account, recent_day() + d, csm_email=None).to_bytes(),
                    key=account.encode(),
                )
                for d in (0, 1)
            ],
        )
        app = create_app(settings, bus=bus, config=TendConfig(rules=only_rules("dormant")))
        try:
            async with app.router.lifespan_context(app):
                for _ in range(200):
                    if slack.requests:
                        break
                    await asyncio.sleep(0.05)
                web = create_web_app(settings, sessions=create_sessionmaker(engine))
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=web),
                    base_url="http://t",
                    headers={"Authorization": "Bearer alerts-app-test-token-0123456789a"},
                ) as client:
                    r = await client.get("/v1/alerts", params={"account": account})
                    [alert] = r.json()["alerts"]
                    assert (alert["rule"], alert["status"]) == ("dormant", "open")
                    r = await client.post(f"/v1/alerts/{alert['id']}/ack")
                    assert r.json()["status"] == "acknowledged"
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as ops:
                    assert (await ops.get("/readyz")).status_code == 200
                    assert (await ops.get("/v1/alerts")).status_code == 404
        finally:
            await producer.stop()
            await bus.close()
            await engine.dispose()
        [post] = slack.requests
        assert f"http://console.example/accounts/{account}" in post.body.decode()
