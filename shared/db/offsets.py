"""Consumer offsets kept in the database, written in the same transaction as the data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.base import TopicPartition
from shared.db.models import ConsumerOffset
from shared.db.types import utcnow
from shared.db.upsert import upsert


async def load_offsets(
    session: AsyncSession, group_id: str, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The stored next offsets of ``tps`` (partitions never flushed are absent)."""
    wanted = {(tp.topic, tp.partition) for tp in tps}
    if not wanted:
        return {}
    rows = await session.execute(
        select(ConsumerOffset.topic, ConsumerOffset.partition, ConsumerOffset.next_offset).where(
            ConsumerOffset.group_id == group_id,
            tuple_(ConsumerOffset.topic, ConsumerOffset.partition).in_(list(wanted)),
        )
    )
    return {TopicPartition(t, p): int(o) for t, p, o in rows}


async def store_offsets(
    session: AsyncSession,
    group_id: str,
    offsets: Mapping[TopicPartition, int],
    *,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    await upsert(
        session,
        ConsumerOffset.__table__,  # type: ignore[arg-type]
        [
            {
                "group_id": group_id,
                "topic": tp.topic,
                "partition": tp.partition,
                "next_offset": off,
                "updated_at": now,
            }
            for tp, off in offsets.items()
        ],
        keys=["group_id", "topic", "partition"],
        update=["next_offset", "updated_at"],
    )
