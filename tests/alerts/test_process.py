"""``tend alerts`` as a real process on a real Kafka-protocol broker (tansu) and PostgreSQL: a
dormant account's scores give one Slack post to a loopback webhook; SIGTERM drains; a restart
with the same day published again posts nothing more."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import topics
from shared.alert_rules import RULE_NAMES
from shared.bus.base import Message, TopicSpec
from shared.bus.kafka import KafkaBus
from shared.db.models import ConsumerOffset
from shared.settings import KafkaSettings
from tests.alerts.snapshots import (
    alerts_of,
    create_snapshot,
    outbox_of,
    recent_day,
    unique_account,
)
from tests.support.broker import TansuBroker
from tests.support.process import ServiceProcess
from tests.support.servers import Reply, SlackWebhookServer

pytestmark = pytest.mark.e2e  # starts tend alerts processes

PARTITIONS = 2
RECENT = recent_day()
"""Snapshots of the day before yesterday and yesterday: the process runs on the wall clock."""


class AlertsProcess(ServiceProcess):
    def __init__(
        self, bootstrap: str, database_url: str, webhook: str, tmp: Path, **extra_env: str
    ) -> None:
        config = tmp / "tend.yaml"
        lines = ["rules:"] + [
            f"  {name}: {{enabled: {'true' if name == 'dormant' else 'false'}}}"
            for name in RULE_NAMES
        ]
        config.write_text("\n".join(lines) + "\n")
        env = dict(
            TEND_KAFKA_BOOTSTRAP=bootstrap,
            TEND_DATABASE_URL=database_url,
            TEND_CONFIG=str(config),
            TEND_API_TOKEN="alerts-test-token-0123456789abcdef",
            TEND_SLACK_WEBHOOK_URL=webhook,
            TEND_CONSOLE_URL="http://console.example",
            TEND_KAFKA__PARTITIONS=str(PARTITIONS),
            TEND_KAFKA__SESSION_TIMEOUT_MS="6000",
            TEND_KAFKA__HEARTBEAT_INTERVAL_MS="1000",
            TEND_ALERTS__BATCH_MAX_WAIT_S="0.1",
            TEND_ALERTS__DISPATCH_INTERVAL_S="0.2",
        )
        env.update(extra_env)
        super().__init__("alerts", env, tmp)


async def publish(bootstrap: str, messages: list[Message]) -> None:
    bus = KafkaBus(bootstrap, KafkaSettings(partitions=PARTITIONS))
    producer = bus.producer()
    await producer.start()
    try:
        await producer.ensure_topics([TopicSpec(t, PARTITIONS) for t in topics.ALL])
        await producer.publish(topics.SCORES, messages, timeout_s=30)
    finally:
        await producer.stop()
        await bus.close()


async def consumed(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Records of the scores topic the alerts group has committed in the database."""
    async with sessions() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(ConsumerOffset.next_offset), 0)).where(
                ConsumerOffset.group_id == "tend-alerts", ConsumerOffset.topic == topics.SCORES
            )
        )
    return int(total or 0)


class TestAlertsProcess:
    async def test_one_post_drain_on_sigterm_and_a_replayed_day_posts_nothing(
        self,
        own_broker: TansuBroker,
        database: tuple[str, async_sessionmaker[AsyncSession]],
        slack: SlackWebhookServer,
        tmp_path: Path,
    ) -> None:
        url, sessions = database
        account = unique_account()
        key = account.encode()
        day0, day1 = (create_snapshot(account, RECENT + d, csm_email=None) for d in (0, 1))
        await publish(
            own_broker.bootstrap,
            [Message(b"garbage", key=key), Message(day0.to_bytes(), key=key)],
        )
        proc = AlertsProcess(own_broker.bootstrap, url, slack.url(), tmp_path)
        try:
            proc.start()
            await publish(own_broker.bootstrap, [Message(day1.to_bytes(), key=key)])
            for _ in range(600):
                proc.alive()
                if slack.requests:
                    break
                await asyncio.sleep(0.1)
            assert len(slack.requests) == 1, proc.tail()
            assert account in slack.requests[0].body.decode()
            for _ in range(100):
                if [n.status for n in await outbox_of(sessions, account)] == ["sent"]:
                    break
                await asyncio.sleep(0.1)
            proc.terminate()

            await publish(own_broker.bootstrap, [Message(day1.to_bytes(), key=key)])
            proc.start()
            for _ in range(600):
                proc.alive()
                if await consumed(sessions) == 4:  # garbage, day 0, day 1, day 1 again
                    break
                await asyncio.sleep(0.1)
            assert await consumed(sessions) == 4, proc.tail()
            await asyncio.sleep(1.0)  # a wrong second post would have been sent by now
            proc.terminate()
        finally:
            proc.cleanup()
        [alert] = await alerts_of(sessions, account)
        assert (alert.status, alert.consecutive_holds) == ("open", 2)
        assert [n.status for n in await outbox_of(sessions, account)] == ["sent"]
        assert len(slack.requests) == 1

    async def test_killed_between_send_and_mark_posts_once_more_never_zero(
        self,
        own_broker: TansuBroker,
        database: tuple[str, async_sessionmaker[AsyncSession]],
        slack: SlackWebhookServer,
        tmp_path: Path,
    ) -> None:
        url, sessions = database
        account = unique_account()
        key = account.encode()
        await publish(
            own_broker.bootstrap,
            [
                Message(create_snapshot(account, RECENT + d, csm_email=None).to_bytes(), key=key)
                for d in (0, 1)
            ],
        )
        slack.script(Reply(200, "ok", delay_s=30))  # Slack has the post; the answer never comes
        proc = AlertsProcess(
            own_broker.bootstrap, url, slack.url(), tmp_path, TEND_ALERTS__CLAIM_LEASE_S="2"
        )
        try:
            proc.start()
            for _ in range(600):
                proc.alive()
                if slack.requests:
                    break
                await asyncio.sleep(0.1)
            assert len(slack.requests) == 1, proc.tail()
            proc.kill()  # between the send and its mark
            [row] = await outbox_of(sessions, account)
            assert (row.status, row.attempts) == ("pending", 1)

            proc.start()
            for _ in range(300):
                proc.alive()
                if [n.status for n in await outbox_of(sessions, account)] == ["sent"]:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            proc.terminate()
        finally:
            proc.cleanup()
        [row] = await outbox_of(sessions, account)
        assert (row.status, row.attempts) == ("sent", 2)
        assert len(slack.requests) == 2  # one duplicate, never none
        assert slack.requests[0].body == slack.requests[1].body
