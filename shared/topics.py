"""Topic names and the contract of each topic (one typed model per topic in shared.events)."""

from __future__ import annotations

EVENTS = "tend.events.v1"
"""Canonical events (:class:`shared.events.CanonicalEvent` as JSON), key = account id."""

EVENTS_DLQ = "tend.events.dlq"
"""Records a consumer could not decode or validate; header ``error`` says why."""

SCORES = "tend.scores.v1"
"""Health scores, key = account id (published by the scorer, consumed by alerts)."""

SCORES_DLQ = "tend.scores.dlq"
"""Score messages the alerts service could not decode or validate; header ``error`` says why."""

ALL = (EVENTS, EVENTS_DLQ, SCORES, SCORES_DLQ)
