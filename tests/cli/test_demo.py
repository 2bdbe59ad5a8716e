"""``tend demo``: the generator on its own (pure, seeded), the sender against loopback servers,
and the whole path against a real ``tend up`` process: the archetypes end in their bands and
open their alerts."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.demo_outcomes import MIN_DAYS_AGO, plan_outcomes
from services.cli.demo_plan import (
    ARCHETYPES,
    EXPECTED,
    KEY_FEATURES,
    Archetype,
    generate,
    plan_demo,
)
from services.cli.demo_send import DemoError, DemoSender
from shared.outcomes.model import CustomerOutcome, in_day_order, outcome_problems
from shared.outcomes.mrr import derive_mrr_history
from tests.support.servers import Reply, SlackWebhookServer

ROOT = Path(__file__).resolve().parents[2]
TEND = str(Path(sys.executable).parent / "tend")
TOKEN = "demo-test-token-0123456789abcdefgh"
NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)


@pytest.mark.unit
class TestPlan:
    def test_every_archetype_with_eight_accounts(self) -> None:
        plan = plan_demo(8, 6, 1, NOW.date())
        assert [a.archetype for a in plan.accounts] == list(ARCHETYPES)
        assert len({a.account_id for a in plan.accounts}) == 8
        assert len({a.csm_email for a in plan.accounts}) == 3

    def test_traits_renewals_and_seats(self) -> None:
        plan = plan_demo(40, 16, 3, NOW.date())
        near = [a for a in plan.accounts if (a.renewal_date - NOW.date()).days <= 90]
        assert 0 < len(near) < 40
        for a in plan.accounts:
            assert a.renewal_date > NOW.date() and a.created_at < plan.start
            assert len(a.users) <= a.seats
            assert set(a.traits()) >= {"name", "plan", "seats", "mrr", "renewal_date", "csm_name"}
            # Routing is the operator's: in the profile the demo PATCHes, not in group calls.
            assert not {"csm_email", "csm_slack"} & set(a.traits())
            assert a.profile()["csm_email"] == a.csm_email
        seats = {a.archetype: a for a in plan.accounts}
        assert len(seats[Archetype.OUT_OF_SEATS].users) == seats[Archetype.OUT_OF_SEATS].seats

    def test_same_seed_same_calls_other_seed_other_calls(self) -> None:
        def calls(seed: int) -> list[Any]:
            plan = plan_demo(3, 6, seed, NOW.date())  # three accounts tell two seeds apart
            return [c for _, day in generate(plan, NOW) for c in day]

        assert calls(5) == calls(5)
        assert calls(5) != calls(6)

    def test_calls_are_ordered_in_the_past_and_well_formed(self) -> None:
        plan = plan_demo(8, 6, 1, NOW.date())
        days = list(generate(plan, NOW))
        assert days[0][0] == plan.start and days[-1][0] == NOW.date()
        stamps = [c["timestamp"] for _, calls in days for c in calls]
        assert stamps == sorted(stamps) and max(stamps) <= NOW.isoformat()[:19] + "Z"
        all_calls = [c for _, calls in days for c in calls]
        assert len({c["messageId"] for c in all_calls}) == len(all_calls)
        types = Counter(c["type"] for c in all_calls)
        assert types["group"] == 8 and types["identify"] > 0 and types["track"] > 1000
        features = {c["properties"].get("feature") for c in all_calls if c["type"] == "track"}
        assert set(KEY_FEATURES) <= features

    def test_shapes(self) -> None:
        """Dormant goes quiet 30 days before today; abandoning stops integrations 35 days
        before; never-adopting never uses them."""
        plan = plan_demo(8, 6, 1, NOW.date())
        ids = {a.archetype: a.account_id for a in plan.accounts}
        last: dict[tuple[str, str | None], date] = {}
        for day, calls in generate(plan, NOW):
            for c in calls:
                if c["type"] == "track":
                    acc = c["properties"]["account_id"]
                    last[(acc, None)] = day
                    last[(acc, c["properties"].get("feature"))] = day
        assert (NOW.date() - last[(ids[Archetype.DORMANT], None)]).days >= 30
        abandons = ids[Archetype.ABANDONS_FEATURE]
        assert (NOW.date() - last[(abandons, "integrations")]).days >= 35
        assert (NOW.date() - last[(abandons, "reports")]).days <= 3
        assert (ids[Archetype.NEVER_ADOPTS], "integrations") not in last


@pytest.mark.unit
class TestOutcomes:
    """The demo's outcomes: what some customers did, consistent with their profiles."""

    def test_some_cancelled_some_renewed_with_mrr_changes(self) -> None:
        plan = plan_demo(40, 16, 1, NOW.date())
        outcomes = plan_outcomes(plan)
        kinds = Counter(o.kind for o in outcomes)
        assert kinds["cancellation"] >= 2 and kinds["renewal"] >= 3
        assert kinds["expansion"] >= 3 and kinds["contraction"] >= 2
        archetype = {a.account_id: a.archetype for a in plan.accounts}
        for o in outcomes:
            assert plan.start <= o.effective_on <= NOW.date() - timedelta(days=MIN_DAYS_AGO)
            if o.kind == "cancellation":
                assert archetype[o.account_id] in (Archetype.DORMANT, Archetype.DECLINING)
        assert plan_outcomes(plan) == outcomes  # seeded

    def test_eight_accounts_keep_every_archetypes_alerts(self) -> None:
        # The first account of each archetype is never cancelled: the 8-account demo still
        # shows the dormant and declining alerts.
        outcomes = plan_outcomes(plan_demo(8, 6, 1, NOW.date()))
        assert "cancellation" not in {o.kind for o in outcomes}
        assert {o.kind for o in outcomes} == {"expansion", "renewal"}

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_outcomes_agree_with_the_profiles(self, seed: int) -> None:
        """Valid outcomes, and the MRR history ends at the profile's MRR (or 0 when cancelled)."""
        plan = plan_demo(40, 16, seed, NOW.date())
        by_account: dict[str, list[CustomerOutcome]] = {}
        for o in plan_outcomes(plan):
            body = o.body()
            values = {k: v for k, v in body.items() if k not in ("kind", "effective_on")}
            if "new_term_end" in values:
                values["new_term_end"] = date.fromisoformat(values["new_term_end"])
            outcome = CustomerOutcome(o.account_id, o.kind, o.effective_on, **values)  # type: ignore[arg-type]
            assert outcome_problems(outcome) == []
            by_account.setdefault(o.account_id, []).append(outcome)
        for a in plan.accounts:
            ordered = in_day_order(by_account.get(a.account_id, []))
            history = derive_mrr_history(ordered, profile_mrr=a.mrr, start=a.created_at)
            cancelled = any(o.kind == "cancellation" for o in ordered)
            assert history[-1].mrr == (0.0 if cancelled else pytest.approx(a.mrr)), a.account_id


