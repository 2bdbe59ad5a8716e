"""End to end: 12 weeks of synthetic usage through the real bus into the real database.

Kafka (tansu) + PostgreSQL, and the in-process bus + SQLite (the same ScorerService code
path): the rollup tables hold exactly what the generator implies, and the model defaults give
each archetype its band.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import select

from services.scorer.rescorer import Rescorer
from shared import topics
from shared.clock import FixedClock
from shared.db.models import Account, HealthScore
from shared.scores import ScoreMessage
from tests.scorer.synthetic import (
    CONFIG,
    Archetype,
    Replay,
    Sessions,
    Stack,
    end_offsets,
    expected_rollups,
    generate,
    in_process_stack,
    kafka_stack,
    publish,
    read_rollups,
    run_scorer_until_consumed,
    wait_until,
)
from tests.support.broker import TansuBroker

pytestmark = pytest.mark.integration

EXPECTED_BANDS = {
    # Every component at or near full marks.
    Archetype.HEALTHY_GROWING: "green",
    Archetype.HEALTHY_STEADY: "green",
    # 10 of 50 seats on one key feature, flat: utilization 25 and breadth 33 points pull a
    # steady account to 67.9.
    Archetype.PLATEAUING: "yellow",
    # The login trend scores 0 (4 weekly actives against a baseline of 16), but the users left
    # still log in and 9 of 20 seats were active in the month: yellow, not red, by default.
    Archetype.DECLINING: "yellow",
    # Nothing for 35 days: no seats used, no features, no trend, last login too old.
    Archetype.DORMANT: "red",
    # Two of three key features still used: breadth 66.7 alone does not leave green.
    Archetype.ABANDONS_FEATURE: "green",
    Archetype.NEVER_ADOPTS: "green",
}


async def current_scores(sessions: Sessions, replay: Replay) -> dict[str, HealthScore]:
    async with sessions() as session:
        rows = await session.scalars(
            select(HealthScore).where(
                HealthScore.account_id.in_(replay.account_ids), HealthScore.as_of == replay.end
            )
        )
        return {h.account_id: h for h in rows}


async def bands(sessions: Sessions, replay: Replay) -> dict[str, str | None]:
    async with sessions() as session:
        rows = await session.execute(
            select(Account.account_id, Account.band).where(
                Account.account_id.in_(replay.account_ids)
            )
        )
        return {a: b for a, b in rows}


async def replay_and_score(stack: Stack, replay: Replay) -> None:
    group_id = f"scorer-{uuid.uuid4().hex[:8]}"
    ends = end_offsets(await publish(stack.producer, topics.EVENTS, replay.messages()))
    await run_scorer_until_consumed(stack, replay, ends, group_id)
    rescorer = Rescorer(stack.sessions, stack.producer, CONFIG, FixedClock(replay.as_of_datetime()))
    assert await rescorer.sweep(replay.end) == len(replay.accounts)


async def check_outcome(stack: Stack, replay: Replay) -> None:
    # Rollups: exactly the rows the events imply, not only the same totals.
    got = await read_rollups(stack.sessions, replay.account_ids)
    want = expected_rollups(replay.events)
    for account in replay.account_ids:
        assert got.totals(account) == want.totals(account), account
    assert got.account_days == want.account_days
    assert got.user_days == want.user_days
    assert got.feature_days == want.feature_days
    assert got.feature_user_days == want.feature_user_days

    # Bands, and the reasons behind the ones that are not plainly healthy.
    by_account = {a.account_id: a.archetype for a in replay.accounts}
    assert await bands(stack.sessions, replay) == {
        a: EXPECTED_BANDS[arch] for a, arch in by_account.items()
    }
    scores = await current_scores(stack.sessions, replay)
    assert set(scores) == set(by_account)
    for account, archetype in by_account.items():
        h = scores[account]
        assert h.band == EXPECTED_BANDS[archetype], (archetype, h.score, h.components)
        features = {f["feature"]: f for f in h.metrics["features"]}
        if archetype is Archetype.DORMANT:
            assert h.score == 0.0
            assert h.metrics["mau"] == 0
            assert h.metrics["days_since_last_login"] >= 35
        elif archetype is Archetype.DECLINING:
            assert h.components["login_trend"]["score"] == 0.0
            assert h.metrics["trend_ratio"] < 0.4
            assert h.metrics["trend_relative_slope"] < 0
        elif archetype is Archetype.PLATEAUING:
            assert h.score == 67.9
            assert h.components["login_trend"]["score"] == 100.0
        elif archetype is Archetype.ABANDONS_FEATURE:
            assert features["exports"]["uses_28d"] == 0
            assert features["exports"]["last_used"] is not None
            assert h.components["feature_breadth"]["score"] == pytest.approx(66.7)
        elif archetype is Archetype.NEVER_ADOPTS:
            assert features["exports"]["first_used"] is None
            assert h.components["feature_breadth"]["score"] == pytest.approx(66.7)
        else:
            assert h.score is not None and h.score >= 90, (archetype, h.score)


async def consume_scores(
    stack: Stack, accounts: set[str], as_of: date
) -> dict[str, list[ScoreMessage]]:
    consumer = stack.bus.consumer(f"scores-reader-{uuid.uuid4().hex[:8]}", [topics.SCORES])
    await consumer.start()
    got: dict[str, list[ScoreMessage]] = {}
    try:

        async def all_seen() -> bool:
            for r in await consumer.poll(max_records=1000, timeout_s=0.5):
                msg = ScoreMessage.from_bytes(r.value)
                assert r.key == msg.account_id.encode()
                got.setdefault(msg.account_id, []).append(msg)
            # Backfilled days come first: wait for each account's score as of the last day.
            return all(any(m.as_of == as_of for m in got.get(a, ())) for a in accounts)

        await wait_until(all_seen, timeout_s=90, what="a score message per account")
    finally:
        await consumer.stop()
    return got


async def check_score_messages(stack: Stack, replay: Replay) -> None:
    messages = await consume_scores(stack, set(replay.account_ids), replay.end)
    final = await bands(stack.sessions, replay)
    for account in replay.account_ids:
        at_end = [m for m in messages[account] if m.as_of == replay.end]
        assert at_end, account
        assert at_end[-1].band == final[account]
        assert {c.name for c in at_end[-1].components} <= {
            "seat_utilization",
            "stickiness",
            "feature_breadth",
            "login_trend",
            "recency",
        }


class TestReplay:
    async def test_kafka_and_postgresql(self, own_broker: TansuBroker, fresh_pg: str) -> None:
        replay = generate(uuid.uuid4().hex[:8])
        async with kafka_stack(own_broker.bootstrap, fresh_pg) as stack:
            await replay_and_score(stack, replay)
            await check_outcome(stack, replay)
            await check_score_messages(stack, replay)

    async def test_in_process_bus_and_sqlite(self, sqlite_url: str) -> None:
        replay = generate(uuid.uuid4().hex[:8])
        async with in_process_stack(sqlite_url) as stack:
            await replay_and_score(stack, replay)
            await check_outcome(stack, replay)
            await check_score_messages(stack, replay)
