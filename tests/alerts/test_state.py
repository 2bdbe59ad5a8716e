"""The alert repository on real PostgreSQL: state round trip, score history, outbox, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.rules import Finding
from services.alerts.state import AlertRepository, build_notification
from shared.alerting.lifecycle import AlertState
from shared.alerting.state import state_of
from shared.db.models import Alert
from shared.read.alerts import get_alert, search_alerts
from tests.alerts.snapshots import DAY0, create_snapshot, outbox_of, unique_account

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
REPO = AlertRepository()


def create_finding(holds: bool = True, **fields: object) -> Finding:
    values: dict[str, object] = {
        "rule": "dormant",
        "as_of": DAY0,
        "holds": holds,
        "severity": "critical",
        "reason": "no login for 20 days",
        "next_step": "call them",
        "facts": {"days_since": 20},
    }
    values.update(fields)
    return Finding.model_validate(values)


class TestStateRoundTrip:
    async def test_every_state_field_survives_the_database(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        state = AlertState(
            status="snoozed",
            consecutive_holds=3,
            consecutive_clears=0,
            last_evaluated_as_of=DAY0,
            last_holds=True,
            opened_at=T0,
            snoozed_until=T0 + timedelta(days=2),
            snooze_reason="customer on holiday",
            last_notified_at=T0,
            notifications=2,
        )
        snapshot = create_snapshot(account)
        async with pg_sessions() as session, session.begin():
            row = REPO.add(session, account, create_finding(), T0)
            REPO.apply(row, state, snapshot, create_finding(), T0, describe=True)
        async with pg_sessions() as session:
            rows = await REPO.load(session, [account])
        [(key, row)] = rows.items()
        assert key == (account, "dormant", "")
        assert state_of(row) == state
        assert (row.score, row.band, row.account_name, row.mrr) == (
            57.2,
            "yellow",
            "Acme Corp",
            4800,
        )
        assert row.facts == {"days_since": 20}

    async def test_one_row_per_account_rule_feature(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        async with pg_sessions() as session, session.begin():
            REPO.add(session, account, create_finding(rule="feature_unused", feature="exports"), T0)
            REPO.add(session, account, create_finding(rule="feature_unused", feature="reports"), T0)
        with pytest.raises(IntegrityError):
            async with pg_sessions() as session, session.begin():
                REPO.add(
                    session, account, create_finding(rule="feature_unused", feature="exports"), T0
                )


class TestHistory:
    async def test_points_since_a_day_and_the_last_score_of_a_day_wins(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        async with pg_sessions() as session, session.begin():
            await REPO.record_scores(
                session,
                [
                    create_snapshot(account, 0, score=80.0, band="green"),
                    create_snapshot(account, 1, score=70.0, band="yellow"),
                    create_snapshot(account, 1, score=60.0, band="yellow"),
                ],
            )
        async with pg_sessions() as session, session.begin():  # a replay is harmless
            await REPO.record_scores(
                session, [create_snapshot(account, 1, score=60.0, band="yellow")]
            )
        async with pg_sessions() as session:
            found = await REPO.history(session, [account, "nobody"], DAY0 + timedelta(days=1))
        assert found["nobody"] == []
        assert [(p.as_of, p.score) for p in found[account]] == [(DAY0 + timedelta(days=1), 60.0)]


class TestOutbox:
    async def test_enqueue_writes_one_pending_row_per_destination(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        async with pg_sessions() as session, session.begin():
            row = REPO.add(session, account, create_finding(), T0)
            REPO.apply(
                row,
                AlertState(status="open"),
                create_snapshot(account),
                create_finding(),
                T0,
                describe=True,
            )
            await session.flush()
            n = build_notification(row, "open", "http://c.example/", DAY0)
            REPO.enqueue(session, row, n, [("slack", "http://h/1"), ("email", "a@b.example")], T0)
        rows = await outbox_of(pg_sessions, account)
        assert [(r.channel, r.destination, r.status, r.attempts) for r in rows] == [
            ("slack", "http://h/1", "pending", 0),
            ("email", "a@b.example", "pending", 0),
        ]
        assert rows[0].payload["console_url"] == f"http://c.example/accounts/{account}"
        assert rows[0].payload["reason"] == "no login for 20 days"
        assert rows[0].next_attempt_at == T0


class TestSearch:
    async def test_filters_by_status_account_rule_and_csm(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        a, b = unique_account(), unique_account()
        async with pg_sessions() as session, session.begin():
            for account, rule, status, csm in [
                (a, "dormant", "open", "x@v.example"),
                (a, "health_red", "resolved", "x@v.example"),
                (b, "dormant", "acknowledged", "y@v.example"),
            ]:
                finding = create_finding(rule=rule)
                row = REPO.add(session, account, finding, T0)
                snap = create_snapshot(account, csm_email=csm)
                REPO.apply(row, AlertState(status=status), snap, finding, T0, describe=True)

        async def ids(**filters: object) -> list[tuple[str, str]]:
            async with pg_sessions() as session:
                _, rows = await search_alerts(session, **filters)  # type: ignore[arg-type]
            return sorted((r.account_id, r.rule) for r in rows if r.account_id in (a, b))

        active = ["open", "acknowledged", "snoozed"]
        assert await ids(statuses=active) == sorted([(a, "dormant"), (b, "dormant")])
        assert await ids(statuses=["resolved"], account=a) == [(a, "health_red")]
        assert await ids(statuses=active, csm="y@v.example") == [(b, "dormant")]
        assert await ids(statuses=active, rule="health_red") == []

    async def test_get_unknown_is_none(self, pg_sessions: async_sessionmaker[AsyncSession]) -> None:
        async with pg_sessions() as session:
            assert await get_alert(session, 10**12) is None
            assert isinstance(await get_alert(session, 10**12, lock=True), Alert | None)


class TestPurge:
    async def test_old_delivered_rows_and_old_score_points_go_pending_stays(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        async with pg_sessions() as session, session.begin():
            row = REPO.add(session, account, create_finding(), T0)
            REPO.apply(
                row,
                AlertState(status="open"),
                create_snapshot(account),
                create_finding(),
                T0,
                describe=True,
            )
            await session.flush()
            n = build_notification(row, "open", "http://c.example", DAY0)
            old = REPO.enqueue(session, row, n, [("slack", "http://h/1")] * 3, T0)
            old[0].status, old[1].status = "sent", "failed"  # old[2] stays pending
            REPO.enqueue(session, row, n, [("slack", "http://h/2")], T0 + timedelta(days=40))[
                0
            ].status = "sent"
            await REPO.record_scores(
                session, [create_snapshot(account, 0), create_snapshot(account, 30)]
            )
        async with pg_sessions() as session, session.begin():
            await REPO.purge(
                session,
                delivered_before=T0 + timedelta(days=1),
                scores_before=DAY0 + timedelta(days=1),
            )
        rows = await outbox_of(pg_sessions, account)
        assert sorted((r.destination, r.status) for r in rows) == [
            ("http://h/1", "pending"),
            ("http://h/2", "sent"),
        ]
        async with pg_sessions() as session:
            points = await REPO.history(session, [account], DAY0 - timedelta(days=1))
        assert [p.as_of for p in points[account]] == [DAY0 + timedelta(days=30)]
