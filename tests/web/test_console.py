"""The CSM console on a seeded private SQLite database, through the app that also serves the
read and alerts APIs: sign-in, CSRF, the pages' accounts and order, their numbers against the
APIs', and alert moves."""

from __future__ import annotations

import re
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from services.web.app import create_app
from services.web.console import auth
from shared.format import arrow, plural, points
from shared.settings import Settings
from tests.scorer.synthetic import CONFIG, Archetype
from tests.web.console_data import (
    ADMIN,
    ANA,
    BEN,
    CSM_NAMES,
    PASSWORD,
    TOKEN,
    Seeded,
    build_app,
    sign_in,
)

BEARER = {"Authorization": f"Bearer {TOKEN}"}


class Tables(HTMLParser):
    """Rows of every ``<table id=...>``: the ``tr`` attributes and each cell's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
        self.inputs: list[dict[str, str]] = []
        self.labels: set[str] = set()
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and "id" in a:
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table and self._in_body:
            self.tables[self._table].append((a, []))
        elif tag in ("td", "th") and self._table and self._in_body:
            self._cell = []
        elif (tag == "span" and "sr-only" in a.get("class", "")) or tag == "svg":
            self._skip += 1
        elif tag in ("input", "select") and a.get("type") != "hidden":
            self.inputs.append(a)
        elif tag == "label" and "for" in a:
            self.labels.add(a["for"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag in ("span", "svg") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _rows(html: str) -> list[tuple[dict[str, str], list[str]]]:
    """Rows of the tables without an id (the alerts page's one table per rule)."""
    rows: list[tuple[dict[str, str], list[str]]] = []
    for chunk in html.split('<table class="alerts"')[1:]:
        t = parse('<table id="x"' + chunk.split("</table>")[0] + "</table>")
        rows.extend(t.tables["x"])
    return rows


def parse(html: str) -> Tables:
    t = Tables()
    t.feed(html)
    return t


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def api(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params, headers=BEARER)
    assert r.status_code == 200, r.text
    return r.json()


def money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.0f}"


