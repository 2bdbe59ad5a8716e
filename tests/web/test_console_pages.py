"""The console's templates and page models without a server or a database: every value escaped
by the engine, the repeated parts (band badge, trend, alert forms) as the pages use them, and
the pure page models (component deltas, feature states, the champion, week labels)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.web.charts import Bands
from services.web.console import pages
from services.web.console.views import (
    BANDS,
    RENEWAL_WINDOWS,
    AccountPage,
    AlertsFilter,
    OpenAlerts,
    Portfolio,
    PortfolioFilter,
    PortfolioRow,
    csm_label,
)
from services.web.templating import environment
from shared.db.models import Account, Alert, HealthScore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
TODAY = NOW.date()
EVIL = '<script>alert("x")</script>'


def render(template: str, **context: Any) -> str:
    return environment().get_template(f"console/{template}").render(csrf="tok-1", **context)


def create_account(**fields: Any) -> Account:
    values: dict[str, Any] = {
        "account_id": "acme",
        "name": "Acme",
        "plan": "pro",
        "seats": 20,
        "mrr": 1500.0,
        "renewal_date": TODAY + timedelta(days=30),
        "lifecycle_stage": "growing",
        "csm_email": "ana@cs.example",
        "csm_slack": None,
        "score": 42.0,
        "band": "yellow",
        "scored_as_of": TODAY,
    }
    values.update(fields)
    return Account(**values)


def create_alert(id: int, **fields: Any) -> Alert:
    values: dict[str, Any] = {
        "id": id,
        "account_id": "acme",
        "rule": "login_decline",
        "feature": "",
        "status": "open",
        "severity": "warning",
        "reason": "logins down",
        "next_step": None,
        "opened_at": NOW - timedelta(days=2),
        "started_on": TODAY - timedelta(days=5),
        "acknowledged_at": None,
        "snoozed_until": None,
        "snooze_reason": None,
        "resolved_at": None,
        "resolved_by": None,
        "band": "yellow",
        "score": 42.0,
        "account_name": "Acme",
        "mrr": 1500.0,
        "csm_email": "ana@cs.example",
        "csm_slack": None,
    }
    values.update(fields)
    return Alert(**values)


def create_score(**fields: Any) -> HealthScore:
    values: dict[str, Any] = {
        "account_id": "acme",
        "as_of": TODAY,
        "score": 42.0,
        "band": "yellow",
        "components": {
            "recency": {
                "score": 40.0,
                "weight": 15.0,
                "share": 0.25,
                "value": 12,
                "inputs": {"days": 12},
                "explanation": "last login 12 days ago",
            }
        },
        "left_out": [{"name": "stickiness", "reason": "no active users"}],
        "metrics": {
            "as_of": TODAY.isoformat(),
            "weekly_active_users": [5, 4],
            "weekly_logins": [20, 0],
            "features": [
                {"feature": "exports", "last_used": None, "uses_28d": 0, "users_28d": 0},
                {"feature": "reports", "last_used": "2026-11-01", "uses_28d": 0},
                {"feature": "dashboards", "last_used": "2026-11-19", "uses_28d": 1200},
            ],
            "champion": "u1",
            "champion_source": "activity",
            "champion_days_since_active": 3,
            "regular_users": 5,
            "seat_utilization": 0.25,
            "mau": 7,
        },
        "moved": {"score_delta": -8.25, "components": [{"name": "recency", "delta": -10.0}]},
        "previous_score": 50.25,
        "previous_band": "yellow",
    }
    values.update(fields)
    return HealthScore(**values)


def account_html(page: AccountPage, notice: str | None = None, **extra: Any) -> str:
    context = pages.account_context(
        page,
        moves=pages.Moves.of("tok-1", "/console/accounts/acme", NOW),
        today=TODAY,
        bands=Bands(green=70, yellow=40),
        notice=notice,
        csm=csm_label(page.account.csm_email, page.account.csm_slack),
    )
    return render("account.html", **context, **extra)


class TestEscaping:
    def test_values_from_events_and_operators_are_escaped_everywhere(self) -> None:
        account = create_account(name=EVIL, plan=EVIL, account_id="a/b <c>")
        alerts = [
            create_alert(i, account_id="a/b <c>", reason=EVIL, next_step=EVIL, feature=EVIL)
            for i in (1, 2)
        ]
        html = account_html(AccountPage(account, create_score(), [], alerts))
        assert "<script" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        # an account id is one path segment in links, whatever it holds
        assert 'action="/console/accounts/a%2Fb%20%3Cc%3E/alerts/ack"' in html

    def test_the_alerts_page_escapes_and_links_by_path_segment(self) -> None:
        alert = create_alert(7, account_id="x/y", account_name=EVIL, reason=EVIL)
        found = OpenAlerts([alert], ["login_decline"], {}, {"x/y": (30.0, "red")}, {})
        moves = pages.Moves.of("tok-1", "/console/alerts", NOW)
        context = pages.alerts_context(found, AlertsFilter(), ["ana@cs.example"], csm_label, moves)
        html = render("alerts.html", notice_text=None, **context)
        assert "<script" not in html
        assert 'href="/console/accounts/x%2Fy#alert-7"' in html
        assert '<span class="band band-red">Red</span> 30.0' in html  # health now, not the row's


class TestAccountPage:
    def test_facts_components_usage_features(self) -> None:
        html = account_html(AccountPage(create_account(), create_score(), [], []))
        assert "<dt>Seats used regularly</dt><dd>5 of 20 (25%) " in html
        assert '<dt>Champion</dt><dd><span class="truncate" title="u1">u1</span> ' in html
        assert "last active 3 days ago" in html
        assert "<dt>MRR</dt><dd>$1,500</dd>" in html
        assert '<span class="soon">in 30 days</span>' in html  # renews within 30 days
        assert (
            "moved <b>" in html and '↓</span> <span class="sr-only">down </span>8.2 points' in html
        )
        assert "(50.2, yellow)" in html and "-8.2" not in html  # an arrow, never a sign too
        assert (
            '<tr data-component="recency"><th scope="row" data-label="Component">Recency</th>'
            in html
        )
        assert "<li>Days since: <b>12</b></li>" in html and ">25%<" in html
        assert '<td class="num" data-label="Measured">12 days</td>' in html
        assert "<b>Stickiness (daily over monthly active users)</b>: no active users" in html
        assert ">never used<" in html and ">unused 28 days<" in html and ">in use<" in html
        assert '<td class="num" data-label="Uses, last 28 days">1,200</td>' in html
        assert "No scores yet." in html  # no history rows given
        assert "No open alerts." in html

    def test_not_scored_yet(self) -> None:
        html = account_html(AccountPage(create_account(score=None, band=None), None, [], []))
        assert "Not scored yet." in html and "No usage yet." in html
        assert "No key features configured" in html
        assert '<span class="band band-unknown">Unknown</span>' in html

    def test_score_history_chart_with_bands(self) -> None:
        history = [(TODAY - timedelta(days=d), 80.0 - d, "green") for d in range(30, -1, -1)]
        html = account_html(AccountPage(create_account(), create_score(), history, []))
        assert '<svg class="chart"' in html
        assert all(f'class="zone-{b}"' in html for b in ("green", "yellow", "red"))
        assert "31 daily scores from" in html and "Green from 70, yellow from 40." in html

    def test_one_alert_has_its_own_forms_two_have_group_forms_too(self) -> None:
        one = account_html(AccountPage(create_account(), None, [], [create_alert(1)]))
        assert 'action="/console/alerts/1/ack"' in one
        assert "/console/accounts/acme/alerts/ack" not in one
        assert 'value="2026-11-27 09:30"' in one  # a week from now, an ISO time like the others
        assert 'placeholder="YYYY-MM-DD HH:MM"' in one and "datetime-local" not in one
        two = account_html(
            AccountPage(create_account(), None, [], [create_alert(1), create_alert(2)])
        )
        assert 'action="/console/accounts/acme/alerts/ack"' in two and "2 open alerts" in two

    @pytest.mark.parametrize(("notice", "shown"), [("resolved", True), ("bogus", False)])
    def test_notices(self, notice: str, shown: bool) -> None:
        html = account_html(AccountPage(create_account(), None, [], []), notice)
        assert ('role="status"' in html) is shown

    @pytest.mark.parametrize(
        ("status", "line"),
        [
            ("acknowledged", "Acknowledged</span> since 2026-11-19 09:30 UTC"),
            ("snoozed", "Snoozed</span> until 2026-11-27 09:30 UTC (QBR)"),
            ("resolved", "Resolved</span> 2026-11-20 04:30 UTC (condition)"),
        ],
    )
    def test_status_lines(self, status: str, line: str) -> None:
        alert = create_alert(
            3,
            status=status,
            acknowledged_at=NOW - timedelta(days=1),
            snoozed_until=NOW + timedelta(days=7),
            snooze_reason="QBR",
            resolved_at=NOW - timedelta(hours=5),
            resolved_by="condition",
        )
        assert line in account_html(AccountPage(create_account(), None, [], [alert]))


class TestPortfolio:
    def row(self, **fields: Any) -> PortfolioRow:
        values: dict[str, Any] = {
            "account_id": "acme",
            "name": "Acme",
            "score": 42.0,
            "band": "yellow",
            "scored_as_of": TODAY,
            "mrr": 1500.0,
            "seats": 20,
            "mau": 9,
            "renewal_date": TODAY + timedelta(days=30),
            "csm": "ana@cs.example",
        }
        values.update(fields)
        return PortfolioRow(**values)

    def html(self, rows: list[PortfolioRow], f: PortfolioFilter | None = None) -> str:
        portfolio = Portfolio(rows, {"yellow": 1500.0}, {"yellow": 1}, ["ana@cs.example"], TODAY)
        context = pages.portfolio_context(portfolio, BANDS, RENEWAL_WINDOWS)
        return render("portfolio.html", filter=f or PortfolioFilter(), **context)

    @pytest.mark.parametrize(
        ("before", "marker"),
        [
            (None, "no score a week ago"),
            (40.0, '<span class="trend up">'),
            (50.0, '<span class="trend down">'),
            (41.0, '<span class="trend flat">'),
        ],
    )
    def test_trend_marker(self, before: float | None, marker: str) -> None:
        assert marker in self.html([self.row(score_before=before)])

    def test_sparkline_needs_two_scores(self) -> None:
        few = self.html([self.row(spark=[(TODAY, 40.0)])])
        assert "not enough history" in few and '<svg class="spark' not in few
        two = self.html([self.row(spark=[(TODAY - timedelta(days=1), 40.0), (TODAY, 42.0)])])
        assert '<svg class="spark spark-yellow"' in two
        assert "Score over the last 12 weeks: 40 on 2026-11-19, 42 on 2026-11-20" in two

    def test_sort_links_keep_the_filters(self) -> None:
        f = PortfolioFilter(csm="ana@cs.example", band="yellow", sort="-mrr")
        html = self.html([self.row()], f)
        assert 'href="?csm=ana%40cs.example&amp;band=yellow&amp;sort=mrr"' in html
        assert 'aria-sort="descending"' in html
        assert '<option value="yellow" selected>Yellow</option>' in html

    @pytest.mark.parametrize(
        ("f", "text"),
        [
            (PortfolioFilter(), "No accounts yet"),
            (PortfolioFilter(band="red"), "No accounts match these filters."),
        ],
    )
    def test_empty(self, f: PortfolioFilter, text: str) -> None:
        assert text in self.html([], f)


class TestPageModels:
    def test_week_labels_end_on_the_scored_day(self) -> None:
        assert pages.week_labels(date(2026, 11, 20), 3) == ["Nov 6", "Nov 13", "Nov 20"]
        assert pages.week_labels(None, 2) == ["week 1", "week 2"]

    def test_champion(self) -> None:
        assert pages.champion({}) is None
        named = pages.champion({"champion": "u", "champion_source": "named"})
        assert named == pages.Champion("u", "named", None)
        by_name = pages.champion({"champion": "u"}, {"u": "Kim Park"})
        assert by_name is not None and by_name.who == "Kim Park"

    def test_alert_texts_name_people(self) -> None:
        names = {"acme-u02": "Kim Park", "acme-u0": "Lee"}
        text = "Ask acme-u02 what changed; acme-u020 and x-acme-u02 are others; acme-u0."
        assert pages.with_names(text, names) == (
            "Ask Kim Park what changed; acme-u020 and x-acme-u02 are others; Lee."
        )
        assert pages.with_names(None, names) is None and pages.with_names("a", {}) == "a"
        shown = pages.ShownAlert(create_alert(1, next_step="Call acme-u02"), names)
        assert shown.next_step == "Call Kim Park" and shown.rule == "login_decline"

    @pytest.mark.parametrize(("days", "soon"), [(-1, None), (0, 0), (30, 30), (31, None)])
    def test_renewal_soon(self, days: int, soon: int | None) -> None:
        assert pages.renewal_soon(TODAY + timedelta(days=days), TODAY) == soon
        assert pages.renewal_soon(None, TODAY) is None

    def test_amounts_in_the_configured_currency(self) -> None:
        page = AccountPage(create_account(mrr=1500.5), None, [], [])
        assert "<dt>MRR</dt><dd>$1,500.50</dd>" in account_html(page)
        euros = account_html(page, currency="EUR")
        assert "<dt>MRR</dt><dd>\u20ac1,500.50</dd>" in euros

    def test_component_rows_skip_what_is_not_a_component(self) -> None:
        rows = pages.component_rows({"a": {"score": 1.0}, "b": "junk"}, {"components": ["x"]})
        assert [r.name for r in rows] == ["a"] and rows[0].delta is None

    def test_login_and_error_pages(self) -> None:
        login = (
            environment()
            .get_template("console/login.html")
            .render(error=EVIL, next_url='/console/?a="b"')
        )
        assert "<script" not in login and 'aria-invalid="true"' in login
        assert 'value="/console/?a=&#34;b&#34;"' in login
        assert "Log out" not in login  # not signed in: no nav
        error = render("error.html", status=404, message=EVIL)
        assert "<h1>404: &lt;script&gt;" in error and "Log out" in error
