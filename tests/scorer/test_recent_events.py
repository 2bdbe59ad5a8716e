"""The rollup writer keeps each account's newest counted events in ``recent_events``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.recent import RECENT, RECENT_EVENTS_KEPT, RecentEvents, prune
from services.scorer.writer import RollupWriter
from shared.db.keys import create_key
from shared.db.models import RecentEvent
from shared.events import CanonicalEvent
from shared.read.events import last_events
from tests.support.events import create_event

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


async def flush(
    db: Sessions, events: Sequence[CanonicalEvent], writer: RollupWriter | None = None
) -> None:
    async with db() as session, session.begin():
        await (writer or RollupWriter()).flush(session, "recent", events, {})


async def stored(db: Sessions, account: str) -> int:
    async with db() as session:
        n = await session.scalar(
            select(func.count()).select_from(RecentEvent).where(RecentEvent.account_id == account)
        )
    return int(n or 0)


def numbered(uid: str, account: str, first: int, n: int) -> list[CanonicalEvent]:
    return [
        create_event(
            f"{uid}-{account}-{i}",
            account_id=f"{uid}-{account}",
            name=f"Event {i}",
            at=START + timedelta(minutes=i),
        )
        for i in range(first, first + n)
    ]


async def kept_names(db: Sessions, account: str) -> list[str | None]:
    async with db() as session:
        return [e.name for e in await last_events(session, account, limit=RECENT_EVENTS_KEPT)]


class TestKept:
    @pytest.mark.parametrize("n", [0, 1, RECENT_EVENTS_KEPT, RECENT_EVENTS_KEPT + 7])
    async def test_one_batch_keeps_the_newest(self, db: Sessions, uid: str, n: int) -> None:
        await flush(db, numbered(uid, "a", 0, n))
        expected = [f"Event {i}" for i in reversed(range(n))][:RECENT_EVENTS_KEPT]
        assert await kept_names(db, f"{uid}-a") == expected

    async def test_batches_prune_the_oldest_per_account(self, db: Sessions, uid: str) -> None:
        await flush(db, numbered(uid, "a", 0, 30) + numbered(uid, "b", 0, 3))
        await flush(db, numbered(uid, "a", 30, 30))
        assert await kept_names(db, f"{uid}-a") == [f"Event {i}" for i in range(59, 9, -1)]
        # Pruning a's events leaves b's alone.
        assert await kept_names(db, f"{uid}-b") == ["Event 2", "Event 1", "Event 0"]
        assert await stored(db, f"{uid}-a") == RECENT_EVENTS_KEPT

    async def test_one_writer_prunes_every_so_many_rows(self, db: Sessions, uid: str) -> None:
        writer = RollupWriter(recent=RecentEvents(prune_every=100))
        await flush(db, numbered(uid, "a", 0, 40), writer)  # the first batch prunes
        for first in range(40, 160, 40):
            await flush(db, numbered(uid, "a", first, 40), writer)
            newest = [f"Event {i}" for i in range(first + 39, -1, -1)][:RECENT_EVENTS_KEPT]
            assert await kept_names(db, f"{uid}-a") == newest  # what people see: always 50
        # 40 + 40 + 40 rows since the first prune: the third batch crossed 100 and pruned.
        assert await stored(db, f"{uid}-a") == RECENT_EVENTS_KEPT
        await flush(db, numbered(uid, "a", 160, 40), writer)
        assert await stored(db, f"{uid}-a") == RECENT_EVENTS_KEPT + 40  # until the next prune

    async def test_a_replayed_batch_is_kept_once(self, db: Sessions, uid: str) -> None:
        batch = numbered(uid, "a", 0, 3)
        await flush(db, batch)
        await flush(db, batch + batch[:1])
        assert await kept_names(db, f"{uid}-a") == ["Event 2", "Event 1", "Event 0"]

    async def test_events_without_an_account_are_not_kept(self, db: Sessions, uid: str) -> None:
        identify = create_event(f"{uid}-i", type="identify", account_id=None, user_id=f"{uid}-u")
        await flush(db, [identify])
        async with db() as session:
            found = await last_events(session, None, limit=RECENT_EVENTS_KEPT)
        assert all(e.event_id != f"{uid}-i" for e in found)


class TestWhatIsShown:
    async def test_times_user_and_write_key(self, db: Sessions, uid: str) -> None:
        async with db() as session, session.begin():
            key, plaintext = await create_key(session, f"web app {uid}")
        received = START + timedelta(hours=3)
        event = create_event(
            f"{uid}-1",
            account_id=f"{uid}-a",
            user_id=f"{uid}-u",
            name="Report Exported",
            at=START,
            received_at=received,
        ).model_copy(update={"write_key_id": key.id})
        await flush(db, [event])
        async with db() as session:
            (shown,) = await last_events(session, f"{uid}-a")
        assert (shown.type, shown.name, shown.user_id) == ("track", "Report Exported", f"{uid}-u")
        assert (shown.occurred_at, shown.received_at) == (START, received)
        assert (shown.key_id, shown.key_name) == (key.id, f"web app {uid}")
        assert shown.key_prefix == plaintext[:12] != plaintext

    async def test_after_id_gives_only_newer_events(self, db: Sessions, uid: str) -> None:
        await flush(db, numbered(uid, "a", 0, 2))
        async with db() as session:
            newest = (await last_events(session, f"{uid}-a"))[0].id
        await flush(db, numbered(uid, "a", 2, 2))
        async with db() as session:
            found = await last_events(session, f"{uid}-a", after_id=newest)
        assert [e.name for e in found] == ["Event 3", "Event 2"]


async def prune_by_rank(session: AsyncSession, accounts: Sequence[str]) -> None:
    """The reference: the prune before the PostgreSQL statement (a window ranking of every
    row of the accounts), which SQLite still runs."""
    ranked = (
        select(
            RECENT.c.id,
            func.row_number()
            .over(partition_by=RECENT.c.account_id, order_by=RECENT.c.id.desc())
            .label("rank"),
        )
        .where(RECENT.c.account_id.in_(list(accounts)))
        .subquery()
    )
    older = select(ranked.c.id).where(ranked.c.rank > RECENT_EVENTS_KEPT)
    await session.execute(delete(RECENT).where(RECENT.c.id.in_(older)))


class TestPrune:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_same_rows_as_the_ranking_on_postgresql(
        self, pg_sessions: Sessions, uid: str, seed: int
    ) -> None:
        rng = random.Random(seed)
        sizes = [0, 1, RECENT_EVENTS_KEPT - 1, RECENT_EVENTS_KEPT, RECENT_EVENTS_KEPT + 1, 130]
        accounts = [f"{uid}-{seed}-{n}" for n in range(len(sizes))]
        events = [
            create_event(f"{account}-{i}", account_id=account)
            for account, size in zip(accounts, sizes, strict=True)
            for i in range(size)
        ]
        rng.shuffle(events)  # accounts interleaved, as on the topic
        times = {"occurred_at": START, "received_at": START, "stored_at": START}
        rows = [
            {"account_id": e.account_id, "event_id": e.event_id, "type": e.type, **times}
            for e in events
        ]
        async with pg_sessions() as session, session.begin():
            await session.execute(RECENT.insert(), rows)

        async def left(prune_with: object) -> list[tuple[str, int]]:
            async with pg_sessions() as session, session.begin():
                await prune_with(session, accounts)  # type: ignore[operator]
                result = await session.execute(
                    select(RECENT.c.account_id, RECENT.c.id)
                    .where(RECENT.c.account_id.in_(accounts))
                    .order_by(RECENT.c.account_id, RECENT.c.id)
                )
                kept = [(a, i) for a, i in result]
                await session.rollback()
                return kept

        want = await left(prune_by_rank)
        assert await left(prune) == want
        by_account = {a: sum(1 for b, _ in want if b == a) for a in accounts}
        assert by_account == {
            a: min(n, RECENT_EVENTS_KEPT) for a, n in zip(accounts, sizes, strict=True)
        }
