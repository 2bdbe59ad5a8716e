"""Alias calls: a user's two ids count as one user from the alias's day on (issue 14).

The pure part (which ids are one identity, the counts with them merged) is driven directly;
the rest goes through the real writer and repository on PostgreSQL and SQLite: events in, the
activity the scores are made of out, in any order of batches.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.activity import AccountActivity
from services.scorer.aliases import identities, merged_people
from services.scorer.repository import ScoringRepository
from services.scorer.rollups import load_rollups
from services.scorer.writer import RollupWriter
from shared.db.models import Account
from shared.events import CanonicalEvent
from tests.support.events import create_event

Sessions = async_sessionmaker[AsyncSession]
AS_OF = date(2026, 11, 28)


def ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


class TestIdentities:
    def test_one_alias_joins_two_ids_under_the_new_one(self) -> None:
        assert identities([("anon-1", "u-1", ago(3))], AS_OF) == {"anon-1": "u-1", "u-1": "u-1"}

    def test_an_alias_after_as_of_changes_nothing(self) -> None:
        assert identities([("anon-1", "u-1", ago(-1))], AS_OF) == {}

    def test_chains_end_at_the_current_id_in_any_order(self) -> None:
        aliases = [("a", "b", ago(9)), ("b", "c", ago(5)), ("x", "c", ago(7))]
        expected = dict.fromkeys("abcx", "c")
        for order in itertools.permutations(aliases):
            assert identities(order, AS_OF) == expected

    def test_two_current_ids_the_latest_alias_names_it(self) -> None:
        # "p" was aliased to "u" and later to "v": one person, named by the later alias.
        aliases = [("p", "u", ago(9)), ("p", "v", ago(2))]
        for order in itertools.permutations(aliases):
            assert identities(order, AS_OF) == dict.fromkeys("puv", "v")
        assert identities(aliases, ago(5)) == {"p": "u", "u": "u"}

    def test_a_circle_is_named_by_its_smallest_id(self) -> None:
        aliases = [("m", "n", ago(3)), ("n", "m", ago(2))]
        assert identities(aliases, AS_OF) == {"m": "m", "n": "m"}


class TestMergedPeople:
    def test_both_ids_on_one_day_are_one_active_user_with_both_days_events(self) -> None:
        ids = identities([("old", "new", ago(10))], AS_OF)
        days = [("old", ago(20), 2, 1), ("old", ago(1), 1, 0), ("new", ago(1), 3, 1)]
        merged = merged_people(ids, ["old", "new", "other"], days, [("reports", "old")], AS_OF)
        assert (merged.activated, merged.wau, merged.mau) == (2, 1, 1)
        assert merged.daily == {ago(20): 1, ago(1): 1}
        assert list(merged.per_user) == ["new"]
        person = merged.per_user["new"]
        assert sum(person["days"]) == 2 and sum(person["events"]) == 6
        assert (person["last"], person["login"]) == (ago(1), ago(1))
        assert merged.feature_users == {"reports": 1}


async def flush(db: Sessions, events: list[CanonicalEvent]) -> None:
    async with db() as session, session.begin():
        await RollupWriter().flush(session, "scorer", events, {})


async def activity_of(db: Sessions, account: str, as_of: date = AS_OF) -> AccountActivity:
    async with db() as session:
        [activity] = await ScoringRepository().load_activity(
            session, [account], as_of, ("reports",)
        )
        return activity


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def account_events(uid: str, acme: str) -> list[list[CanonicalEvent]]:
    """Batches: both ids' activity before the alias, the alias, the new id's activity after
    (on the alias's day too)."""

    def ev(n: str, user: str, day: date, **kw: Any) -> CanonicalEvent:
        return create_event(f"{uid}-{n}", account_id=acme, user_id=user, at=at(day), **kw)

    return [
        [
            ev("1", "old@acme", ago(20), is_login=True),
            ev("2", "old@acme", ago(5), feature="reports"),
            ev("3", "someone", ago(5)),
            ev("0", "u-77", ago(10)),
        ],
        [ev("4", "u-77", ago(5), type="alias", previous_id="old@acme", name=None)],
        [ev("5", "u-77", ago(5), feature="reports"), ev("6", "u-77", ago(2), is_login=True)],
    ]


async def seeded_account(db: Sessions, uid: str) -> str:
    """An account with :func:`account_events` flushed in order."""
    acme = f"{uid}-acme"
    for batch in account_events(uid, acme):
        await flush(db, batch)
    return acme


class TestCountedOnce:
    async def test_the_two_ids_count_as_one_user_from_the_alias_on(
        self, db: Sessions, uid: str
    ) -> None:
        acme = await seeded_account(db, uid)
        a = await activity_of(db, acme)
        assert (a.activated_users, a.wau, a.mau) == (2, 2, 2)
        assert a.daily_active_users[-6] == 2  # ago(5): u-77 and someone
        assert {u.user_id for u in a.users} == {"u-77", "someone"}
        [reports] = a.features
        assert reports.users_28d == 1
        # Before the alias's day the two were two users: event time, not arrival time.
        before = await activity_of(db, acme, ago(6))
        assert (before.activated_users, before.mau) == (2, 2)
        assert {u.user_id for u in before.users} == {"old@acme", "u-77"}

    async def test_any_order_of_batches_gives_the_same_activity(
        self, db: Sessions, uid: str
    ) -> None:
        results = []
        for n, order in enumerate(itertools.permutations(range(3))):
            acme = f"{uid}-{n}"
            batches = account_events(f"{uid}-{n}", acme)
            for i in order:
                await flush(db, batches[i])
            a = await activity_of(db, acme)
            results.append(
                (a.activated_users, a.wau, a.mau, a.daily_active_users, a.weekly_active_users)
            )
        assert len(set(results)) == 1, results

    async def test_an_alias_re_scores_the_account_from_its_day(
        self, db: Sessions, uid: str
    ) -> None:
        acme = f"{uid}-acme"
        batches = account_events(uid, acme)
        await flush(db, batches[0])
        async with db() as session, session.begin():
            await session.execute(
                update(Account).where(Account.account_id == acme).values(rescore_from=None)
            )
        await flush(db, batches[1])
        async with db() as session:
            marks = await ScoringRepository().load_marks(session, [acme])
        assert marks[acme].rescore_from == ago(5)


class TestBacktestReplay:
    async def test_the_replay_merges_aliases_like_the_repository(
        self, db: Sessions, uid: str
    ) -> None:
        acme = await seeded_account(db, uid)
        days = [ago(n) for n in (30, 6, 5, 2, 0)] + [AS_OF + timedelta(days=40)]
        async with db() as session:
            memory = await load_rollups(session, [acme], days[-1], ("reports",))
            for day in days:
                [expected] = await ScoringRepository().load_activity(
                    session, [acme], day, ("reports",)
                )
                assert memory.activity([acme], day) == [expected], day
