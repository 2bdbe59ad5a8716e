"""The rollup writer on PostgreSQL and SQLite: totals, exactly-once, late events, offsets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.writer import FlushResult, RollupWriter
from shared.db.errors import is_data_error
from shared.db.models import (
    Account,
    AccountDay,
    ConsumerOffset,
    FeatureDay,
    FeatureUserDay,
    ProcessedEvent,
    User,
    UserAccount,
    UserDay,
)
from shared.events import CanonicalEvent
from tests.support.events import create_event

Sessions = async_sessionmaker[AsyncSession]
DAY = date(2026, 11, 2)
GROUP = "scorer"


async def flush(
    db: Sessions,
    events: Sequence[CanonicalEvent],
    offsets: dict[Any, int] | None = None,
) -> FlushResult:
    async with db() as session, session.begin():
        return await RollupWriter().flush(session, GROUP, events, offsets or {})


async def rows(db: Sessions, model: Any, account: str) -> list[tuple[Any, ...]]:
    """The model's rows of ``account`` as tuples of their non-key columns, sorted."""
    cols = [c for c in model.__table__.columns if c.name != "account_id"]
    async with db() as session:
        result = await session.execute(
            select(*cols).where(model.__table__.c.account_id == account).order_by(*cols)
        )
        return [tuple(r) for r in result]


def sample_batch(acme: str, uid: str) -> list[CanonicalEvent]:
    return [
        create_event(f"{uid}-1", account_id=acme, user_id="u1", is_login=True),
        create_event(f"{uid}-2", account_id=acme, user_id="u1", feature="reports"),
        create_event(f"{uid}-3", account_id=acme, user_id="u1", feature="reports"),
        create_event(f"{uid}-4", account_id=acme, user_id="u2", feature="reports"),
        create_event(f"{uid}-5", account_id=acme, user_id="u2", is_login=True),
        create_event(f"{uid}-6", account_id=acme, user_id=None, type="page"),
        create_event(f"{uid}-7", account_id=acme, user_id="u3", at="2026-11-01T12:00:00+00:00"),
    ]


