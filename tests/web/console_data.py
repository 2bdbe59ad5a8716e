"""A private, seeded SQLite database for the console tests, and the app that serves it.

Seven synthetic accounts (one per archetype, :mod:`tests.scorer.synthetic`) replayed through
the real rollup writer and scored by the real re-scorer: weekly over 12 weeks, then daily over
the last week (so the sparkline and the 7-day trend have data). Alerts are written as the
alerts consumer leaves them: open ones on the at-risk accounts, an acknowledged one, a resolved
one and a pending one (which the console must not show).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.scorer.rescorer import Rescorer
from services.scorer.writer import RollupWriter
from services.web.app import create_app
from shared.clock import FixedClock
from shared.db.migrate import upgrade_async
from shared.db.models import Account, Alert
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings
from tests.scorer.synthetic import CONFIG, Archetype, Replay, generate, import_profiles
from tests.support import people

TOKEN = "console-test-token-0123456789abcdef"

ANA = "ana@cs.example"
BEN = "ben@cs.example"
CSM_NAMES = {ANA: "Ana Lima"}
"""Ana's accounts name her (the ``csm_name`` trait, as the reports read it); Ben's do not."""
ADMIN = "admin@cs.example"
LEAD = "lead@cs.example"
PASSWORD = "console-test-password"
"""Everyone's password in the seeded database (people: ADMIN, LEAD, and the CSMs ANA and BEN)."""
PEOPLE = {ADMIN: "admin", LEAD: "leader", ANA: "csm", BEN: "csm"}
CSM_OF = {
    Archetype.DORMANT: ANA,
    Archetype.PLATEAUING: ANA,
    Archetype.HEALTHY_STEADY: ANA,
    Archetype.NEVER_ADOPTS: ANA,
    Archetype.DECLINING: BEN,
    Archetype.ABANDONS_FEATURE: BEN,
    Archetype.HEALTHY_GROWING: BEN,
}
RENEWAL_IN_DAYS = {
    Archetype.DORMANT: 20,
    Archetype.DECLINING: 45,
    Archetype.PLATEAUING: 80,
    Archetype.HEALTHY_GROWING: 150,
    Archetype.HEALTHY_STEADY: 300,
    Archetype.ABANDONS_FEATURE: 10,
    Archetype.NEVER_ADOPTS: 400,
}


@dataclass
class Seeded:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    replay: Replay
    clock: FixedClock
    alerts: dict[str, int]
    """Alert ids by a short name: dormant, decline, feature (acknowledged), plateau
    (resolved), pending, upsell (an open opportunity)."""

    def id_of(self, archetype: Archetype) -> str:
        return next(a.account_id for a in self.replay.accounts if a.archetype is archetype)

    @property
    def today(self) -> date:
        return self.replay.end

    async def close(self) -> None:
        await self.engine.dispose()


def _alert(
    account_id: str,
    name: str,
    rule: str,
    status: str,
    severity: str,
    at: datetime,
    *,
    csm: str,
    mrr: float,
    feature: str = "",
) -> Alert:
    return Alert(
        account_id=account_id,
        rule=rule,
        feature=feature,
        status=status,
        severity=severity,
        consecutive_holds=2,
        consecutive_clears=0,
        last_evaluated_as_of=at.date(),
        last_holds=status != "resolved",
        opened_at=at - timedelta(days=3) if status != "pending" else None,
        acknowledged_at=at - timedelta(days=1) if status == "acknowledged" else None,
        resolved_at=at - timedelta(hours=5) if status == "resolved" else None,
        resolved_by="condition" if status == "resolved" else None,
        last_notified_at=at - timedelta(days=3) if status != "pending" else None,
        notifications=1 if status != "pending" else 0,
        reason=f"{name}: {rule.replace('_', ' ')} <for {account_id}>",
        next_step=f"Call the champion of {name}",
        facts={},
        as_of=at.date(),
        account_name=name,
        mrr=mrr,
        csm_email=csm,
        created_at=at - timedelta(days=4),
        updated_at=at - timedelta(days=3),
    )


async def seed(path: str, prefix: str = "cs") -> Seeded:
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    replay = generate(prefix, per_archetype=1)
    await import_profiles(sessions, replay)
    await people.add_people(sessions, PEOPLE, PASSWORD)
    writer = RollupWriter()
    for start in range(0, len(replay.events), 2000):
        async with sessions() as session, session.begin():
            await writer.flush(session, "console-test", replay.events[start : start + 2000], {})
    clock = FixedClock(replay.as_of_datetime())
    rescorer = Rescorer(sessions, None, CONFIG, clock)
    days = sorted(
        {replay.end - timedelta(days=7 * k) for k in range(11, 0, -1)}
        | {replay.end - timedelta(days=k) for k in range(7, -1, -1)}
    )
    for day in days:
        await rescorer.sweep(day)

    at = datetime.combine(replay.end, time(9), tzinfo=UTC)
    by_arch = {a.archetype: a for a in replay.accounts}
    alerts: dict[str, int] = {}
    async with sessions() as session, session.begin():
        for archetype, days_left in RENEWAL_IN_DAYS.items():
            account = await session.get(Account, by_arch[archetype].account_id)
            assert account is not None
            csm = CSM_OF[archetype]
            traits = dict(account.traits or {})
            if csm in CSM_NAMES:
                traits["csm_name"] = CSM_NAMES[csm]
            await session.execute(
                update(Account)
                .where(Account.account_id == by_arch[archetype].account_id)
                .values(
                    renewal_date=replay.end + timedelta(days=days_left),
                    csm_email=csm,
                    traits=traits,
                )
            )
        plan = {
            "dormant": (Archetype.DORMANT, "dormant", "open", "critical", ""),
            "decline": (Archetype.DECLINING, "login_decline", "open", "warning", ""),
            "feature": (
                Archetype.ABANDONS_FEATURE,
                "feature_unused",
                "acknowledged",
                "warning",
                "exports",
            ),
            "plateau": (Archetype.PLATEAUING, "login_plateau", "resolved", "warning", ""),
            "pending": (Archetype.HEALTHY_STEADY, "health_drop", "pending", "warning", ""),
            "upsell": (Archetype.HEALTHY_GROWING, "upsell_seats", "open", "opportunity", ""),
        }
        rows: dict[str, Alert] = {}
        for key, (archetype, rule, status, severity, feature) in plan.items():
            acc = by_arch[archetype]
            name = f"{archetype.value.replace('_', ' ').title()} 0"
            rows[key] = _alert(
                acc.account_id,
                name,
                rule,
                status,
                severity,
                at,
                csm=CSM_OF[archetype],
                mrr=acc.mrr,
                feature=feature,
            )
            session.add(rows[key])
        await session.flush()
        alerts = {k: r.id for k, r in rows.items()}
    return Seeded(url, engine, sessions, replay, clock, alerts)


def build_app(seeded: Seeded, token: str | None = TOKEN) -> FastAPI:
    """The web app (console, read and alerts APIs, reports) on the seeded database, as
    ``tend web`` and ``tend up`` serve it; ``token`` None: no API token (the console is closed)."""
    return create_app(
        Settings(api_token=None, config=None),
        config=CONFIG,
        sessions=seeded.sessions,
        clock=seeded.clock,
        api_token=token,
    )


async def sign_in(
    client: httpx.AsyncClient, email: str = ADMIN, next_url: str = "/console/"
) -> httpx.Response:
    """Sign ``client`` in to the console as ``email`` (with :data:`PASSWORD`)."""
    return await people.sign_in(client, email, next_url, PASSWORD)
