"""Partition ownership: an account is owned by the member assigned the partition its key lands
on (the producers' murmur2), hand-over waits for work in flight, and a re-assignment of the
partitions a member already had gains nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from services.ingest.normalize import partition_key
from shared.bus.base import TopicPartition
from shared.bus.partitioner import partition_for
from shared.ownership import Ownership

pytestmark = pytest.mark.unit

TOPIC = "tend.events.v1"
ACCOUNTS = [f"acct-{i:04d}" for i in range(200)]


def tps(*partitions: int) -> set[TopicPartition]:
    return {TopicPartition(TOPIC, p) for p in partitions}


class TestOwnedAccounts:
    @pytest.mark.parametrize("partitions", [1, 4, 7])
    async def test_members_split_accounts_as_the_producer_places_them(
        self, partitions: int
    ) -> None:
        members = [Ownership(TOPIC) for _ in range(3)]
        for i, member in enumerate(members):
            await member.assign(tps(*range(i, partitions, 3)), partitions)
        for account in ACCOUNTS:
            owners = [m for m in members if m.owns(account)]
            assert len(owners) == 1
            assert owners[0].partition_of(account) == partition_for(account.encode(), partitions)
        selected = [a for m in members for a in m.select(ACCOUNTS)]
        assert sorted(selected) == ACCOUNTS

    def test_the_key_is_the_one_ingest_writes(self) -> None:
        event = SimpleNamespace(account_id="acct-0001", user_id="u1", anonymous_id=None)
        assert partition_key(event) == "acct-0001"  # type: ignore[arg-type]

    async def test_owns_nothing_before_assignment(self) -> None:
        member = Ownership(TOPIC)
        assert member.select(ACCOUNTS) == []
        assert not member.owns(ACCOUNTS[0])
        assert not member.leads()

    def test_a_single_owner_owns_everything(self) -> None:
        member = Ownership(TOPIC, everything=True)
        assert member.select(ACCOUNTS) == ACCOUNTS
        assert member.leads()

    async def test_select_by_partition(self) -> None:
        member = Ownership(TOPIC)
        await member.assign(tps(0, 1, 2, 3), 4)
        only = member.select(ACCOUNTS, {2})
        assert only and all(partition_for(a.encode(), 4) == 2 for a in only)

    async def test_other_topics_are_ignored(self) -> None:
        member = Ownership(TOPIC)
        await member.assign({TopicPartition("other", 0)}, 4)
        assert member.owned == frozenset()


class TestHandOver:
    async def test_gained_partitions_are_reported_once(self) -> None:
        member = Ownership(TOPIC)
        await member.assign(tps(0, 1), 4)
        assert member.take_gained() == {0, 1}
        assert member.take_gained() == set()
        # An eager rebalance revokes everything and assigns most of it back.
        await member.revoke(tps(0, 1))
        await member.assign(tps(0, 1, 3), 4)
        assert member.take_gained() == {3}

    async def test_revoked_partitions_are_not_reported_as_gained(self) -> None:
        member = Ownership(TOPIC)
        await member.assign(tps(0, 1), 4)
        await member.revoke(tps(1))
        assert member.take_gained() == {0}
        assert not any(member.partition_of(a) == 1 for a in member.select(ACCOUNTS))

    async def test_revoke_waits_for_the_work_in_flight(self) -> None:
        member = Ownership(TOPIC)
        await member.assign(tps(0, 1, 2, 3), 4)
        done: list[str] = []

        async def work() -> None:
            async with member.lock:
                await asyncio.sleep(0.05)
                done.append("work")

        task = asyncio.create_task(work())
        await asyncio.sleep(0)
        await member.revoke(tps(0, 1, 2, 3))
        done.append("revoked")
        await task
        assert done == ["work", "revoked"]
        assert member.select(ACCOUNTS) == []

    async def test_assignment_calls_the_listeners(self) -> None:
        member = Ownership(TOPIC)
        calls: list[int] = []
        member.listen(lambda: calls.append(1))
        await member.assign(tps(0), 1)
        assert calls == [1]
        assert member.leads()
