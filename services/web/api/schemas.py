"""The answers of the read API and the alerts API, as models: the routes' ``response_model``, so
the OpenAPI document describes (and the server checks) every field a client gets. Errors are
:class:`shared.api_errors.TendError`.

Values stored as JSON (score components, metrics, alert facts) stay open dicts: their keys are
the scoring model's and the rules', documented in docs/scoring.md and docs/alerts.md.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.outcomes.model import Stage

JsonObject = dict[str, Any]

OPENAPI_TAGS: list[JsonObject] = [
    {
        "name": "accounts",
        "description": "Accounts, their health with its reasons, usage and monthly reports; "
        "the operator sets profiles (CSM routing, seats, renewal).",
    },
    {
        "name": "alerts",
        "description": "At-risk and upsell alerts: list, read, acknowledge, snooze, resolve "
        "(one alert or every open alert of an account).",
    },
    {
        "name": "outcomes",
        "description": "What customers did: cancellations, renewals, expansions and "
        "contractions an operator records; MRR history and lifecycle stages.",
    },
    {
        "name": "retention",
        "description": "Churn, revenue retention, CLV and time to value per month and segment.",
    },
    {
        "name": "exports",
        "description": "Accounts, alerts and retention tables as CSV (the JSON routes' rows).",
    },
    {
        "name": "people",
        "description": "Who signs in and their roles (admin), your API tokens, the audit log.",
    },
    {
        "name": "slack",
        "description": "Slack's button clicks on alert messages (acknowledge, snooze), "
        "authenticated by Slack's request signature, not the API token (docs/slack.md).",
    },
]
"""Tag descriptions of the web app's OpenAPI document (errors: docs/api.md)."""


def _example(example: JsonObject) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


ACCOUNT_EXAMPLE: JsonObject = {
    "account_id": "acme",
    "name": "Acme Corp",
    "plan": "business",
    "seats": 120,
    "mrr": 4800.0,
    "renewal_date": "2027-03-31",
    "lifecycle_stage": "growing",
    "stage": "renewal",
    "csm_email": "dana@vendor.example",
    "csm_slack": "https://hooks.slack.com/services/…",
    "customer_emails": ["ops-lead@acme.example"],
    "champion": None,
    "score": 41.5,
    "band": "red",
    "scored_as_of": "2026-11-30",
    "first_seen": "2025-02-03",
}


class AccountSummary(BaseModel):
    """An account's profile and current health. ``csm_slack`` webhook URLs are masked."""

    model_config = _example(ACCOUNT_EXAMPLE)

    account_id: str
    name: str | None = None
    plan: str | None = None
    seats: int | None = None
    mrr: float | None = None
    renewal_date: date | None = None
    lifecycle_stage: str | None = Field(None, description="As the profile gives it.")
    stage: Stage | None = Field(
        None,
        description="Lifecycle stage today, derived from the profile and the outcomes: new, "
        "growing, renewal, cancelled (docs/retention.md); null without a start date.",
    )
    csm_email: str | None = None
    csm_slack: str | None = Field(None, description="A Slack handle, or a masked webhook URL.")
    customer_emails: list[str] = Field(
        default_factory=list, description="The customer's contacts, who receive the report."
    )
    champion: str | None = Field(None, description="The champion an operator named.")
    score: float | None = Field(None, description="0 to 100; null before the first score.")
    band: str | None = Field(None, description="green, yellow, red, ...")
    scored_as_of: date | None = None
    first_seen: date | None = None


class AccountList(BaseModel):
    total: int = Field(description="Accounts matching the filters (all pages).")
    accounts: list[AccountSummary]


class CurrentChampion(BaseModel):
    user_id: str
    source: str | None = Field(None, description="named (by an operator) or inferred (usage).")
    last_active: date | None = None
    days_since_active: int | None = None


class AccountDetail(AccountSummary):
    model_config = _example(
        {
            **ACCOUNT_EXAMPLE,
            "traits": {"industry": "logistics"},
            "metrics": {"active_users_28d": 33, "regular_users": 31},
            "current_champion": {
                "user_id": "u-42",
                "source": "inferred",
                "last_active": "2026-11-02",
                "days_since_active": 28,
            },
        }
    )

    traits: JsonObject = Field(description="Traits from group calls; webhook URLs masked.")
    metrics: JsonObject | None = Field(description="The metrics behind the current score.")
    current_champion: CurrentChampion | None


class ScoreRow(BaseModel):
    as_of: date
    score: float | None
    band: str
    previous_score: float | None = None
    previous_band: str | None = None
    components: JsonObject = Field(description="Each component's score, 0 to 100.")
    left_out: list[Any] = Field(description="Components without data; their weight is spread.")
    moved: JsonObject = Field(description="What moved since the previous score.")
    computed_at: datetime


class HistoryPoint(BaseModel):
    as_of: date
    score: float | None
    band: str


class AccountHealth(BaseModel):
    model_config = _example(
        {
            "account_id": "acme",
            "current": {
                "as_of": "2026-11-30",
                "score": 41.5,
                "band": "red",
                "previous_score": 55.0,
                "previous_band": "yellow",
                "components": {"seat_utilization": 28.0, "login_trend": 20.0, "recency": 90.0},
                "left_out": [],
                "moved": {"login_trend": -25.0},
                "computed_at": "2026-11-30T06:00:00Z",
            },
            "metrics": {"active_users_28d": 33},
            "history": [{"as_of": "2026-11-30", "score": 41.5, "band": "red"}],
        }
    )

    account_id: str
    current: ScoreRow | None
    metrics: JsonObject | None
    history: list[HistoryPoint] = Field(description="One score a day in the range, oldest first.")