class TestSignIn:
    @pytest.mark.parametrize("path", ["/console/", "/console/alerts", "/console/accounts/x"])
    async def test_pages_need_a_session(self, anonymous: httpx.AsyncClient, path: str) -> None:
        r = await anonymous.get(path)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login?next=")
        login = await anonymous.get(r.headers["location"])
        assert login.status_code == 200
        assert f'name="next" value="{path}"' in login.text
        assert '<label for="email">Email</label>' in login.text
        assert '<label for="password">Password</label>' in login.text

    @pytest.mark.parametrize(
        ("email", "password"),
        [
            (ADMIN, ""),
            (ADMIN, "wrong"),
            (ADMIN, PASSWORD + "x"),
            (ADMIN, PASSWORD[:-1]),
            ("nobody@cs.example", PASSWORD),
            ("", PASSWORD),
            (ADMIN, TOKEN),  # the admin token is for the APIs, not a password
        ],
    )
    async def test_a_bad_password_is_refused(
        self, anonymous: httpx.AsyncClient, email: str, password: str
    ) -> None:
        r = await anonymous.post("/console/login", data={"email": email, "password": password})
        assert r.status_code == 401
        assert "Wrong email or password" in r.text and 'role="alert"' in r.text
        assert "set-cookie" not in r.headers
        assert (await anonymous.get("/console/")).status_code == 303

    async def test_the_right_password_gives_a_safe_cookie(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        r = await sign_in(anonymous, ADMIN.upper(), "/console/alerts?csm=x")
        assert r.status_code == 303 and r.headers["location"] == "/console/alerts?csm=x"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{auth.COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert TOKEN not in cookie and PASSWORD not in cookie
        assert (await anonymous.get("/console/")).status_code == 200

    @pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/v1/x"])
    async def test_next_stays_in_the_console(
        self, anonymous: httpx.AsyncClient, target: str
    ) -> None:
        r = await sign_in(anonymous, ADMIN, target)
        assert r.headers["location"] == "/console/"

    async def test_forged_or_foreign_cookies_are_ignored(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        import time

        good = auth.issue(TOKEN, time.time())
        body, sig = good.split(".")
        for value in (
            auth.issue("another-token", time.time()),  # signed for another installation
            auth.issue(TOKEN, time.time() - auth.MAX_AGE_S - 1),  # expired
            f"{body}.{sig[:-2]}xx",
            body,
            "",
        ):
            anonymous.cookies.set(auth.COOKIE, value, path="/console")
            assert (await anonymous.get("/console/")).status_code == 303
            anonymous.cookies.clear()

    async def test_no_token_configured_means_closed(self, seeded: Seeded) -> None:
        transport = httpx.ASGITransport(app=build_app(seeded, token=None))
        async with httpx.AsyncClient(transport=transport, base_url="http://tend") as c:
            r = await sign_in(c)
            assert r.status_code == 401 and "console is closed" in r.text

    async def test_logout_needs_csrf_then_ends_the_session(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/console/")
        assert (await client.post("/console/logout", data={})).status_code == 403
        assert (await client.get("/console/")).status_code == 200
        r = await client.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
        assert (await client.get("/console/")).status_code == 303


class TestPortfolio:
    async def test_amounts_in_the_configured_currency(self, seeded: Seeded) -> None:
        app = create_app(
            Settings(api_token=None, config=None),
            config=CONFIG.model_copy(update={"currency": "EUR"}),
            sessions=seeded.sessions,
            clock=seeded.clock,
            api_token=TOKEN,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tend") as c:
            await sign_in(c)
            html = (await c.get("/console/")).text
            alerts = (await c.get("/console/alerts")).text
        assert "<strong>\u20ac" in html and "$" not in html
        assert "MRR at risk" in alerts and "$" not in alerts

    async def test_every_account_in_the_read_apis_order(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        for sort in ("score", "-score", "-mrr", "renewal", "name"):
            html = (await client.get("/console/", params={"sort": sort})).text
            shown = [attrs["data-account-id"] for attrs, _ in parse(html).tables["portfolio"]]
            listed = await api(client, "/v1/accounts", sort=sort)
            assert shown == [a["account_id"] for a in listed["accounts"]], sort
        assert shown and len(shown) == len(seeded.replay.accounts)
        first = (await client.get("/console/")).text
        rows = parse(first).tables["portfolio"]
        assert rows[0][0]["data-account-id"] == seeded.id_of(Archetype.DORMANT)

    async def test_the_numbers_are_the_apis(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        html = (await client.get("/console/")).text
        rows = {attrs["data-account-id"]: cells for attrs, cells in parse(html).tables["portfolio"]}
        for a in (await api(client, "/v1/accounts"))["accounts"]:
            cells = rows[a["account_id"]]
            name, score, band, stage, trend, _spark, mrr, seats, renewal, csm, alerts = cells
            assert name == a["name"]  # the id is the link's title, not a second line
            assert score == f"{a['score']:.1f}"
            assert band == a["band"].capitalize()
            assert stage == (a["stage"] or "—").capitalize()
            assert mrr == money(a["mrr"])
            left = (date.fromisoformat(a["renewal_date"]) - seeded.today).days
            soon = f" in {plural(left, 'day')}" if 0 <= left <= 30 else ""
            assert renewal == a["renewal_date"] + soon  # a renewal within 30 days says so
            assert csm == CSM_NAMES.get(a["csm_email"], a["csm_email"])  # names where known
            detail = await api(client, f"/v1/accounts/{a['account_id']}")
            regular, seats_sold = detail["metrics"]["regular_users"], a["seats"]
            assert seats.startswith(f"{regular} of {seats_sold} (")
            health = await api(client, f"/v1/accounts/{a['account_id']}/health")
            as_of = health["current"]["as_of"]
            week_ago = [
                h["score"]
                for h in health["history"]
                if h["as_of"] <= _days_before(as_of, 7) and h["score"] is not None
            ]
            delta = round(a["score"] - week_ago[-1], 1)
            assert trend == f"{arrow(delta)} {points(delta, unit=False)}"  # never "↓ -12.3"
            open_ = await api(client, "/v1/alerts", account=a["account_id"])
            assert alerts == str(open_["total"])

    async def test_revenue_at_risk(self, client: httpx.AsyncClient) -> None:
        html = (await client.get("/console/")).text
        accounts = (await api(client, "/v1/accounts"))["accounts"]
        at_risk = sum(a["mrr"] for a in accounts if a["band"] in ("red", "yellow"))
        assert f"<strong>{money(at_risk)}</strong> MRR in red and yellow" in html
        by_band = {cells[0]: cells[1:] for _, cells in parse(html).tables["mrr-by-band"]}
        for band in ("red", "yellow", "green"):
            mine = [a for a in accounts if a["band"] == band]
            assert by_band[band.capitalize()] == [
                str(len(mine)),
                money(sum(a["mrr"] for a in mine)),
            ]

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"band": "red"}, {Archetype.DORMANT}),
            ({"band": "yellow"}, {Archetype.DECLINING, Archetype.PLATEAUING}),
            (
                {"csm": BEN},
                {Archetype.DECLINING, Archetype.ABANDONS_FEATURE, Archetype.HEALTHY_GROWING},
            ),
            ({"csm": ANA, "band": "green"}, {Archetype.HEALTHY_STEADY, Archetype.NEVER_ADOPTS}),
            ({"renewal": "30"}, {Archetype.DORMANT, Archetype.ABANDONS_FEATURE}),
            (
                {"renewal": "60"},
                {Archetype.DORMANT, Archetype.ABANDONS_FEATURE, Archetype.DECLINING},
            ),
            ({"band": "nonsense", "renewal": "7", "sort": "x"}, set(Archetype)),
        ],
    )
    async def test_filters(
        self,
        client: httpx.AsyncClient,
        seeded: Seeded,
        params: dict[str, str],
        expected: set[Archetype],
    ) -> None:
        html = (await client.get("/console/", params=params)).text
        shown = {attrs["data-account-id"] for attrs, _ in parse(html).tables.get("portfolio", [])}
        assert shown == {seeded.id_of(a) for a in expected}

    async def test_no_match(self, client: httpx.AsyncClient) -> None:
        html = (await client.get("/console/", params={"csm": "nobody@example.com"})).text
        assert "No accounts match these filters." in html

    async def test_sparklines_and_sort_links(self, client: httpx.AsyncClient) -> None:
        html = (await client.get("/console/", params={"sort": "-mrr"})).text
        assert html.count('<svg class="spark') == 7
        assert 'aria-sort="descending"' in html
        assert 'href="?sort=mrr"' in html  # the MRR header flips the order


def _days_before(iso: str, days: int) -> str:
    from datetime import date

    return (date.fromisoformat(iso) - timedelta(days=days)).isoformat()


class TestAccountPage:
    async def test_components_match_the_health_api(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account_id = seeded.id_of(Archetype.DECLINING)
        html = (await client.get(f"/console/accounts/{account_id}")).text
        health = await api(client, f"/v1/accounts/{account_id}/health")
        rows = {attrs["data-component"]: cells for attrs, cells in parse(html).tables["components"]}
        components = health["current"]["components"]
        assert set(rows) == set(components)
        for name, c in components.items():
            cells = rows[name]
            assert cells[1] == f"{c['score']:.1f}"
            assert cells[5] == " ".join(c["explanation"].split())
        assert '<svg class="chart"' in html and "Health score history" in html

    async def test_champion_and_regular_seats_match_the_api(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account_id = seeded.id_of(Archetype.DECLINING)
        html = (await client.get(f"/console/accounts/{account_id}")).text
        detail = await api(client, f"/v1/accounts/{account_id}")
        m, champion = detail["metrics"], detail["current_champion"]
        assert champion is not None and champion["user_id"] == m["champion"]
        # People are named where their traits say who they are (the synthetic users: by email).
        email = f"{champion['user_id']}@example.com"
        assert f'<dt>Champion</dt><dd><span class="truncate" title="{email}">{email}</span>' in html
        assert (
            f"<dt>Seats used regularly</dt><dd>{m['regular_users']} of {detail['seats']} " in html
        )

    async def test_usage_and_features_match_the_metrics(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account_id = seeded.id_of(Archetype.ABANDONS_FEATURE)
        html = (await client.get(f"/console/accounts/{account_id}")).text
        metrics = (await api(client, f"/v1/accounts/{account_id}"))["metrics"]
        tables = parse(html).tables
        weekly = [cells[1:] for _, cells in tables["weekly"]]
        assert weekly == [
            [str(a), str(lg)]
            for a, lg in zip(metrics["weekly_active_users"], metrics["weekly_logins"], strict=True)
        ]
        features = {attrs["data-feature"]: cells for attrs, cells in tables["features"]}
        assert set(features) == {"reports", "dashboards", "exports"}
        for f in metrics["features"]:
            cells = features[f["feature"]]
            assert cells[1].startswith(f["last_used"] or "—")
            assert cells[2] == f"{f['uses_28d']:,}" and cells[3] == f"{f['users_28d']:,}"
        assert features["exports"][4] == "unused 28 days"
        assert features["reports"][4] == "in use"

    async def test_alerts_open_and_past_with_actions(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        html = (await client.get(f"/console/accounts/{seeded.id_of(Archetype.PLATEAUING)}")).text
        assert f'id="alert-{seeded.alerts["plateau"]}"' in html
        assert "Past (1)" in html and "Open (0)" in html
        html = (await client.get(f"/console/accounts/{seeded.id_of(Archetype.DORMANT)}")).text
        alert_id = seeded.alerts["dormant"]
        for action in ("ack", "snooze", "resolve"):
            assert f'action="/console/alerts/{alert_id}/{action}"' in html
        # User-facing text is escaped.
        assert "&lt;for cs-dormant-0&gt;" in html and "<for cs-dormant-0>" not in html
        steady = (
            await client.get(f"/console/accounts/{seeded.id_of(Archetype.HEALTHY_STEADY)}")
        ).text
        assert f'id="alert-{seeded.alerts["pending"]}"' not in steady

    async def test_unknown_account(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/console/accounts/nope")
        assert r.status_code == 404 and "no account" in r.text


def _alert_rows(html: str) -> dict[str, list[tuple[dict[str, str], list[str]]]]:
    """The alerts page's two tables (risks, opportunities), row by row."""
    tables = parse(html).tables
    return {t: tables.get(t, []) for t in ("risks", "opportunities")}


class TestAlertsPage:
    async def test_risks_by_severity_then_revenue_and_opportunities_apart(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        html = (await client.get("/console/alerts")).text
        active = {a["id"]: a for a in (await api(client, "/v1/alerts"))["alerts"]}
        tables = _alert_rows(html)
        risks = [int(attrs["data-alert-id"]) for attrs, _ in tables["risks"]]
        opportunities = [int(attrs["data-alert-id"]) for attrs, _ in tables["opportunities"]]
        assert set(risks) | set(opportunities) == set(active)
        assert opportunities == [seeded.alerts["upsell"]]
        rank = {"critical": 0, "warning": 1, "info": 2}
        keys = [(rank[active[i]["severity"]], -(active[i]["mrr"] or 0)) for i in risks]
        assert keys == sorted(keys) and risks[0] == seeded.alerts["dormant"]
        assert seeded.alerts["plateau"] not in risks and seeded.alerts["pending"] not in risks
        # An opportunity's open is not a risk's red pill.
        upsell = next(c for a, c in tables["opportunities"])
        assert 'class="status status-open status-opportunity"' in html and upsell[2] == "Open"
        # Health is the account's current one, not the alert row's snapshot.
        dormant = await api(client, f"/v1/accounts/{seeded.id_of(Archetype.DORMANT)}")
        row = next(c for a, c in tables["risks"] if a["data-alert-id"] == str(risks[0]))
        assert row[1] == f"Dormant {active[risks[0]]['severity'].capitalize()}"
        assert row[3] == f"{dormant['band'].capitalize()} {dormant['score']:.1f}"
        assert row[7] == CSM_NAMES[ANA]  # the CSM by name where the accounts name them

    @pytest.mark.parametrize(
        ("params", "api_params"),
        [
            ({"csm": ANA}, {"csm": ANA}),
            ({"csm": BEN}, {"csm": BEN}),
            ({"severity": "warning"}, {"severity": "warning"}),
            ({"severity": "opportunity"}, {"severity": "opportunity"}),
            ({"rule": "dormant"}, {"rule": "dormant"}),
            ({"rule": "login_decline", "csm": ANA}, {"rule": "login_decline", "csm": ANA}),
        ],
    )
    async def test_filters(
        self, client: httpx.AsyncClient, params: dict[str, str], api_params: dict[str, str]
    ) -> None:
        html = (await client.get("/console/alerts", params=params)).text
        shown = {int(attrs["data-alert-id"]) for t in _alert_rows(html).values() for attrs, _ in t}
        every = (await api(client, "/v1/alerts", csm=params.get("csm", "")))["alerts"]
        expected = {
            a["id"] for a in every if all(a[k] == v for k, v in api_params.items() if k != "csm")
        }
        assert shown == expected
        for key, value in params.items():  # the form shows what it filters by
            assert re.search(rf'<option value="{re.escape(value)}" selected>', html), key

    async def test_act_in_place_keeps_the_filters(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        page = "/console/alerts?severity=warning"
        html = (await client.get(page)).text
        alert_id = seeded.alerts["decline"]
        assert f'action="/console/alerts/{alert_id}/ack"' in html
        assert f'action="/console/alerts/{alert_id}/snooze"' in html
        assert 'placeholder="YYYY-MM-DD HH:MM"' in html and 'type="datetime-local"' not in html
        until = (seeded.clock.now() + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
        form = {"csrf": csrf_of(html), "next": page, "until": until}
        r = await client.post(f"/console/alerts/{alert_id}/snooze", data=form)
        assert r.headers["location"] == f"{page}&notice=snoozed#alert-{alert_id}"
        after = (await client.get(r.headers["location"])).text
        assert "Alert snoozed." in after
        assert (await api(client, f"/v1/alerts/{alert_id}"))["snoozed_until"].startswith(
            until.replace(" ", "T")
        )
        r = await client.post(f"/console/alerts/{alert_id}/ack", data=form)
        assert "notice=acknowledged" in r.headers["location"]


class TestActions:
    async def status(self, client: httpx.AsyncClient, alert_id: int) -> dict[str, Any]:
        body: dict[str, Any] = await api(client, f"/v1/alerts/{alert_id}")
        return body

    @pytest.mark.parametrize("csrf", [None, "", "0" * 64, "forged"])
    async def test_csrf_missing_or_wrong_is_403(
        self, client: httpx.AsyncClient, seeded: Seeded, csrf: str | None
    ) -> None:
        alert_id = seeded.alerts["decline"]
        before = await self.status(client, alert_id)
        data = {"next": "/console/"} | ({} if csrf is None else {"csrf": csrf})
        for action in ("ack", "resolve", "snooze"):
            r = await client.post(f"/console/alerts/{alert_id}/{action}", data=data)
            assert r.status_code == 403
        assert await self.status(client, alert_id) == before

    async def test_another_sessions_csrf_is_refused(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        import time

        other = auth.verify(TOKEN, auth.issue(TOKEN, time.time()), time.time())
        assert other is not None
        r = await client.post(
            f"/console/alerts/{seeded.alerts['decline']}/ack", data={"csrf": other.csrf}
        )
        assert r.status_code == 403

    async def test_a_post_without_a_session_goes_to_sign_in(
        self, anonymous: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        r = await anonymous.post(f"/console/alerts/{seeded.alerts['decline']}/ack", data={})
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")

    async def test_ack_snooze_resolve(self, client: httpx.AsyncClient, seeded: Seeded) -> None:
        alert_id = seeded.alerts["decline"]
        page = f"/console/accounts/{seeded.id_of(Archetype.DECLINING)}"
        csrf = csrf_of((await client.get(page)).text)
        form = {"csrf": csrf, "next": page}

        r = await client.post(f"/console/alerts/{alert_id}/ack", data=form)
        assert r.status_code == 303
        assert r.headers["location"] == f"{page}?notice=acknowledged#alert-{alert_id}"
        assert (await self.status(client, alert_id))["status"] == "acknowledged"
        html = (await client.get(r.headers["location"])).text
        assert 'data-status="acknowledged"' in html and "Alert acknowledged" in html

        until = seeded.clock.now() + timedelta(days=3)
        r = await client.post(
            f"/console/alerts/{alert_id}/snooze",
            data=form | {"until": until.strftime("%Y-%m-%dT%H:%M"), "reason": "QBR on Friday"},
        )
        assert "notice=snoozed" in r.headers["location"]
        body = await self.status(client, alert_id)
        assert body["status"] == "snoozed" and body["snooze_reason"] == "QBR on Friday"
        assert body["snoozed_until"].startswith(until.strftime("%Y-%m-%dT%H:%M"))

        past = seeded.clock.now() - timedelta(hours=1)
        r = await client.post(
            f"/console/alerts/{alert_id}/snooze",
            data=form | {"until": past.strftime("%Y-%m-%dT%H:%M")},
        )
        assert "notice=bad-until" in r.headers["location"]
        assert (await self.status(client, alert_id))["status"] == "snoozed"

        r = await client.post(f"/console/alerts/{alert_id}/resolve", data=form)
        assert "notice=resolved" in r.headers["location"]
        assert (await self.status(client, alert_id))["status"] == "resolved"

        r = await client.post(f"/console/alerts/{alert_id}/ack", data=form)
        assert "notice=conflict" in r.headers["location"]
        assert (await self.status(client, alert_id))["status"] == "resolved"

    async def test_unknown_alert_or_action(self, client: httpx.AsyncClient) -> None:
        csrf = csrf_of((await client.get("/console/")).text)
        r = await client.post("/console/alerts/999999/ack", data={"csrf": csrf})
        assert "notice=not-found" in r.headers["location"]
        r = await client.post("/console/alerts/1/delete", data={"csrf": csrf})
        assert r.status_code == 404


class TestMarkup:
    async def test_accessible_basics(self, client: httpx.AsyncClient, seeded: Seeded) -> None:
        for path in (
            "/console/",
            "/console/alerts",
            f"/console/accounts/{seeded.id_of(Archetype.DORMANT)}",
        ):
            r = await client.get(path)
            html = r.text
            assert '<html lang="en">' in html
            assert 'name="viewport"' in html and "<h1" in html
            t = parse(html)
            for control in t.inputs:
                assert control.get("id") in t.labels, control  # every control has a label
            assert "<th " in html and 'scope="col"' in html
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["cache-control"] == "no-store"
            assert "<script" not in html and "http://" not in html.replace("http://tend", "")

    async def test_static_files_ship_with_the_package(self, anonymous: httpx.AsyncClient) -> None:
        css = await anonymous.get("/console/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "@media" in css.text and ":focus-visible" in css.text
        icon = await anonymous.get("/console/static/favicon.svg")
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert (await anonymous.get("/console/static/../routes.py")).status_code == 404
        assert (await anonymous.get("/console/static/nope.css")).status_code == 404
