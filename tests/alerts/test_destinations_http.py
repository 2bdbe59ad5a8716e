"""A write key cannot route alerts, from the ingest API on: a ``group`` call posted over HTTP
(uvicorn, tansu; PostgreSQL and SQLite) names an internal address as ``csm_slack`` and an
outside address as ``csm_email``; the scorer keeps the call's other traits and drops those."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared import topics
from shared.db.models import Account
from tests.alerts.test_end_to_end import noon
from tests.alerts.test_end_to_end_http import (
    SCORER_GROUP,
    new_write_key,
    post_calls,
    segment_call,
    serve_ingest,
    start_group_at,
    topic_ends,
)
from tests.scorer.synthetic import (
    DEFAULT_END,
    Archetype,
    generate,
    kafka_stack,
    run_scorer_until_consumed,
    wait_until,
)
from tests.support.broker import TansuBroker

pytestmark = pytest.mark.integration

ATTACKER = "attacker@evil.example"
INTERNAL = "http://127.0.0.1:9/internal/admin/reset"


async def settled_end(
    bootstrap: str, topic: str, before: dict[tuple[str, int], int], at_least: int
) -> dict[tuple[str, int], int]:
    """The topic's end once it holds ``at_least`` records more than ``before`` and reads the
    same twice in a row (the ingest puts no record on the topic for some calls, so the count
    of calls is no bound)."""
    last: dict[tuple[str, int], int] = {}

    async def settled() -> dict[tuple[str, int], int] | None:
        nonlocal last
        ends = await topic_ends(bootstrap, topic)
        grown = sum(ends.values()) - sum(before.get(tp, 0) for tp in ends) >= at_least
        same, last = ends == last, ends
        return ends if grown and same else None

    found: dict[tuple[str, int], int] = await wait_until(
        settled, timeout_s=60, interval_s=0.3, what=f"{topic} to hold the test's records"
    )
    return found


class TestGroupCallOverHttp:
    async def test_a_write_key_group_call_sets_no_csm_routing(
        self, broker: TansuBroker, own_db_url: str
    ) -> None:
        """The ingest API accepts the call; the scorer keeps its other traits and drops the
        routing ones, so no alert of this account can go where the call said (what happens
        to alerts of an account without a CSM: tests/alerts/test_destinations_e2e.py)."""
        # The history ends before today: the ingest keeps past timestamps as they are.
        end = min(DEFAULT_END, datetime.now(UTC).date() - timedelta(days=3))
        replay = generate(
            f"dsh{uuid.uuid4().hex[:6]}", archetypes=(Archetype.PLATEAUING,), late_share=0, end=end
        )
        [account] = replay.accounts
        reroute = {
            "type": "group",
            "messageId": f"{account.account_id}-reroute",
            "groupId": account.account_id,
            "userId": account.users[0],
            "timestamp": noon(replay.end).isoformat(),
            "traits": {
                "csm_slack": INTERNAL,
                "csmEmail": ATTACKER,
                "CSM Slack": INTERNAL,
                "plan": "enterprise",
            },
        }
        calls = [*(segment_call(e) for e in replay.events), reroute]
        async with kafka_stack(broker.bootstrap, own_db_url) as stack:  # ensures the topics
            events_before = await topic_ends(broker.bootstrap, topics.EVENTS)
            await start_group_at(stack.sessions, SCORER_GROUP, events_before)
            key = await new_write_key(stack.sessions)
            with serve_ingest(broker.bootstrap, own_db_url) as ingest:
                await post_calls(ingest, key, calls)
            # The broker may report a topic's end late: the scorer runs to a settled one.
            events_end = await settled_end(broker.bootstrap, topics.EVENTS, events_before, 1)
            await run_scorer_until_consumed(stack, replay, events_end, SCORER_GROUP)
            async with stack.sessions() as session:
                stored = await session.scalar(
                    select(Account).where(Account.account_id == account.account_id)
                )

        assert stored is not None
        assert stored.plan == "enterprise"  # the call was processed; its other traits count
        assert (stored.csm_slack, stored.csm_email) == (None, None)
        assert not {"csm_slack", "csmEmail", "CSM Slack", "csm_email"} & set(stored.traits)
        assert INTERNAL not in repr(stored.traits) and ATTACKER not in repr(stored.traits)
