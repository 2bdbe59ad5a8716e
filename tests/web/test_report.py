"""The monthly value report: numbers on hand-built rollups (PostgreSQL and SQLite), month edges,
the change from the month before, the routes, and ``tend report`` (files, SMTP)."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from click.testing import CliRunner, Result
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import main
from services.web.app import create_app
from services.web.reports.build import MonthError, build_report, last_month, parse_month
from services.web.reports.render import render_html
from services.web.reports.send import report_email
from shared.db.models import (
    Account,
    AccountDay,
    FeatureDay,
    FeatureUserDay,
    HealthScore,
    UserDay,
)
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings
from tests.support.servers import SmtpServer
from tests.support.sqlite import migrated_sqlite

TODAY = date(2026, 11, 20)
TOKEN = "report-test-token-0123456789abcdef"
Sessions = async_sessionmaker[AsyncSession]


def d(text: str) -> date:
    return date.fromisoformat(text)


async def seed_account(sessions: Sessions, aid: str, name: str = "Acme Corp") -> None:
    """October and November of an account with 10 seats.

    Users a, b, c in October (a on Sep 30 too, which must not count), a and d in November;
    Oct 31 and Nov 1 are the month edges. reports used both months, dashboards only in
    October (dropped), integrations only in November (new), exports never.
    """
    user_days = [  # (user, day, events, logins)
        ("a", "2026-09-30", 9, 9),
        ("a", "2026-10-01", 3, 1),
        ("b", "2026-10-15", 2, 1),
        ("c", "2026-10-31", 4, 2),
        ("a", "2026-11-01", 5, 1),
        ("d", "2026-11-01", 1, 1),
        ("d", "2026-11-19", 2, 0),
    ]
    features = [  # (feature, user, day, uses)
        ("reports", "a", "2026-09-30", 50),
        ("reports", "a", "2026-10-01", 2),
        ("dashboards", "b", "2026-10-15", 1),
        ("dashboards", "c", "2026-10-31", 3),
        ("reports", "a", "2026-11-01", 2),
        ("reports", "d", "2026-11-01", 1),
        ("integrations", "d", "2026-11-19", 1),
        ("search", "a", "2026-11-01", 1),
    ]
    scores = [  # (day, score, band)
        ("2026-09-30", 30.0, "red"),
        ("2026-10-31", 55.0, "yellow"),
        ("2026-11-01", 60.0, "yellow"),
        ("2026-11-10", 72.0, "green"),
        ("2026-11-19", 75.5, "green"),
    ]
    async with sessions() as s, s.begin():
        s.add(
            Account(
                account_id=aid,
                name=name,
                plan="team",
                seats=10,
                mrr=1200.0,
                renewal_date=d("2027-01-15"),
                csm_email=f"csm-{aid}@vendor.example",
                traits={"csm_name": "Dana"},
                first_seen=d("2026-09-30"),
            )
        )
        per_day: dict[str, list[int]] = {}
        for user, day, events, logins in user_days:
            s.add(UserDay(account_id=aid, user_id=user, day=d(day), events=events, logins=logins))
            row = per_day.setdefault(day, [0, 0, 0])
            row[0] += events
            row[1] += logins
            row[2] += 1
        for day, (events, logins, active) in per_day.items():
            s.add(
                AccountDay(
                    account_id=aid, day=d(day), events=events, logins=logins, active_users=active
                )
            )
        per_feature: dict[tuple[str, str], list[int]] = {}
        for feature, user, day, uses in features:
            s.add(
                FeatureUserDay(account_id=aid, feature=feature, user_id=user, day=d(day), uses=uses)
            )
            row = per_feature.setdefault((feature, day), [0, 0])
            row[0] += uses
            row[1] += 1
        for (feature, day), (uses, users) in per_feature.items():
            s.add(FeatureDay(account_id=aid, feature=feature, day=d(day), uses=uses, users=users))
        for day, score, band in scores:
            s.add(
                HealthScore(
                    account_id=aid,
                    as_of=d(day),
                    score=score,
                    band=band,
                    metrics={"features": [{"feature": "reports"}, {"feature": "integrations"}]},
                )
            )


KEYS = ["reports", "dashboards", "integrations", "exports"]


class TestMonths:
    @pytest.mark.parametrize(
        "bad", ["2026-13", "2026-00", "26-10", "2026/10", "abc", "", "1900-01"]
    )
    def test_bad_month_names_the_field(self, bad: str) -> None:
        with pytest.raises(MonthError, match=r"^month: .* is not a month \(YYYY-MM"):
            parse_month(bad, TODAY)

    def test_future_month_refused(self) -> None:
        with pytest.raises(MonthError, match="month: 2026-12 has not started yet"):
            parse_month("2026-12", TODAY)
        assert parse_month("2026-11", TODAY) == d("2026-11-01")

    @pytest.mark.parametrize(
        ("today", "expected"),
        [("2026-11-20", "2026-10-01"), ("2026-01-01", "2025-12-01"), ("2026-03-31", "2026-02-01")],
    )
    def test_last_month(self, today: str, expected: str) -> None:
        assert last_month(d(today)) == d(expected)


class TestReportNumbers:
    async def test_november_against_october(self, db: Sessions, uid: str) -> None:
        await seed_account(db, uid)
        async with db() as s:
            account = await s.get(Account, uid)
            assert account is not None
            r = await build_report(s, account, d("2026-11-01"), TODAY, KEYS)
        assert (r.month, r.previous_month, r.complete) == ("2026-11", "2026-10", False)
        assert (r.period_start, r.period_end) == (d("2026-11-01"), TODAY)
        assert (r.active_users.value, r.active_users.previous, r.active_users.change) == (2, 3, -1)
        assert r.seat_utilization.value == 0.2 and r.seat_utilization.previous == 0.3
        assert (r.logins.value, r.logins.previous) == (2, 4)  # Sep 30's 9 logins left out
        assert r.logins.change_pct == -50.0
        assert (r.events.value, r.events.previous) == (8, 9)
        assert (r.active_days.value, r.active_days.previous) == (2, 3)
        # 3 active user-days over the 20 days so far; 3 over October's 31.
        assert r.mean_daily_active_users.value == 0.1
        assert r.mean_daily_active_users.previous == 0.1
        by = {f.feature: f for f in r.features}
        assert [f.feature for f in r.features] == [*KEYS, "search"]
        assert (by["reports"].uses, by["reports"].users, by["reports"].previous_uses) == (3, 2, 2)
        assert by["reports"].status == "growing"
        assert (by["dashboards"].status, by["dashboards"].previous_users) == ("dropped", 2)
        assert (by["integrations"].status, by["integrations"].users) == ("new", 1)
        assert by["exports"].status == "unused" and not by["search"].key
        assert (r.key_features_used.value, r.key_features_used.previous) == (2, 2)
        assert r.key_features_total == 4
        h = r.health
        assert [p.as_of for p in h.history] == [d("2026-11-01"), d("2026-11-10"), d("2026-11-19")]
        assert h.previous_month_end is not None and h.previous_month_end.score == 55.0
        assert h.change == 20.5 and (h.low, h.high) == (60.0, 75.5)
        assert h.days_by_band == {"yellow": 1, "green": 2}
        text = " ".join(r.highlights)
        assert "2 active users of 10 seats (20%), -1 from October 2026." in text
        assert "Started using Integrations." in text and "Stopped using Dashboards" in text
        assert "Not adopted yet: Exports." in text
        assert "2 of 4 key features used in November 2026." in text
        assert "Health 76 (green) on Nov 19, from 55 (yellow) on Oct 31." in text

    async def test_a_complete_month_and_the_scorers_key_features(
        self, db: Sessions, uid: str
    ) -> None:
        await seed_account(db, uid)
        async with db() as s:
            account = await s.get(Account, uid)
            assert account is not None
            r = await build_report(s, account, d("2026-10-01"), TODAY)
        assert r.complete and r.period_end == d("2026-10-31")
        assert [f.feature for f in r.features if f.key] == ["reports", "integrations"]
        assert (r.active_users.value, r.active_users.previous) == (3, 1)
        assert r.health.previous_month_end is not None
        assert r.health.previous_month_end.as_of == d("2026-09-30")
        assert r.health.end is not None and r.health.end.as_of == d("2026-10-31")

    async def test_a_month_without_data(self, db: Sessions, uid: str) -> None:
        await seed_account(db, uid)
        async with db() as s:
            account = await s.get(Account, uid)
            assert account is not None
            r = await build_report(s, account, d("2025-01-01"), TODAY, KEYS)
        assert r.active_users.value == 0 and r.active_users.change_pct is None
        assert r.health.end is None and r.health.change is None and r.health.history == []
        assert "No health scores" in render_html(r)


# -- routes ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[tuple[str, Sessions]]:
    url = migrated_sqlite(tmp_path / "report.db")
    engine = create_engine(url)
    yield url, create_sessionmaker(engine)
    await engine.dispose()


@pytest_asyncio.fixture
async def report_client(sqlite_db: tuple[str, Sessions]) -> AsyncIterator[httpx.AsyncClient]:
    _, sessions = sqlite_db
    await seed_account(sessions, "acme", name="Acme <script>alert(1)</script>")
    app = create_app(Settings(api_token=SecretStr(TOKEN)), sessions=sessions)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://scorer",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as c:
        yield c


@pytest.mark.integration  # a SQLite file
class TestRoutes:
    @pytest.mark.parametrize("path", ["/v1/accounts/acme/report", "/v1/accounts/acme/report.html"])
    async def test_token_required(self, report_client: httpx.AsyncClient, path: str) -> None:
        r = await report_client.get(
            path, params={"month": "2026-10"}, headers={"Authorization": "x"}
        )
        assert r.status_code == 401

    @pytest.mark.parametrize("path", ["/v1/accounts/nope/report", "/v1/accounts/nope/report.html"])
    async def test_unknown_account(self, report_client: httpx.AsyncClient, path: str) -> None:
        r = await report_client.get(path, params={"month": "2026-10"})
        assert r.status_code == 404 and "nope" in r.json()["error"]["message"]

    @pytest.mark.parametrize("month", ["2026-13", "October", "2999-01"])
    async def test_bad_month(self, report_client: httpx.AsyncClient, month: str) -> None:
        for path in ("/v1/accounts/acme/report", "/v1/accounts/acme/report.html"):
            r = await report_client.get(path, params={"month": month})
            assert r.status_code == 422 and r.json()["error"]["message"].startswith("month: ")

    async def test_json(self, report_client: httpx.AsyncClient) -> None:
        r = await report_client.get("/v1/accounts/acme/report", params={"month": "2026-10"})
        assert r.status_code == 200
        body = r.json()
        assert body["month"] == "2026-10" and body["active_users"]["value"] == 3
        assert body["account"]["csm_email"] == "csm-acme@vendor.example"
        # No configuration on this app: the key features the scorer scored with.
        assert [f["feature"] for f in body["features"] if f["key"]] == ["reports", "integrations"]

    async def test_html_is_printable_and_escaped(self, report_client: httpx.AsyncClient) -> None:
        r = await report_client.get("/v1/accounts/acme/report.html", params={"month": "2026-11"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        assert "<script>" not in page and "Acme &lt;script&gt;" in page
        assert "@media print" in page and "<svg" in page
        assert "http" not in page.replace("http://www.w3.org", "")  # no external assets


# -- tend report ----------------------------------------------------------------------------------


async def invoke(*args: Any, **kwargs: Any) -> Result:
    """The CLI runs its own event loop (asyncio.run): in a thread, off the test's loop."""
    return await asyncio.to_thread(CliRunner().invoke, *args, **kwargs)


