"""Canonical events for tests, built field by field with defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.events import CanonicalEvent


def create_event(
    event_id: str,
    *,
    type: str = "track",
    account_id: str | None = "acme",
    user_id: str | None = "u1",
    at: datetime | str = "2026-11-02T10:00:00+00:00",
    name: str | None = "Clicked",
    feature: str | None = None,
    is_login: bool = False,
    traits: dict[str, Any] | None = None,
    received_at: datetime | None = None,
    previous_id: str | None = None,
) -> CanonicalEvent:
    occurred = datetime.fromisoformat(at) if isinstance(at, str) else at
    return CanonicalEvent(
        event_id=event_id,
        type=type,
        account_id=account_id,
        user_id=user_id,
        previous_id=previous_id,
        name=name,
        feature=feature,
        is_login=is_login,
        occurred_at=occurred,
        received_at=received_at or occurred.astimezone(UTC),
        traits=traits or {},
    )
