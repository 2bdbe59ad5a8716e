"""The console account page says where each notification of its alerts went, or why not
(an alert whose message led with another alert of the account included)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from shared.db.models import Alert, AlertNotification
from tests.web.console_data import Seeded
from tests.web.test_console import parse

AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


async def test_the_account_page_lists_its_notifications(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async with seeded.sessions() as session, session.begin():
        lead = await session.get(Alert, seeded.alerts["dormant"])
        assert lead is not None
        account = lead.account_id
        other = Alert(
            **{c.key: getattr(lead, c.key) for c in Alert.__table__.columns if c.key != "id"}
        )
        other.rule, other.feature = "feature_unused", "exports"
        session.add(other)
        await session.flush()
        items = [{"alert_id": str(lead.id)}, {"alert_id": str(other.id)}]
        session.add_all(
            [
                AlertNotification(
                    alert_id=lead.id,
                    kind="open",
                    channel="slack",
                    destination="https://hooks.slack.com/services/T0/B0/secret-part",
                    payload={"items": items},
                    status="sent",
                    attempts=1,
                    next_attempt_at=AT,
                    created_at=AT,
                    sent_at=AT,
                ),
                AlertNotification(
                    alert_id=lead.id,
                    kind="open",
                    channel="none",
                    destination="",
                    payload={"items": items},
                    status="unrouted",
                    attempts=0,
                    next_attempt_at=AT,
                    created_at=AT,
                    last_error="not sent: email is off (TEND_SMTP_HOST is not set)",
                ),
            ]
        )
    r = await client.get(f"/console/accounts/{account}")
    assert r.status_code == 200
    rows = [cells for _, cells in parse(r.text).tables["deliveries"]]
    assert len(rows) == 2
    unrouted, sent = rows  # newest first
    assert unrouted[1] == "dormant, feature unused (exports)"
    assert unrouted[3] == "Nowhere"
    assert unrouted[4] == "unrouted (not sent: email is off (TEND_SMTP_HOST is not set))"
    assert sent[0] == "2026-11-30 06:00 UTC"
    assert sent[3].startswith("Slack") and "secret-part" not in r.text
    assert sent[4] == "sent"
