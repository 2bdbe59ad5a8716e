"""Factories for the alerts service tests: score snapshots, a dormant-only rules config, and
reads of the alert and outbox rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.routing import Defaults
from shared.alert_rules import RULE_NAMES, RulesConfig
from shared.config import parse_config
from shared.db.models import Alert, AlertNotification
from shared.scores import EXAMPLE_SCORE, ScoreMessage

DAY0 = date(2026, 11, 2)
DEFAULT_WEBHOOK = "http://127.0.0.1:9/services/T0/B0/default"


def recent_day(days_ago: int = 2) -> int:
    """The ``day`` of :func:`create_snapshot` that is ``days_ago`` days before today (UTC, wall
    clock): a service process runs on the real clock, and only recent final days notify."""
    return (datetime.now(UTC).date() - DAY0).days - days_ago


def unique_account(prefix: str = "acct") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def only_rules(*enabled: str, **overrides: Any) -> RulesConfig:
    """A rules config with only ``enabled`` rules on (each test judges one rule at a time)."""
    rules: dict[str, Any] = {name: {"enabled": name in enabled} for name in RULE_NAMES}
    rules.update(overrides)
    return parse_config({"rules": rules}).rules


def create_snapshot(
    account_id: str,
    day: int = 0,
    *,
    dormant_days: int = 20,
    csm_email: str | None = "dana@vendor.example",
    csm_slack: str | None = None,
    **fields: Any,
) -> ScoreMessage:
    """Acme's example score for ``account_id`` as of ``DAY0 + day``; ``dormant_days`` since the
    last login (14 or more: the dormant rule holds)."""
    as_of = DAY0 + timedelta(days=day)
    metrics = EXAMPLE_SCORE.metrics.model_copy(
        update={
            "account_id": account_id,
            "as_of": as_of,
            "days_since_last_login": dormant_days,
            "last_login": as_of - timedelta(days=dormant_days),
        }
    )
    values: dict[str, Any] = {
        "account_id": account_id,
        "as_of": as_of,
        "metrics": metrics,
        "csm_email": csm_email,
        "csm_slack": csm_slack,
        **fields,
    }
    return ScoreMessage.model_validate({**EXAMPLE_SCORE.model_dump(), **values})


def create_defaults(**overrides: Any) -> Defaults:
    values: dict[str, Any] = {"slack_webhook_url": DEFAULT_WEBHOOK, "emails": ()}
    values.update(overrides)
    return Defaults(**values)


async def alerts_of(sessions: async_sessionmaker[AsyncSession], account_id: str) -> list[Alert]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Alert).where(Alert.account_id == account_id).order_by(Alert.id)
        )
        return list(rows)


async def outbox_of(
    sessions: async_sessionmaker[AsyncSession], account_id: str
) -> list[AlertNotification]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AlertNotification)
            .join(Alert, Alert.id == AlertNotification.alert_id)
            .where(Alert.account_id == account_id)
            .order_by(AlertNotification.id)
        )
        return list(rows)
