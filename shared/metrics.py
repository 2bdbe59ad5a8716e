"""Prometheus metrics shared by the consumers (scorer, alerts). Labels stay bounded:
consumer group, topic and partition number, never an account or user id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "tend_consumer_records_total",
    "Records read from the bus by a consumer group.",
    ["group", "topic"],
)
BATCH_SIZE = Histogram(
    "tend_consumer_batch_records",
    "Records per flushed batch.",
    ["group"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
FLUSH_SECONDS = Histogram(
    "tend_consumer_flush_duration_seconds",
    "Time to write one batch and its offsets in one database transaction.",
    ["group"],
)
FLUSH_RETRIES = Counter(
    "tend_consumer_flush_retries_total",
    "Batches retried because the database or the bus failed.",
    ["group"],
)
DLQ_RECORDS = Counter(
    "tend_consumer_dlq_records_total",
    "Records sent to a dead-letter topic: undecodable, invalid, or refused by the database.",
    ["group", "topic"],
)
DB_REFUSED = Counter(
    "tend_consumer_db_refused_records_total",
    "Records the database refused on their own with a data error (found by bisecting the "
    "batch); each also counts in tend_consumer_dlq_records_total.",
    ["group", "topic"],
)
OFFSET_OUT_OF_RANGE = Counter(
    "tend_consumer_offset_out_of_range_total",
    "Times a partition's position was past the log's end (the broker lost records) and was "
    "reset by the TEND_CONSUMER__OFFSET_OUT_OF_RANGE policy.",
    ["group", "topic"],
)
DEDUP_HITS = Counter(
    "tend_consumer_duplicates_total",
    "Events skipped because their messageId was already processed.",
    ["group"],
)
LAG = Gauge(
    "tend_consumer_lag_records",
    "Records on the partition not yet consumed by the group.",
    ["group", "topic", "partition"],
)
EVENT_AGE = Histogram(
    "tend_scorer_event_age_seconds",
    "Age of an event (now minus its received_at) when the scorer flushes it into the rollups: "
    "the ingest-to-rollup lag.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 21600),
)


def init_consumer_series(group: str, topics: list[str]) -> None:
    """Create the group's labelled series at zero, so dashboards and alert rules see 0 rather
    than no data before the first DLQ record, duplicate or retry."""
    FLUSH_RETRIES.labels(group)
    DEDUP_HITS.labels(group)
    for topic in topics:
        CONSUMED.labels(group, topic)
        DLQ_RECORDS.labels(group, topic)
        DB_REFUSED.labels(group, topic)
        OFFSET_OUT_OF_RANGE.labels(group, topic)
