"""The two ways to run tend, as real processes over real HTTP, through one test body.

- production: separate ``tend ingest``, ``tend scorer``, ``tend alerts`` and ``tend web``
  processes on a fresh PostgreSQL database and a Kafka-protocol broker of this test alone;
- ``tend up``: every service in one process on a fresh SQLite file.

The body is what a team does on a first day: the operator sets an account's profile through
the web API, the product sends six weeks of usage through ingest with a write key (the demo's
going-dormant account: nobody has signed in for 30 days), the scorer scores it and the alerts
service opens a ``dormant`` alert; a CSM signs into the console as the first admin, opens the
account page and acknowledges the alert with the page's own form (a post without its CSRF
field is refused); then the account's monthly report is fetched through the API, as JSON (it
counts the key features of ``TEND_CONFIG``) and as HTML.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

import httpx
import pytest

from services.cli.demo_plan import (
    ARCHETYPES,
    EXPECTED,
    KEY_FEATURES,
    Archetype,
    DemoAccount,
    DemoPlan,
    generate,
    plan_demo,
)
from services.cli.demo_send import DemoSender
from tests.support.commands import run_tend
from tests.support.process import REPO, ServiceProcess

pytestmark = pytest.mark.e2e

TOKEN = "e2e-layouts-api-token-0123456789abcdef"
WEEKS = 6
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    name: str
    ingest: str
    """Where SDKs send events."""
    web: str
    """The read and alerts APIs, the console and the reports."""
    write_key: str
    admin: tuple[str, str]
    """The first admin's email and password, as `tend migrate` printed them."""


def environment(database_url: str, bootstrap: str | None) -> dict[str, str]:
    """The processes' settings: only these ``TEND_*`` (a developer's shell may carry others)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
    env.update(
        TEND_DATABASE_URL=database_url,
        TEND_API_TOKEN=TOKEN,
        TEND_CONFIG=str(REPO / "deploy" / "tend.yaml"),
        TEND_LOG_LEVEL="INFO",  # ServiceProcess.terminate reads uvicorn's shutdown line
        PYTHONUNBUFFERED="1",
    )
    if bootstrap is not None:
        env["TEND_KAFKA_BOOTSTRAP"] = bootstrap
    return env


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float, *procs: Any) -> T:
    """``check()`` until it returns something, failing with the processes' log tails."""
    deadline = time.monotonic() + timeout_s
    while True:
        for proc in procs:
            proc.alive()
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- tend {p.command}:\n{p.tail()}" for p in procs)
            raise AssertionError(f"{what}: not within {timeout_s:g} s\n{tails}")
        time.sleep(0.5)


def ready(proc: ServiceProcess) -> bool | None:
    try:
        return httpx.get(f"{proc.url}/readyz", timeout=2).status_code == 200 or None
    except httpx.TransportError:
        return None