def _env(url: str, **extra: str) -> dict[str, str | None]:
    return {"TEND_DATABASE_URL": url, "TEND_CONFIG": None, **extra}


@pytest.mark.integration  # a SQLite file
class TestReportCommand:
    async def test_writes_one_file_per_account(
        self, sqlite_db: tuple[str, Sessions], tmp_path: Path
    ) -> None:
        url, sessions = sqlite_db
        await seed_account(sessions, "acme")
        await seed_account(sessions, "globex/eu", name="Globex")
        out = tmp_path / "out"
        result = await invoke(
            main, ["report", "--month", "2026-10", "--out", str(out)], env=_env(url)
        )
        assert result.exit_code == 0, result.output
        names = sorted(p.name for p in out.iterdir())
        assert [re.sub(r"-[0-9a-f]{12}-", "-#-", n) for n in names] == [
            "acme-#-2026-10.html",
            "globex-eu-#-2026-10.html",
        ]
        assert "Globex" in next(out.glob("globex-eu-*.html")).read_text()
        assert "Wrote 2 report(s) for 2026-10" in result.output

    @pytest.mark.parametrize(
        "ids",
        [
            ["acme/eu", "acme eu", "acme:eu", "acme--eu"],  # slugify alike
            ["Acme", "acme", "ACME"],  # alike on a case-insensitive disk
            ["é", "ü", "日本", "---"],  # nothing readable left
            ["x" * 200, "x" * 199 + "y"],  # alike once the slug is cut
        ],
    )
    async def test_names_never_collide_and_each_path_is_printed(
        self, sqlite_db: tuple[str, Sessions], tmp_path: Path, ids: list[str]
    ) -> None:
        url, sessions = sqlite_db
        for aid in ids:
            await seed_account(sessions, aid, name=f"Name of {aid}")
        out = tmp_path / "out"
        result = await invoke(
            main, ["report", "--month", "2026-10", "--out", str(out)], env=_env(url)
        )
        assert result.exit_code == 0, result.output
        files = sorted(out.iterdir())
        assert len(files) == len(ids)
        assert len({f.name.lower() for f in files}) == len(ids)
        printed = sorted(
            Path(line) for line in result.output.splitlines() if line.endswith(".html")
        )
        assert printed == files
        assert f"Wrote {len(ids)} report(s)" in result.output
        for aid in ids:
            # Each account's own report is in exactly one file.
            assert sum(html.escape(f"Name of {aid}") in f.read_text() for f in files) == 1

    async def test_bad_month_and_missing_smtp(self, sqlite_db: tuple[str, Sessions]) -> None:
        url, _ = sqlite_db
        bad = await invoke(main, ["report", "--month", "2026-1"], env=_env(url))
        assert bad.exit_code == 2 and "--month: '2026-1' is not a month" in bad.output
        no_smtp = await invoke(
            main, ["report", "--month", "2026-10", "--email"], env=_env(url, TEND_SMTP_HOST="")
        )
        assert no_smtp.exit_code == 2 and "TEND_SMTP_HOST" in no_smtp.output

    @pytest.mark.integration  # a loopback SMTP server
    async def test_email_to_each_csm(self, sqlite_db: tuple[str, Sessions], tmp_path: Path) -> None:
        url, sessions = sqlite_db
        await seed_account(sessions, "acme")
        await seed_account(sessions, "globex")
        async with sessions() as s, s.begin():
            orphan = Account(
                account_id="orphan", name="No CSM", seats=5, first_seen=d("2026-10-02")
            )
            s.add(orphan)
        server = SmtpServer().start()
        try:
            env = _env(
                url,
                TEND_SMTP_HOST="127.0.0.1",
                TEND_SMTP_PORT=str(server.port),
                TEND_SMTP_TLS="none",
                TEND_SMTP_FROM="tend <reports@vendor.example>",
            )
            result = await invoke(
                main,
                ["report", "--month", "2026-10", "--email", "--out", str(tmp_path / "r")],
                env=env,
            )
            mails = server.messages
        finally:
            server.stop()
        assert result.exit_code == 0, result.output
        assert "Emailed 2 report(s)" in result.output and "orphan" in result.output
        assert sorted(m.rcpt_tos[0] for m in mails) == [
            "csm-acme@vendor.example",
            "csm-globex@vendor.example",
        ]
        msg = mails[0].message
        assert msg["Subject"].startswith("Monthly value report: Acme Corp, October 2026")
        assert msg["From"] == "tend <reports@vendor.example>"
        parts = [p.get_content_type() for p in msg.walk()]
        assert parts.count("text/html") == 2 and "text/plain" in parts
        attachment = next(p for p in msg.iter_attachments())
        assert attachment.get_filename() == "acme-2026-10.html"
        assert "3 active users of 10 seats" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.integration  # a loopback SMTP server