class UsageDay(BaseModel):
    day: date
    events: int
    logins: int
    active_users: int


class FeatureUse(BaseModel):
    day: date
    uses: int
    users: int


class AccountUsage(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acme",
                    "from": "2026-11-29",
                    "to": "2026-11-30",
                    "days": [
                        {"day": "2026-11-29", "events": 310, "logins": 41, "active_users": 30},
                        {"day": "2026-11-30", "events": 288, "logins": 38, "active_users": 28},
                    ],
                    "features": {"exports": [{"day": "2026-11-30", "uses": 12, "users": 5}]},
                }
            ]
        },
    )

    account_id: str
    from_: date = Field(alias="from")
    to: date
    days: list[UsageDay]
    features: dict[str, list[FeatureUse]] = Field(description="Daily use of each feature.")


ALERT_EXAMPLE: JsonObject = {
    "id": 42,
    "account_id": "acme",
    "account_name": "Acme Corp",
    "rule": "login_decline",
    "feature": "",
    "status": "open",
    "severity": "high",
    "reason": "weekly actives fell from 40 to 26 over 3 weeks",
    "next_step": "Call the champion u-42 this week.",
    "facts": {"weekly_actives": [40, 35, 30, 26]},
    "as_of": "2026-11-30",
    "started_on": "2026-11-23",
    "opened_on": "2026-11-30",
    "resolved_on": None,
    "reopenings": 0,
    "score": 41.5,
    "band": "red",
    "mrr": 4800.0,
    "csm_email": "dana@vendor.example",
    "opened_at": "2026-11-30T06:00:00Z",
    "acknowledged_at": None,
    "snoozed_until": None,
    "snooze_reason": None,
    "resolved_at": None,
    "resolved_by": None,
    "last_notified_at": "2026-11-30T06:00:05Z",
    "notifications": 1,
    "consecutive_holds": 3,
    "consecutive_clears": 0,
    "updated_at": "2026-11-30T06:00:05Z",
}


class AlertOut(BaseModel):
    """One alert of one rule on one account (and feature, for feature rules)."""

    model_config = _example(ALERT_EXAMPLE)

    id: int
    account_id: str
    account_name: str | None = None
    rule: str
    feature: str = Field(description="'' unless the rule is about one feature.")
    status: str = Field(description="pending, open, acknowledged, snoozed or resolved.")
    severity: str
    reason: str
    next_step: str
    facts: JsonObject
    as_of: date | None = Field(None, description="The score day last evaluated.")
    started_on: date | None = Field(None, description="The day the condition began (event time).")
    opened_on: date | None = None
    resolved_on: date | None = None
    reopenings: int
    score: float | None = None
    band: str | None = None
    mrr: float | None = None
    csm_email: str | None = None
    opened_at: datetime | None = None
    acknowledged_at: datetime | None = None
    snoozed_until: datetime | None = None
    snooze_reason: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(None, description="rules (the condition cleared) or a person.")
    last_notified_at: datetime | None = None
    notifications: int
    consecutive_holds: int
    consecutive_clears: int
    updated_at: datetime


class Delivery(BaseModel):
    """One notification of the alert (the outbox row); ``destination`` is masked."""

    id: int
    alert_id: int = Field(
        description="The alert the message led with: one message speaks of all of an "
        "account's alerts decided together, so it may be another alert of the account."
    )
    kind: str = Field(description="open, repeat or resolve.")
    channel: str = Field(
        description="slack (webhook), slack_api (the bot), email, email_digest, or none "
        "when it had nowhere to go."
    )
    destination: str = Field(description="Masked; empty when the channel is none.")
    status: str = Field(
        description="pending, sent, failed, skipped (account cancelled) or unrouted (nowhere "
        "to go); last_error says why it was not sent."
    )
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


class ManualAction(BaseModel):
    """A move someone made from Slack: who (the Slack member), what, when."""

    action: str = Field(description="acknowledge or snooze.")
    source: str = Field(description="Where it was done: slack.")
    actor_id: str = Field(description="The Slack member id.")
    actor_name: str | None = None
    snoozed_until: datetime | None = None
    at: datetime


class AlertDetail(AlertOut):
    model_config = _example(
        {
            **ALERT_EXAMPLE,
            "deliveries": [
                {
                    "id": 7,
                    "alert_id": 42,
                    "kind": "open",
                    "channel": "slack",
                    "destination": "https://hooks.slack.com/services/…",
                    "status": "sent",
                    "attempts": 1,
                    "next_attempt_at": "2026-11-30T06:00:00Z",
                    "last_error": None,
                    "created_at": "2026-11-30T06:00:00Z",
                    "sent_at": "2026-11-30T06:00:05Z",
                }
            ],
        }
    )

    deliveries: list[Delivery]
    actions: list[ManualAction] = Field(
        default_factory=list, description="Acknowledgements and snoozes made from Slack."
    )


class AlertList(BaseModel):
    total: int = Field(description="Alerts matching the filters (all pages).")
    alerts: list[AlertOut]


class IncidentMove(BaseModel):
    """The account's active alerts, after the move (those it did not apply to unchanged)."""

    account_id: str
    alerts: list[AlertOut]