@pytest.fixture(params=["production", "up"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Layout]:
    if request.param == "production":
        database_url = str(request.getfixturevalue("fresh_pg"))
        bootstrap = request.getfixturevalue("own_broker").bootstrap
        commands = ["ingest", "scorer", "alerts", "web"]
    else:
        database_url, bootstrap = f"sqlite+aiosqlite:///{tmp_path / 'tend.db'}", None
        commands = ["up"]
    env = environment(database_url, bootstrap)
    outputs = []
    for args in (["migrate"], ["keys", "create", "e2e"]):
        done = run_tend(args, env)
        assert done.returncode == 0, done.stderr + done.stdout
        outputs.append(done.stdout)
    admin = first_admin(outputs[0])
    write_key = done.stdout.split()[-1]
    assert write_key.startswith("tend_wk_"), done.stdout
    procs = {command: ServiceProcess(command, env, tmp_path) for command in commands}
    try:
        for proc in procs.values():
            proc.start()
        for proc in procs.values():
            wait_for(f"tend {proc.command} ready", partial(ready, proc), 90, *procs.values())
        web = procs.get("web", procs.get("up"))
        assert web is not None
        ingest = procs.get("ingest", web)
        yield Layout(request.param, ingest.url, web.url, write_key, admin)
        for proc in procs.values():
            proc.alive()  # nothing crashed while the test ran
        for proc in procs.values():
            proc.terminate()  # SIGTERM drains: exit code 0
    finally:
        for proc in procs.values():
            proc.cleanup()


# -- the console as a browser sees it -------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Form:
    action: str
    method: str
    fields: dict[str, str]
    hidden: set[str]


class Forms(HTMLParser):
    """The forms of a page: action, method and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(a.get("action", ""), a.get("method", "get").lower(), {}, set())
            self.forms.append(self._open)
        elif tag in ("input", "button") and self._open is not None and a.get("name"):
            self._open.fields[a["name"]] = a.get("value", "")
            if a.get("type") == "hidden":
                self._open.hidden.add(a["name"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms(html: str) -> list[Form]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


def first_admin(migrate_output: str) -> tuple[str, str]:
    """The email and password `tend migrate` printed for the first admin."""
    found = dict(re.findall(r"^\s+(email|password):\s+(\S+)$", migrate_output, re.MULTILINE))
    assert set(found) == {"email", "password"}, migrate_output
    return found["email"], found["password"]


def sign_in(console: httpx.Client, admin: tuple[str, str]) -> None:
    """The sign-in page's form, filled in with the first admin's email and password."""
    page = console.get("/console/login")
    assert page.status_code == 200, page.text
    [form] = [f for f in forms(page.text) if f.method == "post"]
    secret = [name for name in form.fields if name not in form.hidden]
    assert {"email", "password"} <= set(secret), form
    email, password = admin
    answer = console.post(
        urljoin("/console/login", form.action),
        data={**form.fields, "email": email, "password": password},
    )
    assert answer.status_code == 303, answer.text
    assert "login" not in answer.headers["location"], answer.headers


# -- the test body ----------------------------------------------------------------------------


def dormant_account(today: date) -> tuple[DemoAccount, DemoPlan]:
    """The demo's going-dormant account alone: six weeks of usage ending 30 days ago."""
    plan = plan_demo(len(ARCHETYPES), WEEKS, 11, today)
    [account] = plan.by_archetype()[Archetype.DORMANT]
    return account, dataclasses.replace(plan, accounts=(account,))


def test_events_to_acknowledged_alert_and_report(layout: Layout) -> None:
    now = datetime.now(UTC)
    account, plan = dormant_account(now.date())
    path = f"/v1/accounts/{quote(account.account_id, safe='')}"
    api = httpx.Client(
        base_url=layout.web, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )

    # The operator's profile through the web API; the usage through ingest, with the write key.
    profile = {k: v for k, v in account.profile().items() if k not in ("csm_email", "csm_slack")}
    r = api.patch(path, json=profile)
    assert r.status_code == 200, r.text
    sender = DemoSender(layout.ingest, layout.write_key)
    try:
        for _day, calls in generate(plan, now):
            sender.send_day(calls)
    finally:
        sender.close()
    assert sender.stats.events > 200, sender.stats

    def dormant_alert() -> dict[str, Any] | None:
        body = api.get("/v1/alerts", params={"account": account.account_id}).json()
        found = [a for a in body["alerts"] if a["rule"] == "dormant" and a["status"] == "open"]
        return found[0] if found else None

    def scored_today() -> dict[str, Any] | None:
        row: dict[str, Any] = api.get(path).json()
        return row if row.get("scored_as_of") == now.date().isoformat() else None

    scored = wait_for("the account scored as of today", scored_today, 180)
    assert scored["name"] == account.name and scored["seats"] == account.seats, scored
    assert scored["band"] == EXPECTED[Archetype.DORMANT][0], scored
    alert = wait_for("a dormant alert open", dormant_alert, 120)

    # The console: sign in as the first admin, open the account, acknowledge with its form.
    with httpx.Client(base_url=layout.web, timeout=30) as console:
        assert (
            console.get(f"/console{path.removeprefix('/v1')}").status_code == 303
        )  # sign in first
        sign_in(console, layout.admin)
        page = console.get(f"/console/accounts/{quote(account.account_id, safe='')}")
        assert page.status_code == 200, page.text
        assert account.name in page.text and "dormant" in page.text.lower()
        [ack] = [f for f in forms(page.text) if f.action.endswith(f"/alerts/{alert['id']}/ack")]
        assert ack.method == "post" and ack.hidden, ack
        action = urljoin(str(page.url), ack.action)

        forged = {k: v for k, v in ack.fields.items() if k not in ack.hidden}
        assert console.post(action, data=forged).status_code == 403  # no CSRF token, no move
        assert api.get(f"/v1/alerts/{alert['id']}").json()["status"] == "open"

        done = console.post(action, data=ack.fields)
        assert done.status_code == 303, done.text
        assert "acknowledged" in done.headers["location"], done.headers
        back = console.get(done.headers["location"])
        assert back.status_code == 200, back.text
    assert api.get(f"/v1/alerts/{alert['id']}").json()["status"] == "acknowledged"

    # The monthly report of a month with usage, through the API: JSON and the printable page.
    month = (now.date() - timedelta(days=35)).strftime("%Y-%m")
    report = api.get(f"{path}/report", params={"month": month})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["account"]["account_id"] == account.account_id and body["month"] == month
    assert body["active_users"]["value"] >= 1, body["active_users"]
    assert body["key_features_total"] == len(KEY_FEATURES)  # TEND_CONFIG's key features
    page = api.get(f"{path}/report.html", params={"month": month})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert account.name in page.text
    api.close()