class TestReportMailDomains:
    async def test_a_csm_off_the_email_domains_is_not_mailed_the_defaults_are(
        self, sqlite_db: tuple[str, Sessions], tmp_path: Path
    ) -> None:
        url, sessions = sqlite_db
        await seed_account(sessions, "acme")  # csm-acme@vendor.example
        server = SmtpServer().start()
        try:
            env = _env(
                url,
                TEND_SMTP_HOST="127.0.0.1",
                TEND_SMTP_PORT=str(server.port),
                TEND_SMTP_TLS="none",
                TEND_ALERTS__EMAIL_DOMAINS="ours.example",
                TEND_ALERTS__DEFAULT_EMAILS="cs-team@ours.example",
            )
            result = await invoke(
                main,
                ["report", "--month", "2026-10", "--email", "--out", str(tmp_path / "r")],
                env=env,
            )
            mails = server.messages
        finally:
            server.stop()
        assert result.exit_code == 0, result.output
        assert [m.rcpt_tos for m in mails] == [["cs-team@ours.example"]]
        assert "not mailing csm_email csm-acme@vendor.example" in result.output


def test_email_message_shape() -> None:
    from services.web.reports.build import Delta, HealthTrend, MonthlyReport, ReportAccount

    zero = Delta.of(0, 0)
    r = MonthlyReport(
        account=ReportAccount(
            account_id="a",
            name="A",
            plan=None,
            seats=None,
            mrr=None,
            renewal_date=None,
            csm_email=None,
            csm_name=None,
        ),
        month="2026-10",
        period_start=d("2026-10-01"),
        period_end=d("2026-10-31"),
        complete=True,
        previous_month="2026-09",
        active_users=zero,
        seat_utilization=Delta.of(None, None),
        logins=zero,
        events=zero,
        active_days=zero,
        mean_daily_active_users=zero,
        key_features_used=zero,
        key_features_total=0,
        features=[],
        health=HealthTrend(
            start=None,
            end=None,
            previous_month_end=None,
            change=None,
            low=None,
            high=None,
            days_by_band={},
            history=[],
        ),
        highlights=[],
    )
    page = render_html(r)
    msg = report_email(r, page, "x@y.z", ["csm@y.z"])
    assert msg["To"] == "csm@y.z" and msg.is_multipart()