@pytest.mark.integration
def test_demo_outcomes_through_the_api_show_churn_and_retention(sqlite_url: str) -> None:
    """The sender records the demo's profiles and outcomes through the real web app (on a
    SQLite file): the retention API counts the cancellations as churn, the expansions and
    contractions as such, and lists the cancelled accounts in the cancelled stage."""
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from services.web.app import create_app
    from shared.clock import FixedClock
    from shared.config import load_config
    from shared.settings import Settings

    plan = plan_demo(40, 16, 1, NOW.date())
    outcomes = plan_outcomes(plan)
    settings = Settings(database_url=sqlite_url, api_token=SecretStr(TOKEN))
    app = create_app(
        settings, config=load_config(ROOT / "deploy" / "tend.yaml"), clock=FixedClock(NOW)
    )
    first = f"{plan.start:%Y-%m}"
    last = f"{NOW.date().replace(day=1) - timedelta(days=1):%Y-%m}"
    with TestClient(app, base_url="http://tend.test") as http:
        sender = DemoSender("http://tend.test", "wk_unused", client=http)
        assert sender.set_profiles(plan.accounts, TOKEN) == 40
        assert sender.record_outcomes(outcomes, TOKEN) == len(outcomes)
        assert sender.record_outcomes(outcomes, TOKEN) == len(outcomes)  # idempotent
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = http.get("/v1/retention", params={"from": first, "to": last}, headers=auth)
        assert r.status_code == 200, r.text
        months = r.json()["months"]
        listed = http.get("/v1/accounts", params={"stage": "cancelled"}, headers=auth).json()
    in_range = [o for o in outcomes if first <= f"{o.effective_on:%Y-%m}" <= last]
    assert (
        sum(m["churned_accounts"] for m in months)
        == sum(o.kind == "cancellation" for o in in_range)
        > 0
    )
    lost = sum(o.body().get("mrr_lost", 0.0) for o in in_range if o.kind == "cancellation")
    assert sum(m["churned_mrr"] for m in months) == pytest.approx(lost)
    assert sum(m["expansion_mrr"] for m in months) == pytest.approx(
        sum(o.body()["mrr_delta"] for o in in_range if o.kind == "expansion")
    )
    assert sum(m["contraction_mrr"] for m in months) == pytest.approx(
        -sum(o.body()["mrr_delta"] for o in in_range if o.kind == "contraction")
    )
    assert {a["account_id"] for a in listed["accounts"]} == {
        o.account_id for o in outcomes if o.kind == "cancellation"
    }


