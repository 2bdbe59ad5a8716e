"""Rules that read other days, through the consumer, on PostgreSQL and SQLite: a re-score that
changes an earlier day's score must change the verdicts of the later days that compare with it,
even though the scorer does not publish those days again (it publishes only the days whose own
score changed: ``services/scorer/rescorer.py``). ``health_drop`` is the one rule that reads other
days' scores (``tests/alerts/test_rules.py`` checks that no other rule does), so a day judged
within ``within_days`` after a re-scored day must be judged again.

The reference is the in-order, single pass: every final score in one batch, each day judged
with all the days before it. Arriving as a backfill in batches, shuffled, then as re-scores of
some days (published as the scorer publishes them) must leave the same alerts, episodes and
stored days."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import AlertsHandler, AlertsService
from shared import topics
from shared.bus.base import Message
from shared.bus.memory import InProcessBus
from shared.clock import FixedClock
from shared.db.models import AlertScorePoint
from shared.db.session import create_engine, create_sessionmaker
from shared.scores import ComponentMove, Moved, ScoreMessage
from tests.alerts.snapshots import (
    DAY0,
    create_defaults,
    create_snapshot,
    only_rules,
    outbox_of,
    unique_account,
)
from tests.alerts.test_consumer import _caught_up, wait_for
from tests.alerts.test_replay import episodes, feed, table

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]

DAYS = 40
NOW = datetime.combine(DAY0 + timedelta(days=DAYS), datetime.min.time(), UTC) + timedelta(hours=9)
"""Day 39 is yesterday: the latest final day."""
RULES = only_rules("health_drop", "health_red")
LOW, HIGH = 60.0, 80.0
"""A day at ``HIGH`` makes the next 7 days at ``LOW`` a drop of 20 points (alert at 15)."""


def day(n: int) -> Any:
    return DAY0 + timedelta(days=n)


def band(score: float) -> str:
    return "green" if score >= 70 else "yellow" if score >= 40 else "red"


def versions(account: str, scores: Mapping[int, float]) -> dict[int, ScoreMessage]:
    """The scorer's messages for these day scores: each says what moved since the day before
    (its previous score and the component that moved), as the scorer's do."""
    out: dict[int, ScoreMessage] = {}
    for d, score in sorted(scores.items()):
        previous = scores.get(d - 1)
        delta = None if previous is None else round(score - previous, 1)
        out[d] = create_snapshot(
            account,
            d,
            dormant_days=1,
            score=score,
            band=band(score),
            previous_score=previous,
            previous_band=None if previous is None else band(previous),
            moved=Moved(
                score_delta=delta,
                components=(
                    ComponentMove(
                        name="login_trend", previous=previous, current=score, delta=delta
                    ),
                ),
            ),
        )
    return out


def republished(
    before: Mapping[int, ScoreMessage], after: Mapping[int, ScoreMessage]
) -> list[ScoreMessage]:
    """What a re-score publishes: the days whose message changed, in ascending days."""

    def same(a: ScoreMessage, b: ScoreMessage) -> bool:
        return a.model_dump(exclude={"computed_at"}) == b.model_dump(exclude={"computed_at"})

    return [m for d, m in sorted(after.items()) if d not in before or not same(before[d], m)]


def create_handler() -> AlertsHandler:
    # No channel: the notifications are recorded (unrouted), never claimed by a dispatcher,
    # so those of the many accounts here do not delay another test's on the shared database.
    return AlertsHandler(
        RULES,
        FixedClock(NOW),
        defaults=create_defaults(slack_webhook_url=None, email_enabled=False),
        console_url="http://console.example",
    )


async def stored_days(sessions: Sessions, account: str) -> list[tuple[Any, ...]]:
    """The stored days: each day's findings and checkpoint, as a later replay reads them."""
    async with sessions() as session:
        rows = await session.scalars(
            select(AlertScorePoint)
            .where(AlertScorePoint.account_id == account)
            .order_by(AlertScorePoint.as_of)
        )
        return [(p.as_of, p.score, p.band, p.findings, p.states) for p in rows]


async def outcome(
    sessions: Sessions, handler: AlertsHandler, account: str
) -> tuple[list[Any], list[Any], list[Any]]:
    """The alert rows (but those at ``none``: a re-score can leave one where the in-order pass
    never needed one), the episodes and the stored days."""
    return (
        sorted((row for row in await table(sessions, account) if row[1] != "none"), key=str),
        [e[1:] for e in await episodes(sessions, handler, account)],
        await stored_days(sessions, account),
    )


