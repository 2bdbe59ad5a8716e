"""Pruning of the in-process bus: records every consumer group has committed past go.

A record stays while any group that reads its topic has not committed past it: a group with a
committed position (``bus_offsets``) or a consumer running on this bus. A partition some such
group has no committed position on keeps everything (the group starts there at offset 0), and a
topic no group reads (the dead-letter topics) is never pruned. The newest record of every
partition stays too: the next offset of a partition is derived from it, so offsets never restart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.base import TopicPartition
from shared.db.models import BusOffset, BusRecord


async def prunable(
    session: AsyncSession, running: Iterable[tuple[str, str]]
) -> dict[TopicPartition, int]:
    """For each partition, the offset below which every group has committed (and which is
    below the partition's newest record). ``running``: (group, topic) of the live consumers."""
    groups: dict[str, set[str]] = defaultdict(set)
    for group, topic in running:
        groups[topic].add(group)
    committed: dict[TopicPartition, dict[str, int]] = defaultdict(dict)
    for group, topic, partition, next_offset in await session.execute(
        select(BusOffset.group_id, BusOffset.topic, BusOffset.partition, BusOffset.next_offset)
    ):
        groups[topic].add(group)
        committed[TopicPartition(topic, partition)][group] = int(next_offset)
    newest = await session.execute(
        select(BusRecord.topic, BusRecord.partition, func.max(BusRecord.offset)).group_by(
            BusRecord.topic, BusRecord.partition
        )
    )
    upto: dict[TopicPartition, int] = {}
    for topic, partition, last in newest:
        tp = TopicPartition(topic, partition)
        readers = groups.get(topic)
        if not readers:
            continue
        positions = committed.get(tp, {})
        if any(group not in positions for group in readers):
            continue
        limit = min(min(positions[g] for g in readers), int(last))
        if limit > 0:
            upto[tp] = limit
    return upto


async def prune(
    session: AsyncSession, upto: dict[TopicPartition, int], *, created_before: datetime
) -> int:
    """Delete the records below ``upto`` created before ``created_before``; the count."""
    deleted = 0
    for tp, limit in upto.items():
        result = await session.execute(
            delete(BusRecord)
            .where(
                and_(
                    BusRecord.topic == tp.topic,
                    BusRecord.partition == tp.partition,
                    BusRecord.offset < limit,
                    BusRecord.created_at < created_before,
                )
            )
            .execution_options(synchronize_session=False)
        )
        deleted += max(0, int(getattr(result, "rowcount", 0) or 0))
    return deleted
