"""The webhook payload (version 1) and its signature.

Every event is one JSON object::

    {"version": 1, "id": "evt_…", "type": "alert.opened", "occurred_at": "…Z",
     "account": {...}, "alert": {...}}            # alert.* events
    {"version": 1, "id": "evt_…", "type": "score.band_changed", "occurred_at": "…Z",
     "account": {...}, "score": {...}}            # band changes

A new field may be added within version 1; a field is never renamed, removed or given another
meaning without a new ``version`` (docs/webhooks.md has the fields).

The signature header is ``Tend-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 with the endpoint's secret over ``f"{t}.{body}"`` (the body's exact bytes).
``t`` is the time of the attempt, so every retry is signed afresh and a receiver can refuse a
replay older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from shared.db.models import Alert
from shared.webhooks.endpoints import EventType

__all__ = [
    "SIGNATURE_HEADER",
    "VERSION",
    "alert_event",
    "band_event",
    "body_bytes",
    "sign",
    "signature_header",
    "verify",
]

VERSION = 1
SIGNATURE_HEADER = "Tend-Signature"


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value.isoformat()


def _event(event_type: EventType, now: datetime, **parts: Any) -> dict[str, Any]:
    return {
        "version": VERSION,
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "occurred_at": _iso(now),
        **parts,
    }


def _account(
    account_id: str,
    name: str | None,
    mrr: float | None,
    csm_email: str | None,
    score: float | None,
    band: str | None,
) -> dict[str, Any]:
    return {
        "id": account_id,
        "name": name,
        "mrr": mrr,
        "csm_email": csm_email,
        "score": score,
        "band": band,
    }


def alert_event(event_type: EventType, row: Alert, now: datetime) -> dict[str, Any]:
    """An ``alert.*`` event from the alert row as the transition left it."""
    return _event(
        event_type,
        now,
        account=_account(
            row.account_id, row.account_name, row.mrr, row.csm_email, row.score, row.band
        ),
        alert={
            "id": row.id,
            "rule": row.rule,
            "feature": row.feature,
            "status": row.status,
            "severity": row.severity,
            "reason": row.reason,
            "next_step": row.next_step,
            "as_of": _iso(row.as_of),
            "started_on": _iso(row.started_on),
            "opened_on": _iso(row.opened_on),
            "resolved_on": _iso(row.resolved_on),
            "reopenings": row.reopenings,
            "opened_at": _iso(row.opened_at),
            "acknowledged_at": _iso(row.acknowledged_at),
            "snoozed_until": _iso(row.snoozed_until),
            "snooze_reason": row.snooze_reason,
            "resolved_at": _iso(row.resolved_at),
            "resolved_by": row.resolved_by,
        },
    )


def band_event(
    account: Mapping[str, Any],
    *,
    as_of: date,
    score: float | None,
    band: str,
    previous_as_of: date,
    previous_score: float | None,
    previous_band: str,
    now: datetime,
) -> dict[str, Any]:
    """A ``score.band_changed`` event; ``account``: id, name, mrr, csm_email."""
    return _event(
        "score.band_changed",
        now,
        account=_account(
            account["id"],
            account.get("name"),
            account.get("mrr"),
            account.get("csm_email"),
            score,
            band,
        ),
        score={
            "as_of": _iso(as_of),
            "score": score,
            "band": band,
            "previous_as_of": _iso(previous_as_of),
            "previous_score": previous_score,
            "previous_band": previous_band,
        },
    )


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: int = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its ``t`` is within
    ``tolerance_s`` of ``now`` (unix seconds). docs/webhooks.md shows the same check for
    receivers that do not run tend's code."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields.get("t", [""])[0])
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
