"""End to end on the real components, from the ingest API: 12 weeks of synthetic usage posted as
Segment calls (``/v1/batch``) to the ingest app under uvicorn, onto ``tend.events.v1`` on the
tansu broker, through the scorer into a fresh PostgreSQL database and onto ``tend.scores.v1``,
then the alerts service consuming that topic. A plateauing account gets exactly one
``login_plateau`` alert, posted to a loopback Slack webhook with Block Kit and mailed to its CSM
through a real SMTP server; a healthy account gets none; once a ``group`` call posted over HTTP
cuts its seats (no room left to grow), the plateau alert resolves and says so.

The session broker is shared with other tests, so its topics hold their records too. This test
uses account ids of its own, and stores in its fresh database, as the scorer's and the alerts
service's starting offsets, the end of each topic before it wrote anything: each service reads
what this test produced and nothing older (the database is where the consumers' offsets live).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition

from services.alerts.consumer import GROUP_ID as ALERTS_GROUP
from services.alerts.consumer import AlertsService
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import Defaults
from services.ingest.app import create_app
from shared import topics
from shared.bus.base import TopicPartition
from shared.clock import FixedClock
from shared.db.keys import create_key
from shared.db.offsets import store_offsets
from shared.db.session import transaction
from shared.events import CanonicalEvent
from shared.settings import IngestSettings, Settings
from tests.alerts.test_end_to_end import (
    alerts_by_account,
    check_plateau_delivered,
    check_plateau_resolved,
    noon,
    outbox_settled,
    score_days,
)
from tests.scorer.synthetic import (
    CONFIG,
    DEFAULT_END,
    KAFKA,
    Archetype,
    Replay,
    Sessions,
    Stack,
    generate,
    import_profiles,
    kafka_stack,
    run_scorer_until_consumed,
    stored_offsets,
    wait_until,
)
from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp
from tests.support.servers import SlackWebhookServer, SmtpServer

pytestmark = pytest.mark.integration

SCORER_GROUP = "tend-scorer"
BATCH = 500
"""Calls per ``/v1/batch`` request: well under the event and body-size limits."""

Ends = dict[tuple[str, int], int]


# -- Segment calls ------------------------------------------------------------------------------


def segment_call(event: CanonicalEvent) -> dict[str, Any]:
    """The Segment call the synthetic event stands for (what an SDK would send)."""
    call: dict[str, Any] = {
        "type": event.type,
        "messageId": event.event_id,
        "timestamp": event.occurred_at.isoformat(),
    }
    if event.user_id is not None:
        call["userId"] = event.user_id
    if event.anonymous_id is not None:
        call["anonymousId"] = event.anonymous_id
    assert event.account_id is not None
    if event.type == "track":
        assert event.name is not None
        assert CONFIG.is_login(event.name) == event.is_login
        properties: dict[str, Any] = {"account_id": event.account_id}
        if event.feature is not None:
            properties["feature"] = event.feature
        call.update(event=event.name, properties=properties)
    elif event.type == "page":
        call.update(name=event.name, properties={"account_id": event.account_id})
    elif event.type == "identify":
        call.update(traits=dict(event.traits), context={"groupId": event.account_id})
    elif event.type == "group":
        call.update(groupId=event.account_id, traits=dict(event.traits))
    else:
        raise AssertionError(event.type)
    return call


async def post_calls(ingest: ServedApp, key: str, calls: Sequence[dict[str, Any]]) -> None:
    """POST the calls in order, ``BATCH`` per ``/v1/batch``; every one must be accepted."""
    async with httpx.AsyncClient(base_url=ingest.url, timeout=60) as client:
        for start in range(0, len(calls), BATCH):
            chunk = calls[start : start + BATCH]
            r = await client.post(
                "/v1/batch",
                content=json.dumps({"batch": chunk}).encode(),
                headers={"Content-Type": "application/json", "X-Write-Key": key},
            )
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["rejected"] == [], answer
            assert answer["accepted"] == len(chunk), answer


# -- the broker ---------------------------------------------------------------------------------


async def topic_ends(bootstrap: str, topic: str) -> Ends:
    """The end offset of every partition of ``topic``, read from the broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # refresh the metadata
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"{topic} has no partitions"
        ends = await consumer.end_offsets([KafkaTopicPartition(topic, p) for p in partitions])
        return {(tp.topic, tp.partition): int(o) for tp, o in ends.items()}
    finally:
        await consumer.stop()


async def start_group_at(sessions: Sessions, group_id: str, ends: Ends) -> None:
    """Store ``ends`` as the group's next offsets: it skips what other tests wrote."""
    async with transaction(sessions) as session:
        await store_offsets(
            session, group_id, {TopicPartition(t, p): o for (t, p), o in ends.items()}
        )


@contextlib.contextmanager
def serve_ingest(bootstrap: str, database_url: str) -> Iterator[ServedApp]:
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap=bootstrap,
        kafka=KAFKA,  # the partition count the synthetic stack created the topics with
        ingest=IngestSettings(produce_timeout_s=30.0),
    )
    served = ServedApp(create_app(settings, config=CONFIG))
    served.start()
    try:
        yield served
    finally:
        served.stop()


