"""What a destination answers is never stored or shown: a CSM webhook (allowed by the host list)
and a CSM mailbox answer with secret-looking bodies; the outbox keeps the status code and a
reason tend wrote, and the alerts API shows that and a masked destination. On PostgreSQL and
SQLite, with the real consumer, dispatcher, loopback Slack stand-in and SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import AlertsHandler
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.slack import SlackNotifier
from services.web.app import create_app
from shared.clock import FixedClock
from shared.db.models import Alert, AlertNotification
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings
from tests.alerts.snapshots import create_defaults, create_snapshot, only_rules, unique_account
from tests.support.servers import Reply, SlackWebhookServer, SmtpServer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TOKEN = "remote-answers-test-token-0123456789"
LEAK = "LEAKED-internal-admin-token-7f3a9c"
HOOK_SECRET = "hooksecrethooksecret"


@pytest_asyncio.fixture
async def own_sessions(own_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(own_db_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def everything_stored(sessions: async_sessionmaker[AsyncSession]) -> str:
    """Every column of every alert and outbox row, as text."""
    async with sessions() as session:
        rows = [
            *(await session.scalars(select(Alert))),
            *(await session.scalars(select(AlertNotification))),
        ]
    return "\n".join(
        repr({c.key: getattr(r, c.key) for c in type(r).__table__.columns}) for r in rows
    )


class TestRemoteAnswersStayOut:
    async def test_bodies_are_not_stored_or_shown_only_codes_and_our_reasons(
        self,
        own_sessions: async_sessionmaker[AsyncSession],
        slack: SlackWebhookServer,
        smtp: SmtpServer,
    ) -> None:
        webhook = slack.url(f"/services/T0CSM/B0CSM/{HOOK_SECRET}")
        slack.script(Reply(500, f"<html><body>{LEAK}</body></html>"))
        smtp.script_data(f"550 5.7.1 {LEAK}")
        # A loopback stand-in for Slack is allowed here only through the testing switches.
        defaults = create_defaults(
            slack_webhook_hosts=("127.0.0.1",), slack_webhook_allow_http=True
        )
        handler = AlertsHandler(
            only_rules("dormant"), FixedClock(T0), defaults=defaults, console_url="http://c"
        )
        account = unique_account()
        snapshots = [
            create_snapshot(account, d, csm_email="dana@vendor.example", csm_slack=webhook)
            for d in (0, 1)
        ]
        async with own_sessions() as session, session.begin():
            await handler.flush(session, snapshots)

        email = EmailNotifier(
            SmtpSettings(host="127.0.0.1", port=smtp.port, from_address="t@v.example", tls="none")
        )
        async with SlackNotifier(min_interval_s=0) as slack_notifier:
            dispatcher = Dispatcher(
                own_sessions,
                {"slack": slack_notifier, "email": email},
                FixedClock(T0),
                max_attempts=3,
            )
            await dispatcher.run_once()

        # The allowed CSM webhook was used (not the default), and it answered with the leak.
        assert len(slack.requests) == 1 and slack.requests[0].path.endswith(HOOK_SECRET)
        async with own_sessions() as session:
            outbox = {n.channel: n for n in await session.scalars(select(AlertNotification))}
        assert outbox["slack"].destination == webhook
        assert (outbox["slack"].status, outbox["slack"].last_error) == (
            "pending",
            "HTTP 500 Internal Server Error",
        )
        assert (outbox["email"].status, outbox["email"].last_error) == (
            "failed",
            "SMTP 550 (refused permanently)",
        )
        assert LEAK not in await everything_stored(own_sessions)

        app = create_app(
            Settings(api_token=SecretStr(TOKEN), config=None),
            sessions=own_sessions,
            clock=FixedClock(T0 + timedelta(hours=1)),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            alert_id = outbox["slack"].alert_id
            detail = await client.get(f"/v1/alerts/{alert_id}")
            listing = await client.get("/v1/alerts", params={"account": account})
        assert detail.status_code == 200 and listing.status_code == 200
        shown = detail.text + listing.text
        assert LEAK not in shown and HOOK_SECRET not in shown and "T0CSM" not in shown
        assert "HTTP 500 Internal Server Error" in detail.text
        assert f"http://127.0.0.1:{slack.port}/services/…" in detail.text
