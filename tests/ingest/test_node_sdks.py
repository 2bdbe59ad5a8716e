"""Segment's and RudderStack's Node SDKs from npm against a running tend ingest (issue 14).

``@segment/analytics-node`` and ``@rudderstack/rudder-sdk-node`` are run by node
(tests/js/send_node.js) with tend as their host; every call type is found on the events topic
by its messageId and then stored by the scorer's writer in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.scorer.writer import RollupWriter
from shared.db.models import User, UserAlias, UserDay
from tests.ingest.test_sdks import new_ids
from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp, read_events
from tests.support.js import send_with_node_sdk

pytestmark = pytest.mark.integration


def node_calls(account: str, user: str, previous: str, ids: dict[str, str]) -> list[dict[str, Any]]:
    """The same calls as the browser's, in the Node SDKs' form (one object per call)."""
    on = {"userId": user, "context": {"groupId": account}}
    return [
        {
            "method": "identify",
            "message": {**on, "traits": {"plan": "pro"}, "messageId": ids["identify"]},
        },
        {
            "method": "group",
            "message": {
                "userId": user,
                "groupId": account,
                "traits": {"name": "Customer Inc", "seats": 25},
                "messageId": ids["group"],
            },
        },
        {
            "method": "track",
            "message": {**on, "event": "Signed In", "messageId": ids["track"]},
        },
        {
            "method": "page",
            "message": {**on, "name": "Dashboard", "messageId": ids["page"]},
        },
        {
            "method": "screen",
            "message": {**on, "name": "Home", "messageId": ids["screen"]},
        },
        {
            "method": "alias",
            "message": {**on, "previousId": previous, "messageId": ids["alias"]},
        },
    ]


class TestNodeSdks:
    @pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
    async def test_every_call_arrives_and_is_stored(
        self,
        npm_sdks: Path,
        ingest: ServedApp,
        write_key: str,
        broker: TansuBroker,
        pg_sessions: Any,
        sdk: str,
    ) -> None:
        ids = new_ids(sdk)
        account, user, previous = (f"{sdk}-{uuid.uuid4().hex[:8]}" for _ in range(3))
        calls = node_calls(account, user, previous, ids)
        result = await asyncio.to_thread(send_with_node_sdk, sdk, ingest.url, write_key, calls)
        assert result == {"errors": []}

        found = await read_events(broker.bootstrap, set(ids.values()))
        assert found.keys() == set(ids.values())
        events = [found[ids[c["method"]]][2] for c in calls]
        assert [e.type for e in events] == [c["method"] for c in calls]
        assert all(e.account_id == account for e in events)
        assert events[2].is_login and events[5].previous_id == previous
        assert all(e.occurred_at <= datetime.now(UTC) for e in events)

        async with pg_sessions() as session, session.begin():
            applied = await RollupWriter().flush(session, f"sdk-{sdk}", events, {})
        assert applied.applied == len(calls)
        async with pg_sessions() as session:
            days = (
                await session.execute(select(UserDay.user_id).where(UserDay.account_id == account))
            ).scalars()
            aliases = await session.execute(
                select(UserAlias.previous_id, UserAlias.user_id).where(
                    UserAlias.account_id == account
                )
            )
            traits = await session.scalar(
                select(User.traits).where(User.account_id == account, User.user_id == user)
            )
        assert set(days) == {user}  # the login, the page and the screen: one user's day
        assert list(aliases) == [(previous, user)]
        assert traits == {"plan": "pro"}
