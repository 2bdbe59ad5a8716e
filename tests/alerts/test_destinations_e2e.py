"""Alert destinations end to end, on PostgreSQL and on SQLite with the in-process bus: synthetic
usage and a write-key ``group`` call (a real canonical event) through the scorer, scores through
the alerts service and the dispatcher, to loopback servers.

- The group call names an "internal" server as ``csm_slack`` and an outside address as
  ``csm_email``: neither receives anything, and the operator's profile is not changed.
- An operator-imported https webhook whose host is not allowed: the default route.
- An operator-imported webhook on an allowed host (a loopback stand-in, allowed only through
  the testing switches): used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.alerts.routing import Defaults
from shared import topics
from shared.accounts_csv import AccountRow, import_accounts
from shared.db.models import Account
from shared.events import CanonicalEvent
from tests.alerts.test_end_to_end import noon, run_alerts, score_days
from tests.scorer.synthetic import (
    Archetype,
    end_offsets,
    generate,
    in_process_stack,
    publish,
    run_scorer_until_consumed,
    to_message,
)
from tests.support.servers import SlackWebhookServer, SmtpServer

pytestmark = pytest.mark.integration

CSM = "dana@vendor.example"
OPS = "ops@vendor.example"
ATTACKER = "attacker@evil.example"


@pytest.fixture
def servers() -> Iterator[dict[str, SlackWebhookServer]]:
    """The default Slack route, the CSM's allowed webhook, and an internal service."""
    started = {name: SlackWebhookServer().start() for name in ("default", "csm", "internal")}
    yield started
    for server in started.values():
        server.stop()


def refused_slack() -> float:
    value = REGISTRY.get_sample_value(
        "tend_alerts_refused_destinations_total", {"channel": "slack"}
    )
    return value or 0.0


class TestDestinations:
    async def test_write_key_traits_never_route_and_operator_webhooks_are_checked(
        self, own_db_url: str, servers: dict[str, SlackWebhookServer], smtp: SmtpServer
    ) -> None:
        replay = generate(
            f"dst{uuid.uuid4().hex[:6]}",
            archetypes=(Archetype.PLATEAUING,),
            per_archetype=3,
            late_share=0,
        )
        traits_only, outside_host, allowed = (a.account_id for a in replay.accounts)
        internal = servers["internal"].url("/internal/admin/reset")
        csm_hook = f"http://localhost:{servers['csm'].port}/services/T0CSM/B0CSM/csmsecret"
        # A write key's group call on every account, after the history (it would win).
        group_calls = [
            CanonicalEvent(
                event_id=f"{a.account_id}-reroute",
                type="group",
                account_id=a.account_id,
                user_id=a.users[0],
                occurred_at=noon(replay.end),
                received_at=noon(replay.end),
                traits={"csm_slack": internal, "csmEmail": ATTACKER, "plan": "enterprise"},
            )
            for a in replay.accounts
        ]
        profiles = [
            AccountRow(
                outside_host,
                {"csm_email": CSM, "csm_slack": "https://evil.example/services/T/B/x"},
            ),
            AccountRow(allowed, {"csm_email": CSM, "csm_slack": csm_hook}),
        ]
        defaults = Defaults(
            slack_webhook_url=servers["default"].url(),
            emails=(OPS,),
            slack_webhook_hosts=("localhost",),
            slack_webhook_allow_http=True,
        )
        refused_before = refused_slack()
        d1, d2 = replay.end, replay.end + timedelta(days=1)
        async with in_process_stack(own_db_url) as stack:
            async with stack.sessions() as session, session.begin():
                await import_accounts(session, profiles)
            messages = [*replay.messages(), *(to_message(e) for e in group_calls)]
            deliveries = await publish(stack.producer, topics.EVENTS, messages)
            await run_scorer_until_consumed(stack, replay, end_offsets(deliveries), "tend-scorer")
            await score_days(stack, d1, d2)
            await run_alerts(stack, d2, servers["default"], smtp, defaults)
            async with stack.sessions() as session:
                stored = {a.account_id: a for a in await session.scalars(select(Account))}

        # The group call changed the plan, not the routing.
        assert {a.plan for a in stored.values()} == {"enterprise"}
        assert stored[traits_only].csm_slack is None and stored[traits_only].csm_email is None
        assert stored[allowed].csm_slack == csm_hook and stored[allowed].csm_email == CSM

        def posted(server: str) -> set[str]:
            bodies = [r.body.decode() for r in servers[server].requests]
            return {a.account_id for a in replay.accounts for b in bodies if a.account_id in b}

        assert servers["internal"].requests == []
        assert posted("default") == {traits_only, outside_host}
        assert posted("csm") == {allowed}
        assert refused_slack() > refused_before

        recipients = {r for m in smtp.messages for r in m.rcpt_tos}
        assert ATTACKER not in recipients
        assert recipients == {OPS, CSM}