def assert_same(got: tuple[list[Any], ...], want: tuple[list[Any], ...]) -> None:
    """Part by part, so a failure shows where: rows, episodes, then day by day."""
    rows, found, days = got
    assert rows == want[0]
    assert found == want[1]
    assert [d[:3] for d in days] == [d[:3] for d in want[2]]
    for mine, theirs in zip(days, want[2], strict=True):
        assert mine == theirs, mine[0]


async def in_order(sessions: Sessions, scores: Mapping[int, float]) -> tuple[list[Any], ...]:
    """The reference: the final scores, in one batch."""
    account = unique_account("ref")
    handler = create_handler()
    await feed(sessions, handler, list(versions(account, scores).values()), len(scores))
    return await outcome(sessions, handler, account)


async def rescored(
    sessions: Sessions,
    first: Mapping[int, float],
    *later: Mapping[int, float],
    batch: int,
    order: Callable[[list[ScoreMessage]], list[ScoreMessage]] = list,
) -> tuple[tuple[list[Any], ...], list[ScoreMessage]]:
    """``first`` arrives (in ``order``), then each re-score to the ``later`` scores as the
    scorer publishes it: the outcome, and the messages the last re-score published."""
    account = unique_account("late")
    handler = create_handler()
    before = versions(account, first)
    await feed(sessions, handler, order(list(before.values())), batch)
    again: list[ScoreMessage] = []
    for scores in later:
        after = versions(account, scores)
        again = republished(before, after)
        await feed(sessions, handler, again, batch)
        before = after
    return await outcome(sessions, handler, account), again


def flat(**days: float) -> dict[int, float]:
    scores = dict.fromkeys(range(DAYS), LOW)
    scores.update({int(k[1:]): v for k, v in days.items()})
    return scores


class TestAReScoredDayJudgesTheLaterDaysAgain:
    async def test_a_raised_day_makes_the_unpublished_days_after_it_a_drop(
        self, db: Sessions
    ) -> None:
        # Late events raise day 30 to 80: days 31-37 are 20 points below it. The scorer
        # publishes day 30 and day 31 (its previous score changed), not days 32-37.
        want = await in_order(db, flat(d30=HIGH))
        got, again = await rescored(db, flat(), flat(d30=HIGH), batch=DAYS)
        assert [m.as_of for m in again] == [day(30), day(31)]
        assert_same(got, want)
        table_, episodes_, _ = got
        assert episodes_ == [(day(31), day(32), None, None)]
        [row] = table_
        assert row[:3] == ("health_drop", "open", day(31))
        assert "down 20 points from 80 on " + day(30).isoformat() in row[-1]

    async def test_a_lowered_day_clears_the_unpublished_days_after_it(self, db: Sessions) -> None:
        # The other way: day 30 was 80 and late events show it was 60 like the rest; days
        # 32-37 are no drop any more, and no alert was ever due.
        want = await in_order(db, flat())
        got, again = await rescored(db, flat(d30=HIGH), flat(), batch=DAYS)
        assert [m.as_of for m in again] == [day(30), day(31)]
        assert_same(got, want)
        assert got[1] == []

    @pytest.mark.parametrize("batch", [1, 3, 40])
    async def test_a_day_arriving_after_later_ones_judges_them_again(
        self, db: Sessions, batch: int
    ) -> None:
        # A first arrival out of order: day 30 comes after days 31-39, which were judged
        # without it (no drop, or no history at all for the first of them).
        scores = flat(d30=HIGH)
        want = await in_order(db, scores)
        got, _ = await rescored(
            db, scores, scores, batch=batch, order=lambda ms: ms[:30] + ms[31:] + ms[30:31]
        )
        assert_same(got, want)


class TestEpisodes:
    async def test_a_return_the_rescore_undoes_leaves_the_episode_as_it_ended(
        self, db: Sessions
    ) -> None:
        # Red on days 10-15 (resolved on day 18), and again from day 25: a return within the
        # cool-down continues the episode. Late events show days 25-39 were not red: the
        # episode ended on day 18 after all; it is kept as such, not lost.
        ended = flat(**{f"d{d}": 30.0 for d in range(10, 16)})
        back = {**ended, **{d: 30.0 for d in range(25, DAYS)}}
        want = await in_order(db, ended)
        got, again = await rescored(db, back, ended, batch=DAYS)
        assert [m.as_of for m in again] == [day(d) for d in range(25, DAYS)]
        assert_same(got, want)
        assert (day(10), day(11), day(18), "condition") in got[1]


