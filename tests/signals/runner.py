"""Feed a simulated portfolio through the real pipeline and collect what a CSM would see.

The pipeline is the one ``tend up`` runs, in this process: the ingest app (``/v1/batch`` over
an in-process ASGI transport), the in-process bus keeping its records in the database, the
scorer (:func:`services.scorer.app.build_service`: consumer, rollup writer, re-scorer) and
the alerts service (:func:`services.alerts.app.build_service`: consumer, life cycle, outbox,
a default Slack webhook as the only destination, so every alert is routed; the dispatcher
is left out, the outbox rows are the notifications that would be sent). The database is a
SQLite file by default, or PostgreSQL.

Three arrival orders (:data:`MODES`):

- ``stream``: the account profiles are imported first (``tend accounts import``), then the
  calls are posted oldest first, ``pace_days`` days of history at a time in requests of at
  most ``request_calls`` calls, with the scorer and alerts running; each step waits until the
  scorer has committed it, so scoring runs between the steps (as ``tend demo`` feeds history
  into a running ``tend up``).
- ``shuffled``: the same, but the calls in a seeded random order, cut into as many slices as
  ``stream`` has steps.
- ``at_once``: every call is posted before the scorer starts; the scorer then reads them as
  one batch.

The clock is fixed for the whole run at :func:`clock_time` (06:00 UTC the day after the last
simulated day), so every simulated day is complete ("final") and the day after is "today".

:class:`Outcome` holds the final score history (one band per account and simulated day), the
alert episodes (opened, resolved; in event time) and every outbox row (the notifications that
would be sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import func, inspect, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.app import build_service as build_alerts
from services.ingest.app import create_app as create_ingest
from services.scorer.app import build_service as build_scorer
from shared import topics
from shared.accounts_csv import import_accounts, parse_accounts_csv
from shared.bus import Bus, create_bus
from shared.bus.base import Producer
from shared.clock import FixedClock
from shared.config import TendConfig, load_config
from shared.db.keys import create_key
from shared.db.migrate import upgrade_async
from shared.db.models import (
    Account,
    Alert,
    AlertNotification,
    BusRecord,
    ConsumerOffset,
    HealthScore,
)
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import AlertsSettings, ScorerSettings, Settings
from tests.signals.simulator import Portfolio

log = logging.getLogger(__name__)

Mode = Literal["stream", "at_once", "shuffled"]
MODES: tuple[Mode, ...] = ("stream", "at_once", "shuffled")
Sessions = async_sessionmaker[AsyncSession]
ROOT = Path(__file__).resolve().parents[2]
PRODUCT_CONFIG = ROOT / "deploy" / "tend.yaml"
SCORER_GROUP = "tend-scorer"
ALERTS_GROUP = "tend-alerts"
NOWHERE = "http://127.0.0.1:9/simulated-slack-webhook"
"""The default Slack webhook: routes every alert; never called (no dispatcher runs)."""
QUIET_S = 2.0
"""The pipeline counts as settled once no score was published for this long (well above the
re-scorer's debounce) while every score has been consumed by the alerts service."""


def product_config() -> TendConfig:
    """The product's defaults with its key features and feature catalog (deploy/tend.yaml)."""
    return load_config(PRODUCT_CONFIG)


def clock_time(portfolio: Portfolio) -> datetime:
    return datetime.combine(portfolio.end + timedelta(days=1), dtime(6), tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class Episode:
    """One opening of an alert and, if it happened, its resolution, in event time."""

    account_id: str
    rule: str
    feature: str
    opened_on: date
    resolved_on: date | None
    reopenings: int = 0
    """Returns within the cool-down that continued this episode (where alerts have one)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One outbox row: a message that would be sent."""

    account_id: str
    rule: str
    feature: str
    kind: str
    as_of: date | None


@dataclass(slots=True)
class Outcome:
    mode: Mode
    scores: dict[tuple[str, date], tuple[float | None, str]] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    """One per message (outbox row), named by its lead alert."""
    announced: list[Notice] = field(default_factory=list)
    """One per alert a message speaks of (a grouped message names several)."""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """The alert rows as they end (every column)."""
    calls: int = 0
    seconds: float = 0.0

    def bands(self) -> dict[tuple[str, date], str]:
        return {k: band for k, (_, band) in self.scores.items()}


# -- the pipeline ---------------------------------------------------------------------------


@dataclass(slots=True)
class Pipeline:
    settings: Settings
    config: TendConfig
    sessions: Sessions
    clock: FixedClock
    client: httpx.AsyncClient
    write_key: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def post(self, calls: Sequence[dict[str, Any]], request_calls: int) -> None:
        for i in range(0, len(calls), request_calls):
            body = {"batch": list(calls[i : i + request_calls])}
            r = await self.client.post("/v1/batch", json=body, auth=(self.write_key, ""))
            if r.status_code != 200 or r.json().get("rejected"):
                raise AssertionError(f"ingest refused a batch: {r.status_code} {r.text[:300]}")

    def start_services(self, bus: Bus, producers: list[Producer]) -> None:
        args = (self.settings, self.config, bus, self.sessions)
        scorer = build_scorer(*args, producers[0], self.clock)
        alerts = build_alerts(*args, producers[1], self.clock)
        # Nothing leaves the process: the outbox rows are what would be sent.
        alerts.dispatcher = None
        for service in (scorer, alerts):
            self.tasks.append(asyncio.create_task(service.run(self.stop)))

    def check_alive(self) -> None:
        for task in self.tasks:
            if task.done():
                raise AssertionError(f"a service stopped early: {task.exception()!r}")

    async def wait_for(self, what: str, done: Callable[[], Awaitable[bool]]) -> None:
        """Poll ``done``; the deadline is a guard against hangs, not a performance check."""
        deadline = time.monotonic() + 600
        while not await done():
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def scorer_caught_up(self) -> bool:
        ends = await topic_ends(self.sessions, topics.EVENTS)
        stored = await group_offsets(self.sessions, SCORER_GROUP)
        return all(stored.get(p, 0) >= e for p, e in ends.items())

    async def settle(self) -> None:
        """Until every event is in the rollups, the re-scorer has nothing left to do and the
        alerts service has consumed every score."""
        await self.wait_for("the scorer", self.scorer_caught_up)
        quiet_since = time.monotonic()
        last: dict[int, int] = {}
        while True:
            self.check_alive()
            ends = await topic_ends(self.sessions, topics.SCORES)
            if ends != last:
                last, quiet_since = ends, time.monotonic()
            stored = await group_offsets(self.sessions, ALERTS_GROUP)
            consumed = all(stored.get(p, 0) >= e for p, e in ends.items())
            quiet = time.monotonic() - quiet_since >= QUIET_S
            if consumed and quiet and not await dirty_accounts(self.sessions):
                return
            await asyncio.sleep(0.1)

    async def shutdown(self) -> None:
        self.stop.set()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 60)


async def topic_ends(sessions: Sessions, topic: str) -> dict[int, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(BusRecord.partition, func.max(BusRecord.offset) + 1)
            .where(BusRecord.topic == topic)
            .group_by(BusRecord.partition)
        )
        return {int(p): int(e) for p, e in rows.all()}


async def group_offsets(sessions: Sessions, group_id: str) -> dict[int, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(ConsumerOffset.partition, ConsumerOffset.next_offset).where(
                ConsumerOffset.group_id == group_id
            )
        )
        return {int(p): int(o) for p, o in rows.all()}


async def dirty_accounts(sessions: Sessions) -> int:
    """Accounts the re-scorer still has to score (the dirty flag, or a day to re-score from,
    whichever this version of the schema has)."""
    pending = []
    if hasattr(Account, "dirty"):
        pending.append(Account.dirty.is_(True))
    if hasattr(Account, "rescore_from"):
        pending.append(Account.rescore_from.is_not(None))
    if not pending:
        return 0
    async with sessions() as session:
        n = await session.scalar(select(func.count()).select_from(Account).where(or_(*pending)))
        return int(n or 0)


def scorer_settings(portfolio: Portfolio, batch: int) -> dict[str, Any]:
    # The whole simulated history is scored (not only the default 90 days back), and a late
    # event re-scores its day however old (the default horizon, 35 days, is for live traffic;
    # a backfill of 26 weeks in any order needs them all), where the scorer has a horizon.
    out: dict[str, Any] = {
        "batch_max_records": batch,
        "batch_max_wait_s": 0.05,
        "backfill_days": portfolio.days,
    }
    if "rescore_horizon_days" in ScorerSettings.model_fields:
        out["rescore_horizon_days"] = portfolio.days + 1
    return out


@contextlib.asynccontextmanager
async def pipeline(
    portfolio: Portfolio,
    database_url: str,
    config: TendConfig,
    *,
    scorer_batch: int = 1000,
) -> AsyncIterator[tuple[Pipeline, Callable[[], None]]]:
    """The running ingest app; yields the pipeline and a function starting the services."""
    await upgrade_async(database_url)
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap=None,
        slack_webhook_url=NOWHERE,
        scorer=ScorerSettings(**scorer_settings(portfolio, scorer_batch)),
        alerts=AlertsSettings(batch_max_wait_s=0.05, dispatch_interval_s=0.2),
    )
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    bus = create_bus(settings, sessions)
    producers = [bus.producer(), bus.producer()]
    try:
        async with sessions() as session, session.begin():
            await import_accounts(session, parse_accounts_csv(portfolio.accounts_csv()))
            _, write_key = await create_key(session, "simulator")
        for p in producers:
            await p.start()
        app = create_ingest(settings, bus=bus, config=config)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ingest", timeout=120
            ) as client,
        ):
            pipe = Pipeline(
                settings, config, sessions, FixedClock(clock_time(portfolio)), client, write_key
            )
            try:
                yield pipe, lambda: pipe.start_services(bus, producers)
            finally:
                await pipe.shutdown()
    finally:
        for p in producers:
            await p.stop()
        await bus.close()
        await engine.dispose()