class TestRollups:
    async def test_one_batch_gives_the_expected_totals(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        result = await flush(db, sample_batch(acme, uid))
        assert result == FlushResult(applied=7, duplicates=0, accounts=(acme,))
        assert await rows(db, AccountDay, acme) == [
            (date(2026, 11, 1), 1, 0, 1),
            (DAY, 6, 2, 2),
        ]
        assert await rows(db, UserDay, acme) == [
            ("u1", DAY, 3, 1),
            ("u2", DAY, 2, 1),
            ("u3", date(2026, 11, 1), 1, 0),
        ]
        assert await rows(db, FeatureDay, acme) == [("reports", DAY, 3, 2)]
        assert await rows(db, FeatureUserDay, acme) == [
            ("reports", "u1", DAY, 2),
            ("reports", "u2", DAY, 1),
        ]
        async with db() as session:
            account = await session.get(Account, acme)
            assert account is not None
            assert account.first_seen == date(2026, 11, 1)
            assert account.dirty is True
            users = (await session.scalars(select(User).where(User.account_id == acme))).all()
        assert {u.user_id for u in users} == {"u1", "u2", "u3"}

    async def test_active_users_are_distinct_across_batches(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        for i in range(3):
            await flush(
                db,
                [
                    create_event(f"{uid}-{i}a", account_id=acme, user_id="u1", feature="f"),
                    create_event(f"{uid}-{i}b", account_id=acme, user_id=f"u{i + 2}", feature="f"),
                ],
            )
        assert await rows(db, AccountDay, acme) == [(DAY, 6, 0, 4)]
        assert await rows(db, FeatureDay, acme) == [("f", DAY, 6, 4)]

    async def test_late_event_updates_its_own_day(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        await flush(db, [create_event(f"{uid}-1", account_id=acme)])
        late = create_event(
            f"{uid}-2",
            account_id=acme,
            user_id="u9",
            is_login=True,
            at="2026-10-20T10:00:00+00:00",
            received_at=datetime(2026, 11, 3, tzinfo=UTC),
        )
        await flush(db, [late])
        assert await rows(db, AccountDay, acme) == [
            (date(2026, 10, 20), 1, 1, 1),
            (DAY, 1, 0, 1),
        ]
        async with db() as session:
            account = await session.get(Account, acme)
            assert account is not None and account.first_seen == date(2026, 10, 20)


class TestExactlyOnce:
    async def test_same_batch_twice_counts_once(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        batch = sample_batch(acme, uid)
        await flush(db, batch)
        before = await rows(db, AccountDay, acme), await rows(db, FeatureDay, acme)
        again = await flush(db, batch)
        assert again == FlushResult(applied=0, duplicates=7, accounts=())
        assert (await rows(db, AccountDay, acme), await rows(db, FeatureDay, acme)) == before

    async def test_duplicate_message_id_in_a_batch_counts_once(
        self, db: Sessions, uid: str
    ) -> None:
        acme = f"{uid}-acme"
        e = create_event(f"{uid}-dup", account_id=acme, is_login=True)
        result = await flush(db, [e, e, create_event(f"{uid}-other", account_id=acme)])
        assert (result.applied, result.duplicates) == (2, 1)
        assert await rows(db, AccountDay, acme) == [(DAY, 2, 1, 1)]

    async def test_client_retry_in_a_later_batch_counts_once(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        await flush(db, [create_event(f"{uid}-1", account_id=acme)])
        retry = create_event(
            f"{uid}-1", account_id=acme, received_at=datetime(2026, 11, 4, tzinfo=UTC)
        )
        result = await flush(db, [retry, create_event(f"{uid}-2", account_id=acme)])
        assert (result.applied, result.duplicates) == (1, 1)
        assert await rows(db, AccountDay, acme) == [(DAY, 2, 0, 1)]

    async def test_rolled_back_flush_leaves_nothing(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        batch = [create_event(f"{uid}-1", account_id=acme)]
        try:
            async with db() as session, session.begin():
                await RollupWriter().flush(session, GROUP, batch, {(f"{uid}-t", 0): 5})
                raise RuntimeError("crash before commit")
        except RuntimeError:
            pass
        assert await rows(db, AccountDay, acme) == []
        await flush(db, batch)
        assert await rows(db, AccountDay, acme) == [(DAY, 1, 0, 1)]

    async def test_purge_forgets_ids_older_than_the_window(self, db: Sessions, uid: str) -> None:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        acme = f"{uid}-acme"
        await flush(db, [create_event(f"{uid}-old", account_id=acme, received_at=old)])
        await flush(
            db,
            [create_event(f"{uid}-new", account_id=acme, received_at=old + timedelta(days=10))],
        )
        async with db() as session, session.begin():
            purged = await RollupWriter.purge_processed(session, old + timedelta(days=1))
        assert purged >= 1
        async with db() as session:
            ids = set(
                await session.scalars(
                    select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.like(f"{uid}%"))
                )
            )
        assert ids == {f"{uid}-new"}


class TestTraitsAndOffsets:
    async def test_group_and_identify_update_accounts_users_and_mapping(
        self, db: Sessions, uid: str
    ) -> None:
        acme = f"{uid}-acme"
        user = f"{uid}-u1"
        await flush(
            db,
            [
                create_event(
                    f"{uid}-g1",
                    type="group",
                    account_id=acme,
                    user_id=user,
                    traits={"name": "Acme", "seats": "10", "mrr": "1,000", "industry": "x"},
                ),
                create_event(
                    f"{uid}-i1", type="identify", account_id=acme, user_id=user, traits={"a": 1}
                ),
            ],
        )
        await flush(
            db,
            [
                create_event(
                    f"{uid}-g2",
                    type="group",
                    account_id=acme,
                    user_id=user,
                    traits={"seats": "oops", "plan": "Pro", "renewal_date": "2027-01-31"},
                ),
                create_event(
                    f"{uid}-i2", type="identify", account_id=acme, user_id=user, traits={"b": 2}
                ),
                create_event(f"{uid}-t", account_id=acme, user_id=user),
            ],
        )
        async with db() as session:
            account = await session.get(Account, acme)
            assert account is not None
            assert (account.name, account.seats, account.mrr, account.plan) == (
                "Acme",
                10,
                1000.0,
                "Pro",
            )
            assert account.renewal_date == date(2027, 1, 31)
            assert account.traits == {
                "name": "Acme",
                "seats": "oops",
                "mrr": "1,000",
                "industry": "x",
                "plan": "Pro",
                "renewal_date": "2027-01-31",
            }
            u = await session.get(User, (acme, user))
            assert u is not None and u.traits == {"a": 1, "b": 2}
            mapping = await session.get(UserAccount, user)
            assert mapping is not None and mapping.account_id == acme

    async def test_offsets_are_stored_with_the_batch(self, db: Sessions, uid: str) -> None:
        topic = f"{uid}-events"
        await flush(db, [], {(topic, 0): 10, (topic, 1): 4})
        await flush(db, [create_event(f"{uid}-1", account_id=f"{uid}-a")], {(topic, 0): 12})
        async with db() as session:
            stored = {
                (o.topic, o.partition): o.next_offset
                for o in await session.scalars(
                    select(ConsumerOffset).where(
                        ConsumerOffset.group_id == GROUP, ConsumerOffset.topic == topic
                    )
                )
            }
        assert stored == {(topic, 0): 12, (topic, 1): 4}


class TestStaleDays:
    """``accounts.rescore_from``: the earliest day whose score a batch changed, kept with the
    rollups so the re-scorer can score it again (see services/scorer/rescorer.py)."""

    async def marks(self, db: Sessions, account: str) -> tuple[Any, ...]:
        async with db() as session:
            row = await session.get(Account, account)
        assert row is not None
        return row.rescore_from, row.dirty

    async def test_the_earliest_day_any_batch_touched_wins(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        await flush(db, [create_event(f"{uid}-1", account_id=acme, at="2026-11-05T10:00:00Z")])
        assert await self.marks(db, acme) == (date(2026, 11, 5), True)
        await flush(db, [create_event(f"{uid}-2", account_id=acme, at="2026-11-09T10:00:00Z")])
        assert await self.marks(db, acme) == (date(2026, 11, 5), True)
        await flush(db, [create_event(f"{uid}-3", account_id=acme, at="2026-11-03T23:59:00Z")])
        assert await self.marks(db, acme) == (date(2026, 11, 3), True)

    async def test_a_scored_profile_change_marks_the_whole_history(
        self, db: Sessions, uid: str
    ) -> None:
        acme = f"{uid}-acme"

        def group(n: int, at: str, **traits: Any) -> CanonicalEvent:
            return create_event(f"{uid}-g{n}", type="group", account_id=acme, at=at, traits=traits)

        await flush(db, [group(1, "2026-11-01T10:00:00Z", seats=10, csm_email="a@x.io")])
        async with db() as session, session.begin():
            row = await session.get(Account, acme)
            assert row is not None
            row.rescore_from, row.dirty = None, False
        # The same profile again, and a routing-only change: no score moves.
        await flush(db, [group(2, "2026-11-08T10:00:00Z", seats="10", csm_email="b@x.io")])
        assert (await self.marks(db, acme))[0] is None
        # Seats change: every day since the account's start is stale (the re-scorer bounds it).
        await flush(db, [group(3, "2026-11-09T10:00:00Z", seats=20)])
        assert await self.marks(db, acme) == (date(2026, 11, 1), True)


class TestEfficiency:
    async def test_a_big_batch_is_a_handful_of_statements(self, db: Sessions, uid: str) -> None:
        base = datetime(2026, 11, 2, tzinfo=UTC)
        batch = [
            create_event(
                f"{uid}-{i}",
                account_id=f"{uid}-a{i % 50}",
                user_id=f"u{i % 200}",
                feature=("reports", "export", None)[i % 3],
                is_login=i % 10 == 0,
                at=base + timedelta(minutes=i * 7),
            )
            for i in range(1000)
        ]
        statements: list[str] = []
        async with db() as session, session.begin():
            sync_engine = session.get_bind()

            def count(*args: Any) -> None:
                statements.append(args[2])

            event.listen(sync_engine, "before_cursor_execute", count)
            try:
                result = await RollupWriter().flush(session, GROUP, batch, {(f"{uid}-t", 0): 1000})
            finally:
                event.remove(sync_engine, "before_cursor_execute", count)
        assert result.applied == 1000 and len(result.accounts) == 50
        assert 5 <= len(statements) <= 15, statements
        async with db() as session:
            total = 0
            for i in range(50):
                total += sum(r[1] for r in await rows(db, AccountDay, f"{uid}-a{i}"))
        assert total == 1000


class TestSetBasedWritesOnPostgreSQL:
    """The column arrays are cast to ``text[]``, never to ``varchar(n)[]`` (a cast would cut an
    over-long value silently): the column itself still refuses it, as a data error the consumer
    dead-letters."""

    async def test_an_over_long_account_id_is_refused_not_cut(
        self, pg_sessions: Sessions, uid: str
    ) -> None:
        long_id = f"{uid}-" + "x" * 200
        with pytest.raises(Exception) as refused:
            await flush(pg_sessions, [create_event(f"{uid}-1", account_id=long_id)])
        assert is_data_error(refused.value)
        assert await rows(pg_sessions, AccountDay, long_id[:200]) == []
