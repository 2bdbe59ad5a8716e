"""The bus: Kafka in production, the database-backed in-process log for ``tend up``.

:func:`create_bus` picks one from the settings; code above it only sees :class:`Bus`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import topics
from shared.bus.base import (
    AssignCallback,
    Bus,
    BusUnavailable,
    Consumer,
    Delivery,
    Message,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
)
from shared.bus.partitioner import partition_for
from shared.settings import Settings

__all__ = [
    "AssignCallback",
    "Bus",
    "BusUnavailable",
    "Consumer",
    "Delivery",
    "Message",
    "Producer",
    "Record",
    "TopicPartition",
    "TopicSpec",
    "create_bus",
    "default_topic_specs",
    "partition_for",
]


def create_bus(settings: Settings, sessions: async_sessionmaker[AsyncSession] | None) -> Bus:
    """Kafka when ``TEND_KAFKA_BOOTSTRAP`` is set, else the in-process bus on ``sessions``."""
    if settings.kafka_bootstrap:
        from shared.bus.kafka import KafkaBus

        return KafkaBus(settings.kafka_bootstrap, settings.kafka)
    if sessions is None:
        raise ValueError(
            "the in-process bus keeps its records in the database and needs its sessions; "
            "set TEND_KAFKA_BOOTSTRAP to use Kafka"
        )
    from shared.bus.memory import InProcessBus

    return InProcessBus(
        sessions,
        settings.kafka.partitions,
        retention_s=settings.bus.retention_s,
        prune_interval_s=settings.bus.prune_interval_s,
    )


def default_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic tend uses, with the configured partition count."""
    return [TopicSpec(name, settings.kafka.partitions) for name in topics.ALL]