async def run_portfolio(
    portfolio: Portfolio,
    mode: Mode,
    database_url: str,
    *,
    config: TendConfig | None = None,
    request_calls: int = 500,
    pace_days: int = 7,
    seed: int = 1,
) -> Outcome:
    """Feed ``portfolio`` in ``mode`` into a fresh pipeline on ``database_url`` (an empty
    database, migrated here) and collect the :class:`Outcome` once it has settled."""
    cfg = config or product_config()
    started = time.perf_counter()
    by_day = [calls for _, calls in portfolio.calls()]
    outcome = Outcome(mode, calls=sum(len(c) for c in by_day))
    scorer_batch = outcome.calls + 1 if mode == "at_once" else 1000
    async with pipeline(portfolio, database_url, cfg, scorer_batch=scorer_batch) as (pipe, start):
        if mode == "at_once":
            await pipe.post([c for calls in by_day for c in calls], request_calls)
            start()
        else:
            start()
            steps = [
                [c for day in by_day[i : i + pace_days] for c in day]
                for i in range(0, len(by_day), pace_days)
            ]
            for calls in steps if mode == "stream" else _shuffled(steps, seed):
                await pipe.post(calls, request_calls)
                await pipe.wait_for("the scorer", pipe.scorer_caught_up)
        await pipe.settle()
        await pipe.shutdown()
        await collect(pipe.sessions, portfolio, outcome)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _shuffled(steps: list[list[dict[str, Any]]], seed: int) -> list[list[dict[str, Any]]]:
    calls = [c for step in steps for c in step]
    random.Random(seed).shuffle(calls)
    n = len(steps)
    size = -(-len(calls) // n)
    return [calls[i : i + size] for i in range(0, len(calls), size)]


# -- what the run left behind -----------------------------------------------------------------


async def collect(sessions: Sessions, portfolio: Portfolio, out: Outcome) -> None:
    async with sessions() as session:
        rows = await session.execute(
            select(HealthScore.account_id, HealthScore.as_of, HealthScore.score, HealthScore.band)
            .where(HealthScore.as_of <= portfolio.end)
            .order_by(HealthScore.account_id, HealthScore.as_of)
        )
        out.scores = {(a, _day(d)): (s, b) for a, d, s, b in rows.all()}
        alerts = list(await session.scalars(select(Alert).order_by(Alert.id)))
        columns = [c.key for c in inspect(Alert).mapper.column_attrs]
        out.alerts = [{c: getattr(a, c) for c in columns} for a in alerts]
        by_id = {a.id: a for a in alerts}
        notes = list(
            await session.scalars(select(AlertNotification).order_by(AlertNotification.id))
        )
        recorded = await recorded_episodes(session)
    for n in notes:
        alert = by_id.get(n.alert_id)
        payload = n.payload if isinstance(n.payload, dict) else {}
        as_of = _day(payload["as_of"]) if payload.get("as_of") else None
        account = alert.account_id if alert else ""
        lead = Notice(
            account, alert.rule if alert else "", alert.feature if alert else "", n.kind, as_of
        )
        out.notices.append(lead)
        # A grouped message (one incident per account) speaks of every alert in its items.
        items = payload.get("items") or []
        out.announced.extend(
            Notice(account, i["rule"], i.get("feature") or "", i["kind"], as_of) for i in items
        )
        if not items:
            out.announced.append(lead)
    out.episodes = recorded if recorded is not None else episodes_from(out.alerts, out.notices)


async def recorded_episodes(session: AsyncSession) -> list[Episode] | None:
    """The alerts' own history in event time (``alert_episodes``), where the schema has it;
    None where it has not (the code before issue 10)."""

    def has_table(conn: Any) -> bool:
        return bool(inspect(conn).has_table("alert_episodes"))

    conn = await session.connection()
    if not await conn.run_sync(has_table):
        return None
    rows = await session.execute(
        text(
            "SELECT account_id, rule, feature, opened_on, resolved_on, reopenings "
            "FROM alert_episodes"
        )
    )
    return sorted(
        Episode(a, r, f or "", _day(o), _day(x) if x is not None else None, int(n or 0))
        for a, r, f, o, x, n in rows.all()
    )


def episodes_from(alerts: list[dict[str, Any]], notices: list[Notice]) -> list[Episode]:
    """Every opening and resolution of every alert, in event time, from the outbox.

    For the code before issue 10, which keeps no alert history: the outbox holds an ``open``
    message per opening and a ``resolve`` message per resolution, each naming the scored day
    that decided it, so it is the full record of alert life cycles where each opening is
    notified. An alert row that is open without an ``open`` message of
    its own counts from its last evaluated day."""
    out: list[Episode] = []
    seen: set[tuple[str, str, str]] = set()
    open_: dict[tuple[str, str, str], date] = {}
    for n in notices:
        key = (n.account_id, n.rule, n.feature)
        if n.as_of is None:
            continue
        if n.kind == "open" and key not in open_:
            open_[key] = n.as_of
            seen.add(key)
        elif n.kind == "resolve" and key in open_:
            out.append(Episode(*key, open_.pop(key), n.as_of))
    for key, day in open_.items():
        out.append(Episode(*key, day, None))
    for a in alerts:
        key = (a["account_id"], a["rule"], a["feature"])
        if key in seen or a["status"] not in ("open", "acknowledged", "snoozed"):
            continue
        began = a.get("as_of")
        if began is not None:
            out.append(Episode(*key, _day(began), None))
    return sorted(out)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