@pytest.mark.integration
class TestSender:
    """Against a loopback HTTP server answering from a script."""

    @pytest.fixture
    def server(self) -> Iterator[SlackWebhookServer]:
        s = SlackWebhookServer().start()
        yield s
        s.stop()

    def sender(self, server: SlackWebhookServer, waits: list[float]) -> DemoSender:
        return DemoSender(f"http://127.0.0.1:{server.port}", "wk_test", sleep=waits.append)

    def calls(self, n: int) -> list[dict[str, Any]]:
        return [{"type": "track", "messageId": f"m{i}", "event": "x" * 300} for i in range(n)]

    def test_batches_under_the_limits_gzip_and_basic_auth(self, server: SlackWebhookServer) -> None:
        server.script(*[Reply(200, '{"success":true,"accepted":1,"rejected":[]}')] * 5)
        sender = self.sender(server, [])
        sender.send_day(self.calls(2500))
        assert sender.stats.events == 2500 and sender.stats.requests == len(server.requests)
        for req in server.requests:
            assert req.path == "/v1/batch"
            assert req.headers["Authorization"] == "Basic d2tfdGVzdDo="  # "wk_test:"
            assert req.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(req.body)
            assert len(body) < 500_000 and len(json.loads(body)["batch"]) <= 1000
        assert len(server.requests) >= 3

    def test_retries_503_and_429_after_retry_after(self, server: SlackWebhookServer) -> None:
        server.script(
            Reply(503, '{"success":false}', {"Retry-After": "2"}),
            Reply(429, '{"success":false}', {"Retry-After": "1"}),
            Reply(200, '{"success":true,"rejected":[]}'),
        )
        waits: list[float] = []
        sender = self.sender(server, waits)
        sender.send_day(self.calls(3))
        assert waits == [2.0, 1.0] and sender.stats.retries == 2 and sender.stats.events == 3
        assert len({r.body for r in server.requests}) == 1  # the same batch, resent

    @pytest.mark.parametrize(
        ("status", "words"),
        [(401, "refused the write key"), (400, "answered 400: batch: bad"), (413, "413")],
    )
    def test_stops_on_4xx_with_the_servers_message(
        self, server: SlackWebhookServer, status: int, words: str
    ) -> None:
        server.script(Reply(status, '{"success":false,"error":"batch: bad"}'))
        sender = self.sender(server, [])
        with pytest.raises(DemoError, match=words):
            sender.send_day(self.calls(3))
        assert len(server.requests) == 1

    def test_stops_when_events_are_rejected(self, server: SlackWebhookServer) -> None:
        body = {"success": True, "rejected": [{"index": 0, "messageId": "m0", "error": "userId"}]}
        server.script(Reply(200, json.dumps(body)))
        with pytest.raises(DemoError, match=r"rejected 1 of 3 events, e\.g\. m0: userId"):
            self.sender(server, []).send_day(self.calls(3))

    def test_records_outcomes_one_request_per_account_with_the_token(
        self, server: SlackWebhookServer
    ) -> None:
        outcomes = plan_outcomes(plan_demo(40, 16, 1, NOW.date()))
        accounts = list(dict.fromkeys(o.account_id for o in outcomes))
        server.script(*[Reply(201, "{}")] * len(accounts))
        assert self.sender(server, []).record_outcomes(outcomes, TOKEN) == len(outcomes)
        assert [r.path for r in server.requests] == [f"/v1/accounts/{a}/outcomes" for a in accounts]
        for req in server.requests:
            assert req.headers["Authorization"] == f"Bearer {TOKEN}"
        sent = [b for r in server.requests for b in json.loads(r.body)]
        assert sorted(sent, key=json.dumps) == sorted((o.body() for o in outcomes), key=json.dumps)

    def test_outcomes_refused_name_the_account(self, server: SlackWebhookServer) -> None:
        outcomes = plan_outcomes(plan_demo(8, 6, 1, NOW.date()))
        server.script(Reply(409, '{"error":{"code":"conflict","message":"contradicts"}}'))
        with pytest.raises(DemoError, match=f"recording the outcomes of {outcomes[0].account_id}"):
            self.sender(server, []).record_outcomes(outcomes, TOKEN)
        server.script(Reply(401, "{}"))
        with pytest.raises(DemoError, match="refused the API token"):
            self.sender(server, []).record_outcomes(outcomes, TOKEN)

    def test_unreachable(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sender = DemoSender(f"http://127.0.0.1:{port}", "k", sleep=lambda s: None)
        with pytest.raises(DemoError, match="cannot reach tend"):
            sender.send_day(self.calls(1))


# -- against a real `tend up` ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
    env.update(
        TEND_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tend.db'}",
        TEND_API_TOKEN=TOKEN,
        TEND_CONFIG=str(ROOT / "deploy" / "tend.yaml"),
        TEND_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run(
        [TEND, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture
def tend_up(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A `tend up` process on a fresh SQLite file and a free port; (url, write key, env)."""
    env = _env(tmp_path)
    _run(["migrate"], env)
    key = _run(["keys", "create", "demo"], env).split()[-1]
    assert key.startswith("tend_wk_")
    port = _free_port()
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [TEND, "up", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tend up did not start"
            time.sleep(0.2)
        yield url, key, env
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.e2e
def test_demo_against_tend_up(tend_up: tuple[str, str, dict[str, str]]) -> None:
    url, key, env = tend_up
    started = time.monotonic()
    out = _run(["demo", "--accounts", "8", "--weeks", "6", "--url", url, "--write-key", key], env)
    sent = int(out.split("Sent ")[1].split()[0])
    assert sent > 5000 and "going_dormant" in out and "TEND_CONFIG" in out
    plan = plan_demo(8, 6, 1, datetime.now(UTC).date())
    archetype = {a.account_id: a.archetype for a in plan.accounts}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    today = datetime.now(UTC).date().isoformat()

    def scored() -> dict[str, Any] | None:
        body = httpx.get(f"{url}/v1/accounts", params={"limit": 100}, headers=auth).json()
        rows = {a["account_id"]: a for a in body["accounts"]}
        done = set(rows) == set(archetype) and all(
            r["scored_as_of"] == today for r in rows.values()
        )
        return rows if done else None

    rows = None
    while rows is None:
        assert time.monotonic() - started < 90, "accounts not scored in time"
        time.sleep(0.5)
        rows = scored()
    # The CSMs came through the operator's API (the demo has TEND_API_TOKEN).
    assert {aid: r["csm_email"] for aid, r in rows.items()} == {
        a.account_id: a.csm_email for a in plan.accounts
    }
    bands = {archetype[aid].value: (r["band"], r["score"]) for aid, r in rows.items()}
    expected = {a.value: EXPECTED[a][0] for a in ARCHETYPES}
    assert {k: b for k, (b, _) in bands.items()} == expected, bands
    # Clear margins, not a coin toss at a band edge (green at 70, yellow at 40).
    for name, (band, score) in bands.items():
        low, high = {"green": (75, 101), "yellow": (45, 66), "red": (0, 30)}[band]
        assert low <= score < high, (name, band, score)

    # Alerts: each archetype's signature rule opens (hysteresis: two scores in a row).
    signature = {
        Archetype.PLATEAUING: ("login_plateau", ""),
        Archetype.DECLINING: ("login_decline", ""),
        Archetype.DORMANT: ("dormant", ""),
        Archetype.ABANDONS_FEATURE: ("feature_unused", "integrations"),
        Archetype.NEVER_ADOPTS: ("feature_unused", "integrations"),
        Archetype.OUT_OF_SEATS: ("upsell_seats", ""),
    }
    want = {(plan_id, *signature[a]) for plan_id, a in archetype.items() if a in signature}
    got: set[tuple[str, str, str]] = set()
    while True:
        body = httpx.get(f"{url}/v1/alerts", params={"limit": 500}, headers=auth).json()
        got = {(x["account_id"], x["rule"], x.get("feature") or "") for x in body["alerts"]}
        if want <= got:
            break
        assert time.monotonic() - started < 100, f"missing alerts: {want - got}"
        time.sleep(0.5)
    healthy = [aid for aid, a in archetype.items() if a in (Archetype.STEADY, Archetype.GROWING)]
    assert not [g for g in got if g[0] in healthy and g[1] != "upsell_seats"], got
    # The outcomes came through the operator's API too (the first of each archetype is never
    # cancelled, so the alerts above still open).
    for o in plan_outcomes(plan):
        body = httpx.get(f"{url}/v1/accounts/{o.account_id}/outcomes", headers=auth).json()
        assert [(x["kind"], x["effective_on"]) for x in body["outcomes"]] == [
            (o.kind, o.effective_on.isoformat())
        ]
