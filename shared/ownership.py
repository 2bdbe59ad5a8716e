"""Which accounts a replica works on: those of the partitions its consumer-group member owns.

Producers key every record by account id and place it with Kafka's partitioner (murmur2 of the
key modulo the partition count: :func:`shared.bus.partitioner.partition_for`, the same for the
in-process bus), so an account's records all land on one partition and the group member that
owns that partition owns the account. Work that is not driven by records (the scorer's sweep
and re-scores, the alerts service's purge) asks an :class:`Ownership` before it touches an
account, so two replicas never work on the same account and together they cover every one.

Hand-over on rebalance, in order:

1. ``revoke`` (the consumer's ``on_revoke``, which aiokafka awaits before the group re-forms)
   takes the :attr:`Ownership.lock`, which every piece of owned work holds while it runs, so the
   work in flight on the revoked partitions finishes (its transaction commits or rolls back)
   before the revoke completes; then the partitions are dropped. Work started after that skips
   their accounts.
2. ``assign`` (``on_assign``, after the stored offsets are seeked) adds the partitions, records
   the ones this member did not own before as :meth:`Ownership.take_gained`, and calls the
   listeners (the re-scorer wakes and sweeps the gained accounts at once: their previous owner
   may have died before its sweep).

A member that is cut off from the group without hearing of it (a network partition longer than
the session timeout) may keep working until it notices; the work is idempotent (a re-score of
the same day publishes the same score, see :mod:`services.scorer.rescorer`), so the cost is
duplicate work, never a wrong score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from shared.bus.base import TopicPartition
from shared.bus.partitioner import partition_for

__all__ = ["Ownership"]

_CACHE_MAX = 1_000_000
"""Account ids whose partition is remembered (murmur2 in Python is ~6 us a key)."""


class Ownership:
    """The partitions of ``topic`` one group member owns, and so the accounts it works on.

    Owns nothing until the first assignment. ``everything=True`` is the single-owner case
    (``tend rescore`` without a consumer): every account is owned.
    """

    def __init__(self, topic: str, *, everything: bool = False) -> None:
        self.topic = topic
        self.everything = everything
        self.partitions = 0
        """The topic's partition count, as the consumer last saw it (0 before assignment)."""
        self.owned: frozenset[int] = frozenset()
        self.lock = asyncio.Lock()
        """Held by owned work while it runs; a revoke waits for it."""
        self._gained: set[int] = set()
        self._revoked: set[int] = set()
        """Revoked since the last assignment: an eager rebalance revokes every partition
        and assigns most of them again, which gains nothing."""
        self._listeners: list[Callable[[], None]] = []
        self._hash: dict[str, int] = {}

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every assignment (it must not block)."""
        self._listeners.append(callback)

    def partition_of(self, account_id: str) -> int:
        h = self._hash.get(account_id)
        if h is None:
            if len(self._hash) >= _CACHE_MAX:
                self._hash.clear()
            # partition_for(key, 2**31) is the non-negative murmur2 itself.
            h = self._hash[account_id] = partition_for(account_id.encode(), 2**31)
        return h % self.partitions

    def owns(self, account_id: str) -> bool:
        if self.everything:
            return True
        return bool(self.owned) and self.partition_of(account_id) in self.owned

    def select(
        self, account_ids: Iterable[str], partitions: Iterable[int] | None = None
    ) -> list[str]:
        """The ids of ``account_ids`` this member owns, in their order; only those on
        ``partitions`` when given."""
        if self.everything:
            return list(account_ids)
        within = self.owned if partitions is None else self.owned & set(partitions)
        if not within:
            return []
        return [a for a in account_ids if self.partition_of(a) in within]

    def leads(self) -> bool:
        """True on the one member that owns partition 0: it does the work that concerns no
        account in particular (purges of old rows), once for the whole group."""
        return self.everything or 0 in self.owned

    def take_gained(self) -> set[int]:
        """Partitions assigned since the last call that this member did not own before."""
        gained, self._gained = self._gained, set()
        return gained & self.owned

    async def assign(self, tps: Iterable[TopicPartition], partitions: int | None) -> None:
        mine = {tp.partition for tp in tps if tp.topic == self.topic}
        if partitions:
            if partitions != self.partitions:
                self._gained |= mine  # a new partition count moves accounts between partitions
            self.partitions = partitions
        elif not self.partitions and mine:
            self.partitions = max(mine) + 1  # unknown count: never reached with either bus
        async with self.lock:
            self._gained |= mine - self.owned - self._revoked
            self._revoked = set()
            self.owned = self.owned | mine
        for callback in self._listeners:
            callback()

    async def revoke(self, tps: Iterable[TopicPartition]) -> None:
        gone = {tp.partition for tp in tps if tp.topic == self.topic}
        async with self.lock:  # the work in flight on them ends first
            self.owned = self.owned - gone
            self._gained -= gone
            self._revoked |= gone