async def new_write_key(sessions: Sessions) -> str:
    async with transaction(sessions) as session:
        _, plaintext = await create_key(session, "alerts-e2e-http")
        return plaintext


# -- the pipeline -------------------------------------------------------------------------------


async def ingest_and_score(
    stack: Stack,
    bootstrap: str,
    ingest: ServedApp,
    key: str,
    replay: Replay,
    calls: Sequence[dict[str, Any]],
) -> None:
    """Post the calls, then run the scorer until it has consumed the events topic to where
    it ended once the posting finished."""
    await post_calls(ingest, key, calls)
    ends = await topic_ends(bootstrap, topics.EVENTS)
    await run_scorer_until_consumed(stack, replay, ends, SCORER_GROUP)


async def run_alerts(
    stack: Stack, bootstrap: str, day: date, slack: SlackWebhookServer, smtp: SmtpServer
) -> None:
    """The alerts service until it has consumed the scores topic to its current end and
    delivered every notification."""
    clock = FixedClock(noon(day))
    email = EmailNotifier(
        SmtpSettings(host="127.0.0.1", port=smtp.port, from_address="tend@v.example", tls="none")
    )
    dispatcher = Dispatcher(
        stack.sessions,
        {"slack": SlackNotifier(min_interval_s=0), "email": email},
        clock,
        idle_s=0.1,
    )
    service = AlertsService(
        stack.bus,
        stack.sessions,
        stack.producer,
        CONFIG.rules,
        clock,
        defaults=Defaults(slack_webhook_url=slack.url()),
        console_url="http://console.example",
        dispatcher=dispatcher,
        max_wait_s=0.1,
    )
    ends = await topic_ends(bootstrap, topics.SCORES)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def done() -> bool:
        if task.done():
            raise AssertionError(f"the alerts service stopped early: {task.exception()!r}")
        stored = await stored_offsets(stack.sessions, ALERTS_GROUP)
        caught_up = all(stored.get(tp, 0) >= end for tp, end in ends.items())
        return caught_up and await outbox_settled(stack.sessions)

    try:
        await wait_until(done, timeout_s=60, interval_s=0.1, what="the alerts service")
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def group_call(account_id: str, user_id: str, seats: int, day: date) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": f"{account_id}-seats-{seats}",
        "userId": user_id,
        "groupId": account_id,
        "traits": {"seats": seats},
        "timestamp": noon(day).isoformat(),
    }


class TestEndToEndFromIngest:
    async def test_plateau_alerted_once_on_slack_and_email_healthy_none_then_resolved(
        self,
        broker: TansuBroker,
        fresh_pg: str,
        slack: SlackWebhookServer,
        smtp: SmtpServer,
    ) -> None:
        # The history ends before today: the ingest keeps past timestamps as they are.
        end = min(DEFAULT_END, datetime.now(UTC).date() - timedelta(days=3))
        replay = generate(
            f"e2h{uuid.uuid4().hex[:6]}",
            archetypes=(Archetype.PLATEAUING, Archetype.HEALTHY_STEADY),
            late_share=0,
            end=end,
        )
        by = replay.by_archetype()
        plateau, healthy = by[Archetype.PLATEAUING][0], by[Archetype.HEALTHY_STEADY][0]
        [account] = [a for a in replay.accounts if a.account_id == plateau]
        mine = {plateau, healthy}
        calls = [segment_call(e) for e in replay.events]
        d1, d2 = replay.end, replay.end + timedelta(days=1)
        async with kafka_stack(broker.bootstrap, fresh_pg) as stack:  # ensures the topics
            await start_group_at(
                stack.sessions, SCORER_GROUP, await topic_ends(broker.bootstrap, topics.EVENTS)
            )
            await start_group_at(
                stack.sessions, ALERTS_GROUP, await topic_ends(broker.bootstrap, topics.SCORES)
            )
            key = await new_write_key(stack.sessions)
            await import_profiles(stack.sessions, replay)  # the CSMs: an operator's import
            with serve_ingest(broker.bootstrap, fresh_pg) as ingest:
                await ingest_and_score(stack, broker.bootstrap, ingest, key, replay, calls)
                await score_days(stack, d1, d2)  # the condition must hold on 2 evaluations
                await run_alerts(stack, broker.bootstrap, d2, slack, smtp)
                alerts = await alerts_by_account(stack.sessions)

                assert alerts.keys() <= mine
                check_plateau_delivered(alerts, healthy, account, slack, smtp)

                # Seats cut to 12 by a group call: 10 active of 12 leaves no room to grow.
                # It resolves once clear for keep_firing_for_days (3) days.
                d3, d4, d5 = (d2 + timedelta(days=n) for n in (1, 2, 3))
                seats = group_call(plateau, account.users[0], 12, d3)
                await ingest_and_score(stack, broker.bootstrap, ingest, key, replay, [seats])
                await score_days(stack, d3, d4, d5)
                posts_before = len(slack.requests)
                await run_alerts(stack, broker.bootstrap, d5, slack, smtp)
                alerts = await alerts_by_account(stack.sessions)

        check_plateau_resolved(alerts, plateau, slack, posts_before)
