"""Kafka's default partitioner (murmur2 of the key), shared by both bus implementations."""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2


def partition_for(key: bytes | None, partitions: int) -> int:
    if partitions <= 0:
        raise ValueError("a topic needs at least one partition")
    if key is None:
        return random.randrange(partitions)
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
