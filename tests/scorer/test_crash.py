"""`tend scorer` as a process, killed and restarted: the rollups come out exactly as an
undisturbed run's; duplicates count once; SIGTERM drains and stores its offsets, and exits 0
within TEND_SHUTDOWN_TIMEOUT_S even while its database refuses or hangs every write.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select

from services.scorer.consumer import GROUP_ID
from shared import topics
from shared.bus.base import Delivery
from shared.db.migrate import upgrade_async
from shared.db.models import AccountDay, ProcessedEvent
from shared.events import CanonicalEvent
from tests.scorer.synthetic import (
    KEY_FEATURES,
    PARTITIONS,
    Sessions,
    end_offsets,
    expected_rollups,
    generate,
    kafka_stack,
    publish,
    read_rollups,
    run_scorer_until_consumed,
    stored_offsets,
    to_message,
    wait_for_offsets,
    wait_until,
)
from tests.support.broker import TansuBroker
from tests.support.postgres import SERVER_DSN, create_database, drop_database
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e  # starts tend processes

BATCH = 50


class ScorerProcess(ServiceProcess):
    """`tend scorer` as a child process (python -m services scorer)."""

    def __init__(self, bootstrap: str, database_url: str, tmp: Path) -> None:
        config = tmp / "tend.yaml"
        config.write_text(f"key_features: [{', '.join(KEY_FEATURES)}]\n")
        env = dict(
            TEND_KAFKA_BOOTSTRAP=bootstrap,
            TEND_DATABASE_URL=database_url,
            TEND_CONFIG=str(config),
            TEND_API_TOKEN="crash-test-token-0123456789abcdefg",
            TEND_KAFKA__PARTITIONS=str(PARTITIONS),
            TEND_KAFKA__SESSION_TIMEOUT_MS="6000",
            TEND_KAFKA__HEARTBEAT_INTERVAL_MS="1000",
            TEND_SCORER__BATCH_MAX_RECORDS=str(BATCH),
            TEND_SCORER__BATCH_MAX_WAIT_S="0.1",
        )
        super().__init__("scorer", env, tmp)


@pytest.fixture
def scorer_process(
    own_broker: TansuBroker, database: tuple[str, Sessions], tmp_path: Path
) -> Iterator[ScorerProcess]:
    proc = ScorerProcess(own_broker.bootstrap, database[0], tmp_path)
    yield proc
    proc.cleanup()


async def progress(sessions: Sessions) -> int:
    return sum((await stored_offsets(sessions, GROUP_ID)).values())


def expected_at(
    events: list[CanonicalEvent], deliveries: list[Delivery], stored: dict[tuple[str, int], int]
) -> list[CanonicalEvent]:
    """The events below the stored offsets: what the database must reflect, no more, no less."""
    return [
        e
        for e, d in zip(events, deliveries, strict=True)
        if d.offset < stored.get((d.topic, d.partition), 0)
    ]


class TestKilledAndRestarted:
    async def test_rollups_equal_an_undisturbed_run(
        self,
        own_broker: TansuBroker,
        database: tuple[str, Sessions],
        scorer_process: ScorerProcess,
    ) -> None:
        _, sessions = database
        rng = random.Random(20261123)
        replay = generate(uuid.uuid4().hex[:8], per_archetype=2)
        async with kafka_stack(own_broker.bootstrap, database[0]) as stack:
            deliveries = await publish(stack.producer, topics.EVENTS, replay.messages())
        ends = end_offsets(deliveries)
        total = sum(ends.values())

        # Kill it at seeded random points while it consumes; every restart resumes from the
        # offsets in the database.
        kill_at = sorted(rng.uniform(0.1, 0.85) for _ in range(4))
        for fraction in kill_at:
            scorer_process.start()

            async def reached(fraction: float = fraction) -> bool:
                scorer_process.alive()
                return await progress(sessions) >= fraction * total

            await wait_until(reached, timeout_s=120, interval_s=0.02, what=f"{fraction:.0%}")
            await asyncio.sleep(rng.uniform(0, 0.3))
            scorer_process.kill()
            # Whatever it had committed when it died is exact: no more, no less.
            stored = await stored_offsets(sessions, GROUP_ID)
            committed = expected_at(replay.events, deliveries, stored)
            assert await read_rollups(sessions) == expected_rollups(committed)
        assert scorer_process.runs == 4

        scorer_process.start()
        await wait_for_offsets(sessions, GROUP_ID, ends, alive=scorer_process.alive)
        scorer_process.terminate()
        disturbed = await read_rollups(sessions)

        # The undisturbed run: the same topic, its own group and database, never interrupted.
        other_url = await create_database("tend_crash_ref")
        try:
            await upgrade_async(other_url)
            async with kafka_stack(own_broker.bootstrap, other_url) as stack:
                await run_scorer_until_consumed(stack, replay, ends, "undisturbed")
                undisturbed = await read_rollups(stack.sessions)
        finally:
            await drop_database(other_url)

        assert disturbed.account_days == undisturbed.account_days
        assert disturbed.user_days == undisturbed.user_days
        assert disturbed.feature_days == undisturbed.feature_days
        assert disturbed.feature_user_days == undisturbed.feature_user_days
        assert disturbed == expected_rollups(replay.events)


class TestDuplicatesAndDrain:
    async def test_duplicate_message_id_counts_once(
        self,
        own_broker: TansuBroker,
        database: tuple[str, Sessions],
        scorer_process: ScorerProcess,
    ) -> None:
        _, sessions = database
        account = f"dup-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC).replace(microsecond=0)
        original = CanonicalEvent(
            event_id=f"{account}-m1",
            type="track",
            account_id=account,
            user_id="u1",
            name="Signed In",
            is_login=True,
            occurred_at=now - timedelta(minutes=1),
            received_at=now,
        )
        other = original.model_copy(update={"event_id": f"{account}-m2", "is_login": False})
        # A client retry: the same messageId, received again a minute later.
        retry = original.model_copy(update={"received_at": now + timedelta(minutes=1)})

        scorer_process.start()
        async with kafka_stack(own_broker.bootstrap, database[0]) as stack:
            # The same record published twice (a producer retry), plus another event.
            first = await publish(
                stack.producer, topics.EVENTS, [to_message(e) for e in (original, original, other)]
            )
            await wait_for_offsets(
                sessions, GROUP_ID, end_offsets(first), alive=scorer_process.alive
            )
            later = await publish(stack.producer, topics.EVENTS, [to_message(retry)])
            assert later[0].offset > max(d.offset for d in first)
            await wait_for_offsets(
                sessions, GROUP_ID, end_offsets(later), alive=scorer_process.alive
            )
        scorer_process.terminate()

        async with sessions() as session:
            day = (
                await session.execute(
                    select(AccountDay.events, AccountDay.logins, AccountDay.active_users).where(
                        AccountDay.account_id == account
                    )
                )
            ).all()
            ids = (
                await session.scalars(
                    select(ProcessedEvent.event_id).where(
                        ProcessedEvent.event_id.like(f"{account}-%")
                    )
                )
            ).all()
        assert [tuple(r) for r in day] == [(2, 1, 1)]
        assert sorted(ids) == [f"{account}-m1", f"{account}-m2"]

    async def test_sigterm_drains_and_stores_offsets(
        self,
        own_broker: TansuBroker,
        database: tuple[str, Sessions],
        scorer_process: ScorerProcess,
    ) -> None:
        _, sessions = database
        replay = generate(uuid.uuid4().hex[:8])
        async with kafka_stack(own_broker.bootstrap, database[0]) as stack:
            deliveries = await publish(stack.producer, topics.EVENTS, replay.messages())
        ends = end_offsets(deliveries)
        total = sum(ends.values())

        scorer_process.start()

        async def started() -> bool:
            scorer_process.alive()
            return await progress(sessions) >= total // 3

        await wait_until(started, timeout_s=120, interval_s=0.02, what="a third consumed")
        scorer_process.terminate()
        stored = await stored_offsets(sessions, GROUP_ID)
        assert 0 < sum(stored.values()) <= total
        # The drained state is exact: the rollups are those of the events below the offsets.
        committed = expected_at(replay.events, deliveries, stored)
        assert await read_rollups(sessions) == expected_rollups(committed)

        # And a restart finishes the rest from there.
        scorer_process.start()
        await wait_for_offsets(sessions, GROUP_ID, ends, alive=scorer_process.alive)
        scorer_process.terminate()
        assert await read_rollups(sessions) == expected_rollups(replay.events)


SHUTDOWN_TIMEOUT_S = 3.0


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class TestSigtermWhileTheDatabaseRefuses:
    """SIGTERM while every flush fails or hangs: the process gives up its batch, uncommitted,
    exits 0 within TEND_SHUTDOWN_TIMEOUT_S (plus start-up and close), and a restart on a
    healthy database loses nothing."""

    @pytest.mark.parametrize("refusal", ["read-only", "locked"])
    async def test_exits_within_the_bound_and_loses_nothing(
        self,
        own_broker: TansuBroker,
        database: tuple[str, Sessions],
        scorer_process: ScorerProcess,
        refusal: str,
    ) -> None:
        url, sessions = database
        name = url.rsplit("/", 1)[1]
        scorer_process.env["TEND_SHUTDOWN_TIMEOUT_S"] = str(SHUTDOWN_TIMEOUT_S)
        first = generate(uuid.uuid4().hex[:8])
        async with kafka_stack(own_broker.bootstrap, url) as stack:
            before = await publish(stack.producer, topics.EVENTS, first.messages())
        scorer_process.start()
        await wait_for_offsets(sessions, GROUP_ID, end_offsets(before), alive=scorer_process.alive)
        stored_before = await stored_offsets(sessions, GROUP_ID)

        lock: asyncpg.Connection | None = None
        if refusal == "read-only":
            await admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            await admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        else:
            # A flush that never returns: the offsets table is locked by an open transaction.
            lock = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            await lock.execute("BEGIN; LOCK TABLE consumer_offsets IN ACCESS EXCLUSIVE MODE")
        try:
            second = generate(uuid.uuid4().hex[:8], per_archetype=1)
            async with kafka_stack(own_broker.bootstrap, url) as stack:
                after = await publish(stack.producer, topics.EVENTS, second.messages())

            async def failing() -> bool:
                scorer_process.alive()
                if refusal == "read-only":
                    log = scorer_process.log_path.read_text(errors="replace")
                    return "flush of" in log and "retrying in" in log
                # Locked: one of the scorer's statements waits on the lock.
                conn = await asyncpg.connect(SERVER_DSN)
                try:
                    waiting = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND wait_event_type = 'Lock'",
                        name,
                    )
                finally:
                    await conn.close()
                return bool(waiting)

            await wait_until(failing, timeout_s=120, interval_s=0.2, what=f"{refusal} failures")
            started = time.monotonic()
            scorer_process.terminate(timeout_s=SHUTDOWN_TIMEOUT_S + 20)
            took = time.monotonic() - started
            print(f"SIGTERM with a {refusal} database: exited 0 after {took:.1f}s")
        finally:
            if lock is not None:
                await lock.close()
            if refusal == "read-only":
                await admin(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        # Nothing of the second load was committed, and nothing is lost: a restart on the
        # healthy database stores it all, exactly once.
        assert await stored_offsets(sessions, GROUP_ID) == stored_before
        scorer_process.start()
        await wait_for_offsets(sessions, GROUP_ID, end_offsets(after), alive=scorer_process.alive)
        scorer_process.terminate()
        assert await read_rollups(sessions) == expected_rollups(first.events + second.events)
