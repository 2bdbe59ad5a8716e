"""The rollup writer keeps each account's newest counted events in ``recent_event_pages``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.recent import PAGES, RECENT_EVENTS_KEPT, RecentEvents, prune
from services.scorer.writer import RollupWriter
from shared.db.keys import create_key
from shared.db.models import RecentEventPage
from shared.events import CanonicalEvent
from shared.read.events import PAGE_SLOTS, encode_page, last_events
from tests.support.events import create_event

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


async def flush(
    db: Sessions, events: Sequence[CanonicalEvent], writer: RollupWriter | None = None
) -> None:
    async with db() as session, session.begin():
        await (writer or RollupWriter()).flush(session, "recent", events, {})


async def stored(db: Sessions, account: str) -> int:
    """The events stored for ``account``, in all its pages."""
    async with db() as session:
        n = await session.scalar(
            select(func.sum(RecentEventPage.size)).where(RecentEventPage.account_id == account)
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
        # Whole pages: the older page holds 10 of the newest 50, so it stays, until a third.
        assert await stored(db, f"{uid}-a") == 60
        await flush(db, numbered(uid, "a", 60, 50))
        assert await stored(db, f"{uid}-a") == RECENT_EVENTS_KEPT
        assert await kept_names(db, f"{uid}-a") == [f"Event {i}" for i in range(109, 59, -1)]

    async def test_one_writer_prunes_every_so_many_rows(self, db: Sessions, uid: str) -> None:
        writer = RollupWriter(recent=RecentEvents(prune_every=100))
        await flush(db, numbered(uid, "a", 0, 40), writer)  # the first batch prunes
        for first in range(40, 160, 40):
            await flush(db, numbered(uid, "a", first, 40), writer)
            newest = [f"Event {i}" for i in range(first + 39, -1, -1)][:RECENT_EVENTS_KEPT]
            assert await kept_names(db, f"{uid}-a") == newest  # what people see: always 50
        # 40 + 40 + 40 events since the first prune: the third batch crossed 100 and pruned
        # the pages of 40 with 80 and 120 newer events, kept the two holding the newest 50.
        assert await stored(db, f"{uid}-a") == 80
        await flush(db, numbered(uid, "a", 160, 40), writer)
        assert await stored(db, f"{uid}-a") == 80 + 40  # until the next prune

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

    async def test_ids_limit_and_after_id_across_pages(self, db: Sessions, uid: str) -> None:
        # Two accounts interleaved over three batches: a page per account per batch.
        batches = []
        for first in (0, 5, 10):
            a, b = numbered(uid, "a", first, 5), numbered(uid, "b", first, 5)
            batches.append([e for pair in zip(a, b, strict=True) for e in pair])
            await flush(db, batches[-1])
        arrival = [e.event_id for batch in batches for e in batch]
        async with db() as session:
            everything = await last_events(session, None, limit=10_000)
            mine = [e for e in everything if e.event_id in set(arrival)]
            # Ids are unique and grow batch after batch; inside a batch account by account.
            ids = [e.id for e in mine]
            assert ids == sorted(ids, reverse=True) and len(set(ids)) == 30
            assert [e.event_id for e in reversed(mine)][:10] == sorted(
                arrival[:10], key=lambda i: (i.split("-")[-2], int(i.split("-")[-1]))
            )
            a = await last_events(session, f"{uid}-a", limit=7)
            assert [e.name for e in a] == [f"Event {i}" for i in range(14, 7, -1)]
            middle = a[3].id  # Event 11, inside the last page
            after = await last_events(session, f"{uid}-a", limit=2, after_id=middle)
            assert [e.name for e in after] == ["Event 14", "Event 13"]
            after = await last_events(session, f"{uid}-a", after_id=a[-1].id)
            assert [e.name for e in after] == [f"Event {i}" for i in range(14, 8, -1)]
            assert await last_events(session, f"{uid}-a", after_id=a[0].id) == []


async def store_pages(db: Sessions, pages: Sequence[tuple[str, int]]) -> None:
    """Pages of (account, size) stored in this order, their events numbered."""
    rows = [
        {
            "account_id": account,
            "size": size,
            "events": encode_page(
                [(f"{account}-{i}", "track", None, None, None, START, START) for i in range(size)]
            ),
            "stored_at": START,
        }
        for account, size in pages
    ]
    async with db() as session, session.begin():
        await session.execute(PAGES.insert(), rows)


def kept_by_reference(pages: Sequence[tuple[int, str, int]]) -> list[tuple[str, int]]:
    """(account, page id) of the pages to keep: per account, from the newest, each page with
    fewer than ``RECENT_EVENTS_KEPT`` newer events."""
    kept = []
    newer: dict[str, int] = {}
    for page_id, account, size in sorted(pages, reverse=True):
        if newer.get(account, 0) < RECENT_EVENTS_KEPT:
            kept.append((account, page_id))
        newer[account] = newer.get(account, 0) + size
    return sorted(kept)


class TestPrune:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_keeps_the_pages_of_the_newest_events(
        self, db: Sessions, uid: str, seed: int
    ) -> None:
        rng = random.Random(seed)
        # Accounts of no page, pages summing to 49, 50, 51, one page of the most a batch
        # stores, and many pages of random sizes; interleaved, as batches store them.
        plans = [[], [49], [20, 30], [25, 26], [RECENT_EVENTS_KEPT] * 3, [1] * 60]
        plans.append([rng.randint(1, RECENT_EVENTS_KEPT) for _ in range(12)])
        accounts = [f"{uid}-{seed}-{n}" for n in range(len(plans))]
        queue = [
            (account, size) for account, plan in zip(accounts, plans, strict=True) for size in plan
        ]
        rng.shuffle(queue)
        await store_pages(db, queue)
        async with db() as session, session.begin():
            result = await session.execute(
                select(PAGES.c.id, PAGES.c.account_id, PAGES.c.size).where(
                    PAGES.c.account_id.in_(accounts)
                )
            )
            before = [(i, a, n) for i, a, n in result]
            await prune(session, accounts)
        async with db() as session:
            result = await session.execute(
                select(PAGES.c.account_id, PAGES.c.id)
                .where(PAGES.c.account_id.in_(accounts))
                .order_by(PAGES.c.account_id, PAGES.c.id)
            )
            assert [(a, i) for a, i in result] == kept_by_reference(before)
        for account, plan in zip(accounts, plans, strict=True):
            left = await stored(db, account)
            assert (
                min(sum(plan), RECENT_EVENTS_KEPT)
                <= left
                < RECENT_EVENTS_KEPT + max(plan, default=1)
            )


def test_a_page_fits_its_slots() -> None:
    assert RECENT_EVENTS_KEPT <= PAGE_SLOTS
