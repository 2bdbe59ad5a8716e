"""SQLAlchemy 2 typed models. Schema changes go through Alembic (``migrations/``).

A test migrates an empty database and compares it with these models, so the two cannot drift.

One module of about 640 lines on purpose: every table is in one declarative metadata, the one the
migrations are compared with; one class per table and nothing else.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger autoincrement primary keys are not rowid aliases on SQLite; this variant is.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class ApiKey(Base):
    """A write key for the ingest API. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), comment="First characters, for display.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class UserAccount(Base):
    """The account a user's last ``group`` call named; ingest resolves accounts through it."""

    __tablename__ = "user_accounts"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BusRecord(Base):
    """One record of the in-process bus (``tend up``): a durable, partitioned log in the DB."""

    __tablename__ = "bus_records"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BusOffset(Base):
    """A consumer group's committed position on one in-process bus partition."""

    __tablename__ = "bus_offsets"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsumerOffset(Base):
    """Offsets a consumer stored in the same transaction as its writes (exactly-once effect).

    On start and on every assignment the consumer seeks to ``next_offset`` from here, not to
    the broker's committed offset, which may lag behind after a crash.
    """

    __tablename__ = "consumer_offsets"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- scorer: accounts, users, daily rollups, health scores ------------------------------------


class Account(Base):
    """A customer account: traits from ``group`` calls or CSV import, and its current score.

    ``dirty`` is set by the rollup writer whenever new events touch the account and cleared by
    the re-scorer once it has scored the account as of a date at or after the change.
    """

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300), default=None)
    plan: Mapped[str | None] = mapped_column(String(100), default=None)
    seats: Mapped[int | None] = mapped_column(Integer, default=None)
    mrr: Mapped[float | None] = mapped_column(Float, default=None)
    renewal_date: Mapped[date | None] = mapped_column(Date, default=None)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(50), default=None)
    created_at: Mapped[date | None] = mapped_column(
        Date, default=None, comment="Contract start (a trait, not the row's creation time)."
    )
    csm_email: Mapped[str | None] = mapped_column(String(320), default=None)
    csm_slack: Mapped[str | None] = mapped_column(String(200), default=None)
    customer_emails: Mapped[list[str] | None] = mapped_column(
        JSON, default=None, comment="The customer's contacts: the monthly report goes to them."
    )
    champion: Mapped[str | None] = mapped_column(
        String(200), default=None, comment="The champion's user id, named by an operator."
    )
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[date | None] = mapped_column(Date, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    score: Mapped[float | None] = mapped_column(Float, default=None)
    band: Mapped[str | None] = mapped_column(String(20), default=None)
    scored_as_of: Mapped[date | None] = mapped_column(Date, default=None)
    dirty: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    rescore_from: Mapped[date | None] = mapped_column(
        Date,
        default=None,
        comment="Earliest day whose score new events (or a profile change) made stale; set "
        "with the rollups, cleared by the re-scorer as it re-scores the days.",
    )


class User(Base):
    """A person using an account (identified users only; anonymous visitors are not users)."""

    __tablename__ = "users"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProcessedEvent(Base):
    """Event ids already counted: the dedup window for replays and client retries."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class RecentEventPage(Base):
    """The last events the scorer counted for each account (what arrived, when, from which
    write key): a page (row) per account per batch, holding that batch's newest events of the
    account, kept to the pages that hold the newest few; see ``services.scorer.recent`` and
    ``shared.read.events`` (the format of ``events`` and each event's id)."""

    __tablename__ = "recent_event_pages"
    __table_args__ = (Index("ix_recent_event_pages_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, comment="How many events ``events`` holds.")
    events: Mapped[str] = mapped_column(
        Text,
        comment="JSON: [event_id, type, name, user_id, write_key_id, occurred_at, received_at] "
        "per event, in arrival order.",
    )
    stored_at: Mapped[datetime] = mapped_column(comment="When the scorer counted them.")


class AccountDay(Base):
    """Per account-day rollup. ``active_users`` is the distinct count of that day's user_days."""

    __tablename__ = "account_days"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    logins: Mapped[int] = mapped_column(Integer, default=0)
    active_users: Mapped[int] = mapped_column(Integer, default=0)


class UserDay(Base):
    """Per user-day rollup, so distinct active users can be counted over any window."""

    __tablename__ = "user_days"
    __table_args__ = (Index("ix_user_days_account_day", "account_id", "day"),)

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    logins: Mapped[int] = mapped_column(Integer, default=0)


class UserAlias(Base):
    """An ``alias`` call: ``previous_id`` and ``user_id`` are one person of the account from
    ``day`` (the earliest such call's UTC day) on; the scorer's user counts merge them."""

    __tablename__ = "user_aliases"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    previous_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date)


class FeatureDay(Base):
    """Per feature-day rollup. ``users`` is the distinct count of that day's feature_user_days."""

    __tablename__ = "feature_days"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    users: Mapped[int] = mapped_column(Integer, default=0)


class FeatureUserDay(Base):
    """Per feature-user-day uses, so distinct feature users can be counted over any window."""

    __tablename__ = "feature_user_days"
    __table_args__ = (
        Index("ix_feature_user_days_account_feature_day", "account_id", "feature", "day"),
    )

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class HealthScore(Base):
    """One account's health score as of one day (upserted: re-scoring a day replaces it)."""

    __tablename__ = "health_scores"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    score: Mapped[float | None] = mapped_column(Float, comment="None when nothing to judge.")
    band: Mapped[str] = mapped_column(String(20))
    components: Mapped[dict[str, Any]] = mapped_column(default=dict)
    left_out: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    previous_score: Mapped[float | None] = mapped_column(Float, default=None)
    previous_band: Mapped[str | None] = mapped_column(String(20), default=None)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    provisional: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        comment="A score of today (UTC), which is not complete yet.",
    )


# --- alerts: alert state per (account, rule, feature), the notification outbox ----------------


class Alert(Base):
    """The one alert row of an (account, rule, feature): its life-cycle state and latest facts.

    Re-evaluations update the row, never duplicate it; a new episode (fired again after a
    resolve) reuses it. ``status`` and the counters are :class:`~shared.alerting.lifecycle.
    AlertState`; ``none`` and ``pending`` rows are remembered conditions, not alerts yet.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("account_id", "rule", "feature"),
        Index("ix_alerts_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(50))
    feature: Mapped[str] = mapped_column(String(200), default="", comment="'' when none.")
    status: Mapped[str] = mapped_column(String(20))
    consecutive_holds: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_clears: Mapped[int] = mapped_column(Integer, default=0)
    last_evaluated_as_of: Mapped[date | None] = mapped_column(Date, default=None)
    last_holds: Mapped[bool | None] = mapped_column(Boolean, default=None)
    opened_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    snooze_reason: Mapped[str | None] = mapped_column(String(1000), default=None)
    last_notified_at: Mapped[datetime | None] = mapped_column(default=None)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(20), default=None)
    started_on: Mapped[date | None] = mapped_column(
        Date, default=None, comment="Event-time day the episode's condition began."
    )
    opened_on: Mapped[date | None] = mapped_column(
        Date, default=None, comment="Event-time day the episode fired."
    )
    resolved_on: Mapped[date | None] = mapped_column(
        Date, default=None, comment="Event-time day the episode resolved."
    )
    reopenings: Mapped[int] = mapped_column(
        Integer, default=0, comment="Returns within the cool-down, continuing this episode."
    )
    manual_resolved_on: Mapped[date | None] = mapped_column(
        Date, default=None, comment="Event-time day of the last manual resolve (replays keep it)."
    )
    severity: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    next_step: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    as_of: Mapped[date | None] = mapped_column(Date, default=None, comment="Last evaluated.")
    score: Mapped[float | None] = mapped_column(Float, default=None)
    band: Mapped[str | None] = mapped_column(String(20), default=None)
    account_name: Mapped[str | None] = mapped_column(String(300), default=None)
    mrr: Mapped[float | None] = mapped_column(Float, default=None)
    csm_email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    csm_slack: Mapped[str | None] = mapped_column(String(1000), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertNotification(Base):
    """The outbox: one message to one destination, written in the transaction that decided it.

    The dispatcher claims due ``pending`` rows (pushing ``next_attempt_at`` ahead as a lease),
    sends, then marks them ``sent`` or reschedules them; a crash between send and mark sends
    again once the lease ends, so a message is delivered at least once, at most twice.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("alerts.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20), comment="open, repeat or resolve.")
    channel: Mapped[str] = mapped_column(String(20), comment="slack or email.")
    destination: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    slack_channel: Mapped[str | None] = mapped_column(
        String(100), default=None, comment="slack_api: the channel the message was posted in."
    )
    slack_ts: Mapped[str | None] = mapped_column(
        String(40), default=None, comment="slack_api: the posted message's ts (chat.update)."
    )


class AlertAction(Base):
    """Who moved an alert by hand, from where: one row per alert moved (a Slack button on a
    grouped message moves every active alert of the account). ``actor_id`` is the identity at
    the source (a Slack member id), so a later user table can link it to a tend user."""

    __tablename__ = "alert_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("alerts.id"), index=True
    )
    action: Mapped[str] = mapped_column(String(20), comment="acknowledge or snooze.")
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    source: Mapped[str] = mapped_column(String(20), comment="Where it was done: slack.")
    actor_id: Mapped[str] = mapped_column(String(100), comment="The Slack member id.")
    actor_name: Mapped[str | None] = mapped_column(String(200), default=None)
    team_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertScorePoint(Base):
    """The scores the alerts service has seen per account and day (``health_drop``'s history)."""

    __tablename__ = "alert_score_history"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    score: Mapped[float | None] = mapped_column(Float, default=None)
    band: Mapped[str] = mapped_column(String(20))
    scorecard: Mapped[str] = mapped_column(String(20), default="health")
    findings: Mapped[list[Any] | None] = mapped_column(
        JSON, default=None, comment="The rules' findings of this day (replayed on a re-score)."
    )
    states: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, default=None, comment="Every alert's day state after this day (replay checkpoint)."
    )


class AlertEpisode(Base):
    """One episode of an (account, rule, feature) in event time: the alert's history.

    Rebuilt from the first re-scored day on every replay, so it is a function of the final daily
    scores whatever order they arrived in; only an episode open in the present is notified.
    """

    __tablename__ = "alert_episodes"
    __table_args__ = (UniqueConstraint("account_id", "rule", "feature", "started_on"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(50))
    feature: Mapped[str] = mapped_column(String(200), default="")
    started_on: Mapped[date] = mapped_column(Date)
    opened_on: Mapped[date] = mapped_column(Date)
    resolved_on: Mapped[date | None] = mapped_column(Date, default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(20), default=None)
    reopenings: Mapped[int] = mapped_column(Integer, default=0)


class WebhookDelivery(Base):
    """The webhook outbox: one event to one endpoint, written in the transaction that decided
    the event (an alert transition, a band change). ``delivery_id`` is the idempotency id a
    receiver gets on every attempt; the alerts service claims, sends and marks rows as the
    notification dispatcher does (docs/webhooks.md)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint: Mapped[str] = mapped_column(String(50), comment="The endpoint's configured name.")
    event_id: Mapped[str] = mapped_column(String(40), comment="The same for every endpoint.")
    event_type: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class ConsoleSignIn(Base):
    """A console session that is signed in. The cookie only names it (signed, so it cannot be
    made up); deleting the row at logout makes a copied cookie worthless at once."""

    __tablename__ = "console_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    person_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("people.id", ondelete="CASCADE"), index=True, default=None
    )


# --- outcomes: what customers did (issue 12); docs/retention.md ---------------------------------


class Outcome(Base):
    """A cancellation, renewal, expansion or contraction an operator recorded (never a write key).

    ``(account_id, kind, effective_on)`` is the natural key: a re-import updates the row, never
    duplicates it. Which value columns a kind uses is checked by :mod:`shared.outcomes.model`.
    """

    __tablename__ = "outcomes"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "effective_on"),
        CheckConstraint(
            "kind IN ('cancellation', 'renewal', 'expansion', 'contraction')", name="kind"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    effective_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    mrr_delta: Mapped[float | None] = mapped_column(
        Float, default=None, comment="Expansion (> 0) or contraction (< 0)."
    )
    new_mrr: Mapped[float | None] = mapped_column(Float, default=None, comment="Renewal.")
    mrr_lost: Mapped[float | None] = mapped_column(
        Float, default=None, comment="Cancellation; optional."
    )
    new_term_end: Mapped[date | None] = mapped_column(Date, default=None, comment="Renewal.")
    source: Mapped[str] = mapped_column(String(20), comment="import, api or demo.")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MrrChange(Base):
    """An account's MRR from ``effective_on`` on, derived from its outcomes and profile (rebuilt
    whenever they change; one row per day, the day's last value)."""

    __tablename__ = "mrr_history"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    effective_on: Mapped[date] = mapped_column(Date, primary_key=True)
    mrr: Mapped[float] = mapped_column(Float)
    cause: Mapped[str] = mapped_column(String(20), comment="start or the outcome's kind.")


class LifecycleStageChange(Base):
    """An account's derived lifecycle stage from ``effective_on`` on (new, growing, renewal,
    cancelled); rebuilt with the MRR history."""

    __tablename__ = "lifecycle_stage_changes"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    effective_on: Mapped[date] = mapped_column(Date, primary_key=True)
    stage: Mapped[str] = mapped_column(String(20))


class BacktestRun(Base):
    """One ``tend backtest`` run: its window and figures (``shared.backtest.report.Comparison``
    as JSON), so the console can show the latest."""

    __tablename__ = "backtest_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ran_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    result: Mapped[dict[str, Any]] = mapped_column(comment="Comparison.to_dict().")


# --- people: who signs in, their tokens, and what they did (issue 15); docs/security.md -------


class Person(Base):
    """Someone who signs in to the console or calls the APIs, with a role: ``admin``,
    ``leader`` or ``csm``. A CSM's book is the accounts whose profile names their email as CSM.
    A disabled person's sessions and tokens stop working at once (they are checked per request)."""

    __tablename__ = "people"
    __table_args__ = (CheckConstraint("role IN ('admin', 'leader', 'csm')", name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, comment="Lower case.")
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str | None] = mapped_column(
        String(200), default=None, comment="argon2id, PHC string; null: OIDC only."
    )
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class PersonalToken(Base):
    """A person's API token: only its SHA-256 is kept (shown once); it acts with its person's
    role and book, and stops with a revoke or when the person is disabled."""

    __tablename__ = "personal_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), comment="First characters, for display.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One thing a person (or the admin token, or the CLI) did. Append-only: the app only
    inserts, and on PostgreSQL a trigger refuses UPDATE and DELETE (migration 0010)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(BigId, default=None, comment="people.id")
    actor: Mapped[str] = mapped_column(String(320), comment="Email, api-token or cli.")
    action: Mapped[str] = mapped_column(String(50), index=True)
    target: Mapped[str | None] = mapped_column(String(300), default=None)
    account_id: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReportDelivery(Base):
    """The outbox of the scheduled monthly reports: one row per (account, month), so a report is
    sent once whatever restarts or replicas do. A sender claims a row by counting the attempt and
    pushing ``next_attempt_at`` ahead by a lease, in the transaction that reads it; ``sent`` is
    final, ``failed`` means it gave up after the configured attempts."""

    __tablename__ = "report_deliveries"
    __table_args__ = (CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),)

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True, comment="YYYY-MM")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