class TestQuietByDefault:
    """What the CSM hears of a re-score of an earlier day: what changed in the present, once."""

    async def kinds(self, sessions: Sessions, account: str) -> list[str]:
        return [n.kind for n in await outbox_of(sessions, account)]

    async def test_an_alert_the_rescore_opens_is_announced_once(self, db: Sessions) -> None:
        account = unique_account("open")
        handler = create_handler()
        before, after = versions(account, flat()), versions(account, flat(d30=HIGH))
        await feed(db, handler, list(before.values()), DAYS)
        assert await self.kinds(db, account) == []
        again = republished(before, after)
        await feed(db, handler, again, DAYS)
        assert await self.kinds(db, account) == ["open"]
        await feed(db, handler, again, DAYS)  # the same re-score again (a replayed batch)
        assert await self.kinds(db, account) == ["open"]

    async def test_an_announced_alert_the_rescore_undoes_is_resolved_once(
        self, db: Sessions
    ) -> None:
        account = unique_account("undo")
        handler = create_handler()
        before, after = versions(account, flat(d30=HIGH)), versions(account, flat())
        await feed(db, handler, list(before.values()), DAYS)
        assert await self.kinds(db, account) == ["open"]
        again = republished(before, after)
        await feed(db, handler, again, DAYS)
        assert await self.kinds(db, account) == ["open", "resolve"]
        await feed(db, handler, again, DAYS)
        assert await self.kinds(db, account) == ["open", "resolve"]


class TestThroughTheService:
    async def test_the_service_on_the_bus_gives_the_in_order_history(self, own_db_url: str) -> None:
        # The same re-score, published on the in-process bus to the alerts service as
        # `tend up` runs it (batch consumer, offsets in the batch's transaction).
        engine = create_engine(own_db_url)
        sessions = create_sessionmaker(engine)
        bus = InProcessBus(sessions, 2)
        producer = bus.producer()
        await producer.start()
        service = AlertsService(
            bus,
            sessions,
            producer,
            RULES,
            FixedClock(NOW),
            defaults=create_defaults(slack_webhook_url=None, email_enabled=False),
            console_url="http://console.example",
            dispatcher=None,
            max_wait_s=0.05,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        account = unique_account("bus")
        before, after = versions(account, flat()), versions(account, flat(d30=HIGH))
        try:
            for messages in (list(before.values()), republished(before, after)):
                await producer.publish(
                    topics.SCORES, [Message(m.to_bytes(), key=account.encode()) for m in messages]
                )
                await wait_for(lambda: _caught_up(sessions))
        finally:
            stop.set()
            await task
            await producer.stop()
            await bus.close()
        try:
            got = await outcome(sessions, service.handler, account)
            assert_same(got, await in_order(sessions, flat(d30=HIGH)))
            assert got[1] == [(day(31), day(32), None, None)]
        finally:
            await engine.dispose()


def random_scores(rng: random.Random) -> dict[int, float]:
    """Scores that wander and sometimes jump: a drop of 15+ within 7 days now and then."""
    scores: dict[int, float] = {}
    level = rng.uniform(40, 90)
    for d in range(DAYS):
        level = min(100.0, max(0.0, level + rng.choice([0, 0, 0, 2, -2, 12, -12, 20, -20])))
        scores[d] = round(level, 1)
    return scores


def rescore(rng: random.Random, scores: Mapping[int, float]) -> dict[int, float]:
    """Late events move a few days' scores (each day alone, so most later days stay)."""
    out = dict(scores)
    for d in rng.sample(range(DAYS), rng.randint(1, 4)):
        out[d] = round(min(100.0, max(0.0, out[d] + rng.choice([-25, -15, 15, 25]))), 1)
    return out


class TestOrderIndependence:
    """Random histories, one or two re-scores of random days and random batching: always the
    in-order single pass's alerts, episodes and stored days."""

    @pytest.mark.parametrize("seed", range(12))
    async def test_rescores_give_the_in_order_history(self, db: Sessions, seed: int) -> None:
        rng = random.Random(seed)
        first = random_scores(rng)
        rescores = [rescore(rng, first)]
        if rng.random() < 0.5:  # late events again, after the first re-score
            rescores.append(rescore(rng, rescores[0]))
        shuffle = rng.random() < 0.5

        def order(messages: list[ScoreMessage]) -> list[ScoreMessage]:
            if shuffle:
                rng.shuffle(messages)
            return messages

        want = await in_order(db, rescores[-1])
        batch = rng.choice([1, 4, 9, DAYS])
        got, _ = await rescored(db, first, *rescores, batch=batch, order=order)
        assert_same(got, want)


def test_the_scenarios_are_what_they_say() -> None:
    """The fixtures themselves: a re-score of one day changes that day's message and the
    next's (its previous score), not the days after."""
    a, b = versions("x", flat()), versions("x", flat(d30=HIGH))
    assert [m.as_of for m in republished(a, b)] == [day(30), day(31)]
    assert republished(a, a) == []
