"""Process settings, read from the environment (prefix ``TEND_``; nested blocks use ``__``).

Every service reads the same :class:`Settings`; each only looks at the blocks it needs.
The scoring model, feature catalog and alert rules live in the YAML file named by
``TEND_CONFIG`` (see :mod:`shared.config`), not here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import MAX_NESTING

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tend.db"


class IngestSettings(BaseModel):
    """Limits and behaviour of the ingest API (``TEND_INGEST__*``)."""

    max_body_bytes: int = Field(500_000, ge=1, description="Largest decompressed request body.")
    max_batch_events: int = Field(2_500, ge=1, description="Most events in one /v1/batch call.")
    max_event_bytes: int = Field(32_000, ge=1, description="Largest single event, as JSON.")
    produce_timeout_s: float = Field(
        10.0, gt=0, description="How long a request waits for broker acks before answering 503."
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 503 answers.")
    future_tolerance_s: float = Field(
        23 * 3600, ge=0, description="Corrected timestamps further ahead are set to receivedAt."
    )
    key_cache_ttl_s: float = Field(30.0, ge=0, description="How long a write-key lookup is cached.")
    account_cache_ttl_s: float = Field(
        60.0, ge=0, description="How long a user-to-account lookup is cached."
    )
    rate_limit_per_s: float | None = Field(
        None, gt=0, description="Events per second per write key; unset disables the limit."
    )
    rate_limit_burst: int = Field(5_000, ge=1, description="Token-bucket size per write key.")
    max_depth: int = Field(
        32,
        ge=1,
        le=MAX_NESTING,
        description="Deepest nesting of properties and traits (objects and arrays, the outer "
        f"object counting as one); deeper events are refused. At most {MAX_NESTING}, so every "
        "accepted event stays decodable downstream.",
    )
    cors_origins: str = Field(
        "*",
        description="Comma-separated origins (scheme://host[:port]) whose browser pages may "
        "call the tracking routes; * allows any. Never with credentials (cookies).",
    )

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


class KafkaSettings(BaseModel):
    """Topic layout and client tuning (``TEND_KAFKA__*``)."""

    partitions: int = Field(6, ge=1, description="Partitions of topics created at start.")
    replication_factor: int = Field(1, ge=1)
    linger_ms: int = Field(5, ge=0, description="Producer linger: how long to gather a batch.")
    max_batch_bytes: int = Field(1_048_576, ge=1024)
    request_timeout_ms: int = Field(10_000, ge=100)
    client_id: str = "tend"
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="A consumer silent this long leaves its group (rebalance)."
    )
    heartbeat_interval_ms: int = Field(3_000, ge=100, description="Consumer heartbeat period.")


class BusSettings(BaseModel):
    """Retention of the in-process bus of ``tend up`` (``TEND_BUS__*``; Kafka keeps its own)."""

    retention_s: float = Field(
        0.0,
        ge=0,
        description="How long a record every consumer group has committed past is kept before "
        "it is pruned (0: at the next prune). A record some group has not consumed is never "
        "pruned.",
    )
    prune_interval_s: float = Field(
        10.0, gt=0, description="How often consumed records are pruned, at most."
    )


class ScorerSettings(BaseModel):
    """Batching and re-scoring of the scorer (``TEND_SCORER__*``)."""

    batch_max_records: int = Field(1_000, ge=1, description="Records per flushed batch, at most.")
    batch_max_wait_s: float = Field(0.5, gt=0, description="How long a batch gathers records.")
    sweep_interval_s: float = Field(
        3_600, gt=0, description="How often every account is re-scored (dormant ones too)."
    )
    dedup_window_days: int = Field(
        7, ge=1, description="How long a messageId is remembered to drop client retries."
    )
    backfill_days: int = Field(
        90, ge=0, description="How many missed days of scores are filled in, at most."
    )
    rescore_horizon_days: int = Field(
        35,
        ge=0,
        description="Late events re-score the days they touch and every later day, but no "
        "day more than this many days before today (UTC).",
    )
    routing_from_traits: bool = Field(
        False,
        description="Take csm_email and csm_slack (alert destinations) from group-call traits. "
        "Off: only an operator sets them (tend accounts import, PATCH /v1/accounts/{id}), "
        "since anyone holding a write key can send group calls.",
    )


class AlertsSettings(BaseModel):
    """Batching of the alerts consumer, default recipients and delivery tuning
    (``TEND_ALERTS__*``)."""

    default_emails: str = Field(
        "", description="Comma-separated addresses for accounts without a CSM email."
    )
    batch_max_records: int = Field(500, ge=1, description="Score messages per flushed batch.")
    batch_max_wait_s: float = Field(0.2, gt=0, description="How long a batch gathers records.")
    dispatch_interval_s: float = Field(
        1.0, gt=0, description="How often the dispatcher looks for due notifications when idle."
    )
    dispatch_batch: int = Field(50, ge=1, description="Notifications claimed per round.")
    max_attempts: int = Field(
        8, ge=1, description="Delivery attempts before a notification is marked failed."
    )
    claim_lease_s: float = Field(
        120.0, gt=0, description="A claimed notification not marked by then is sent again."
    )
    max_backoff_s: float = Field(3600.0, gt=0, description="Longest wait between two attempts.")
    email_digest: bool = Field(
        False, description="One mail per recipient a day (by MRR at risk) instead of one per alert."
    )
    digest_hour_utc: int = Field(8, ge=0, le=23, description="Hour (UTC) the digest is sent.")
    outbox_retention_days: int = Field(
        30, ge=1, description="Sent and failed notifications are deleted after this many days."
    )
    slack_webhook_hosts: str = Field(
        "hooks.slack.com",
        description="Comma-separated hosts a Slack webhook URL from account data (profile or "
        "traits) may point at; others go to the default route. TEND_SLACK_WEBHOOK_URL and rule "
        "routes are trusted and not checked.",
    )
    slack_webhook_allow_http: bool = Field(
        False,
        description="For testing only: accept http:// webhook URLs from account data "
        "(a loopback stand-in for Slack). Keep false in production.",
    )
    email_domains: str = Field(
        "",
        description="Comma-separated domains a CSM email from account data may be at; others "
        "go to the default route. Empty: any domain.",
    )

    @property
    def default_email_list(self) -> list[str]:
        return [a.strip() for a in self.default_emails.split(",") if a.strip()]

    @property
    def slack_webhook_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.slack_webhook_hosts.split(",") if h.strip()]

    @property
    def email_domain_list(self) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in self.email_domains.split(",") if d.strip()]


class SlackSettings(BaseModel):
    """The Slack app: buttons on alerts and Web API delivery (``TEND_SLACK__*``; the incoming
    webhook of old is ``TEND_SLACK_WEBHOOK_URL``). docs/slack.md sets the app up."""

    signing_secret: SecretStr | None = Field(
        None,
        description="The app's signing secret: /v1/slack/interactivity takes only requests "
        "signed with it. Unset: the endpoint refuses every request (401) and alerts carry no "
        "buttons.",
    )
    bot_token: SecretStr | None = Field(
        None,
        description="The app's bot token (xoxb-..., scope chat:write): alerts are posted with "
        "chat.postMessage instead of incoming webhooks.",
    )
    channel: str | None = Field(
        None,
        max_length=100,
        description="Channel id the bot posts to (the CSM is mentioned there). Unset: a CSM "
        "with a Slack user id gets a direct message, others the incoming webhook.",
    )
    api_url: str = Field(
        "https://slack.com/api",
        description="Base URL of Slack's Web API (tests point it at a loopback server).",
    )
    min_interval_s: float = Field(
        1.0, ge=0, description="Least time between two messages to one channel (Slack: ~1/s)."
    )


class ConsoleSettings(BaseModel):
    """Sign-in and session cookie of the CSM console (``TEND_CONSOLE__*``)."""

    cookie_secure: bool | None = Field(
        None,
        description="Mark the session cookie Secure: true behind a TLS proxy, false never; "
        "unset follows the request's scheme (which uvicorn takes from X-Forwarded-Proto only "
        "when the proxy is trusted, see --forwarded-allow-ips).",
    )
    signin_max_failures: int = Field(
        10, ge=1, description="Failed sign-ins per client address in a window before 429."
    )
    signin_window_s: float = Field(
        60.0, gt=0, description="The window (seconds) the failed sign-ins are counted over."
    )
    session_max_age_s: int = Field(
        12 * 3600, ge=60, description="How long a console session lasts without signing in again."
    )


class PeopleSettings(BaseModel):
    """Who sees what (``TEND_PEOPLE__*``; docs/security.md)."""

    csm_read_all: bool = Field(
        False,
        description="Let a CSM read accounts outside their book (read-only: no alert moves).",
    )
    first_admin_email: str = Field(
        "admin@localhost",
        description="Email of the admin `tend migrate` and `tend up` create when nobody exists.",
    )


class OidcSettings(BaseModel):
    """Console sign-in through an OpenID Connect provider (``TEND_OIDC__*``; docs/security.md).
    Off unless ``issuer`` and ``client_id`` are set."""

    issuer: str | None = Field(
        None, description="The provider's issuer URL (its discovery document is under it)."
    )
    client_id: str | None = Field(None, description="tend's client id at the provider.")
    client_secret: SecretStr | None = Field(
        None, description="For a confidential client; unset: a public client (PKCE only)."
    )
    name: str = Field("single sign-on", description="The sign-in button says 'Sign in with' it.")
    redirect_url: str | None = Field(
        None,
        description="The callback URL registered at the provider; unset: this console's "
        "/console/oidc/callback as the request reached it.",
    )
    timeout_s: float = Field(10.0, gt=0, description="Seconds per call to the provider.")

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


class ReportsSettings(BaseModel):
    """The monthly customer report: its schedule and its PDF (``TEND_REPORTS__*``)."""

    send_day: int | None = Field(
        None,
        ge=1,
        le=28,
        description="Day of the month (UTC) on which the web service sends each account's report "
        "of the month before to its customer contacts, the CSM in copy; unset: no schedule.",
    )
    send_hour_utc: int = Field(8, ge=0, le=23, description="Hour (UTC) of the send day.")
    interval_s: float = Field(
        60.0, gt=0, description="How often the schedule looks for reports due or to retry."
    )
    max_attempts: int = Field(8, ge=1, description="Attempts before a report is failed.")
    retry_initial_s: float = Field(
        60.0, gt=0, description="First wait after a failed attempt (then doubling, with jitter)."
    )
    max_backoff_s: float = Field(
        6 * 3600.0, gt=0, description="Longest wait between two attempts at one report."
    )
    claim_lease_s: float = Field(600.0, gt=0, description="How long a claim hides a report.")
    chromium: str = Field(
        "chromium",
        description="Headless Chromium that prints the PDF: a path or a name on PATH; empty: "
        "send the HTML without a PDF.",
    )
    pdf_timeout_s: float = Field(60.0, gt=0, description="Longest a PDF may take to print.")


MIN_API_TOKEN_CHARS = 32


class ConsumerSettings(BaseModel):
    """What every consumer group (scorer, alerts) does on failures (``TEND_CONSUMER__*``)."""

    retry_initial_s: float = Field(
        0.2, gt=0, description="First wait before a failed batch is retried (then doubling)."
    )
    retry_max_s: float = Field(10.0, gt=0, description="Longest wait between two retries.")
    offset_out_of_range: Literal["earliest", "latest"] = Field(
        "earliest",
        description="When a stored offset is past the log's end (the broker lost its log): "
        "resume from the earliest record the log holds (dedup by messageId keeps the scorer "
        "exact), or from the end (skips whatever the log holds now).",
    )
    lag_interval_s: float = Field(
        5.0, gt=0, description="How often the lag gauge is recomputed, idle or not."
    )


class Settings(BaseSettings):
    """All of tend's environment configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TEND_", env_nested_delimiter="__", extra="ignore", env_file=None
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: postgresql+asyncpg://... or sqlite+aiosqlite:///...",
    )
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset means the in-process bus (tend up only)."
    )
    config: Path | None = Field(
        None, description="YAML file with the scoring model, feature catalog and alert rules."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token for the read and alert APIs."
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json", "auto"] = Field(
        "auto",
        description="Log lines as text (key=value), json (one object a line, with service, "
        "level, event and ids) or auto: text when stderr is a terminal, json otherwise.",
    )
    slack_webhook_url: SecretStr | None = Field(
        None, description="Default Slack incoming webhook for accounts without a CSM webhook."
    )
    smtp_host: str | None = Field(None, description="SMTP server; unset disables email.")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field("tend <tend@localhost>", description="From header of alert mail.")
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_s: float = Field(30.0, gt=0, description="Seconds per SMTP command.")
    smtp_ca_file: str | None = Field(
        None, description="Extra CA bundle for the SMTP server's certificate (a private relay)."
    )
    smtp_validate_certs: bool = Field(
        True, description="Verify the SMTP server's certificate (turn off only for testing)."
    )
    console_url: str = Field(
        "http://localhost:8000/console",
        description="Base URL of the console (where it is mounted), for links in alerts.",
    )
    ingest: IngestSettings = IngestSettings()
    kafka: KafkaSettings = KafkaSettings()
    bus: BusSettings = BusSettings()
    scorer: ScorerSettings = ScorerSettings()
    alerts: AlertsSettings = AlertsSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    shutdown_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long SIGTERM waits for the background services to drain; after it, "
        "a batch still in hand is given up uncommitted (read again on the next start).",
    )
    console: ConsoleSettings = ConsoleSettings()
    people: PeopleSettings = PeopleSettings()
    oidc: OidcSettings = OidcSettings()
    slack: SlackSettings = SlackSettings()

    reports: ReportsSettings = ReportsSettings()

    @field_validator("api_token")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        # The token is the only credential of the read and alerts APIs and the console.
        if value is not None and len(value.get_secret_value()) < MIN_API_TOKEN_CHARS:
            raise ValueError(
                f"TEND_API_TOKEN must be at least {MIN_API_TOKEN_CHARS} characters "
                "(generate one with: openssl rand -hex 32)"
            )
        return value

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
