"""The console in a real browser: headless Chromium (the Debian package) driven by Playwright.

The app (console, read API, alerts API) runs under uvicorn on a free loopback port over a
seeded private SQLite database. A CSM signs in, opens the portfolio, opens the at-risk account,
acknowledges its alert and sees the state change. Then every page (portfolio, account,
alerts, and the monthly report opened from the account page by a click), on a desktop and on a
390 px phone: no cell overflows, no model key reaches the reader, the alerts are ordered by
severity. Screenshots go to ``test-artifacts/`` (``console-<page>-<desktop|phone>.png``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.scorer.synthetic import Archetype
from tests.web.console_data import ADMIN, PASSWORD, TOKEN, Seeded, build_app, seed

pytestmark = pytest.mark.integration  # uvicorn on a loopback port and a chromium process

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
if not CHROMIUM.exists():
    pytest.skip(
        "no /usr/bin/chromium (Debian packages chromium, chromium-driver; scripts/test installs "
        "them as root)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclass
class Served:
    url: str
    seeded: Seeded


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Seed and serve in a thread with its own event loop (Playwright's sync API needs the
    test's thread free of a running loop)."""
    db = tmp_path_factory.mktemp("browser") / "console.db"
    port = _free_port()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        seeded = await seed(str(db), prefix="br")
        config = uvicorn.Config(
            build_app(seeded), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = _Server(config, ready)
        state["server"], state["seeded"] = server, seeded
        try:
            await server.serve()
        finally:
            ready.set()  # also when it could not start: the fixture then sees no "started"
            await seeded.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as err:  # surfaced by the fixture below
            state["error"] = err
            ready.set()

    thread = threading.Thread(target=run, name="console-server", daemon=True)
    thread.start()
    assert ready.wait(60), "the console server did not start"
    if "error" in state:
        raise RuntimeError("the console server failed") from state["error"]  # type: ignore[arg-type]
    seeded, server = state["seeded"], state["server"]
    assert isinstance(seeded, Seeded) and isinstance(server, _Server)
    assert server.started, "the console server did not start"
    yield Served(f"http://127.0.0.1:{port}", seeded)
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


def _shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_csm_acknowledges_the_alert_of_an_at_risk_account(served: Served, browser: object) -> None:
    expect = sync_api.expect
    browser.clear_cookies()  # type: ignore[attr-defined]
    page = browser.new_page()  # type: ignore[attr-defined]
    dormant = served.seeded.id_of(Archetype.DORMANT)
    alert_id = served.seeded.alerts["dormant"]

    # 1. Signing in: the portfolio sends us to the sign-in page; a wrong password is refused.
    page.goto(f"{served.url}/console/")
    expect(page).to_have_url(f"{served.url}/console/login?next=%2Fconsole%2F")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the tend console")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    _shot(page, "login-refused")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # 2. The portfolio: every account, the at-risk ones first.
    expect(page).to_have_url(f"{served.url}/console/")
    expect(page.get_by_role("heading", name="Portfolio", level=1)).to_be_visible()
    rows = page.locator("#portfolio tbody tr")
    expect(rows).to_have_count(len(served.seeded.replay.accounts))
    expect(rows.first).to_have_attribute("data-account-id", dormant)
    expect(rows.first.locator(".band")).to_have_text("Red")
    expect(page.locator("#portfolio svg.spark").first).to_be_visible()
    _shot(page, "portfolio")

    # 3. Filters work without JavaScript (a GET form).
    page.get_by_label("Band").select_option("yellow")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(f"{served.url}/console/?csm=&band=yellow&renewal=&stage=&sort=score")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="Reset").click()
    expect(rows).to_have_count(len(served.seeded.replay.accounts))

    # 4. The at-risk account, reached with the keyboard.
    link = page.get_by_role("link", name="Dormant 0")
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{served.url}/console/accounts/{dormant}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dormant 0")
    expect(page.get_by_role("img", name="Health score history")).to_be_visible()
    expect(page.locator("#components tbody tr").first).to_be_visible()
    expect(page.locator("#features tbody tr")).to_have_count(3)
    card = page.locator(f"#alert-{alert_id}")
    expect(card).to_have_attribute("data-status", "open")
    _shot(page, "account-before-ack")

    # 5. Acknowledge: back on the account page, the alert says so, and so does the API.
    card.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("Alert acknowledged")
    card = page.locator(f"#alert-{alert_id}")
    expect(card).to_have_attribute("data-status", "acknowledged")
    expect(card.locator(".status")).to_have_text("Acknowledged")
    expect(card.locator(".actor")).to_have_text("Admin")
    expect(card.get_by_role("button", name="Acknowledge")).to_have_count(0)
    _shot(page, "account-acknowledged")
    api = httpx.get(
        f"{served.url}/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert api.json()["status"] == "acknowledged"

    # 6. The alerts page shows it with its new status.
    page.get_by_role("link", name="Alerts").click()
    expect(page.locator(f'tr[data-alert-id="{alert_id}"] .status')).to_have_text("Acknowledged")
    _shot(page, "alerts")
    page.close()


RAW_KEYS = (
    "mau",
    "dau",
    "wau",
    "mean_dau",
    "full_at",
    "zero_at",
    "full_within_days",
    "zero_at_days",
    "regular_users",
    "seat_utilization",
    "seats_activated",
    "activated_users",
    "feature_breadth",
    "login_trend",
    "time_to_first_value",
    "first_week_logins",
    "last_login",
    "last_active",
    "first_value",
    "weekly_active_users",
    "weekly_logins",
    "champion_source",
    "score_delta",
    "csm_email",
    "upsell_seats",
    "feature_unused",
    "login_decline",
)
"""Model and rule keys a reader must never see (the model's field names and what the issue saw:
"Mau: 0", "Full at: 0.8", "weakest: seat_utilization")."""
RAW_PHRASES = ("Full at", "Zero at", "Mean dau", "account(s)", "\u2193 -", "\u2191 +")

VISIBLE_TEXT = "document.body.innerText"
OVERFLOWING_CELLS = """() => {
  const out = [];
  for (const el of document.querySelectorAll("td, th, dd, dt, .truncate")) {
    const box = el.getBoundingClientRect();
    const head = el.closest("thead");
    if (box.width === 0 || (head && getComputedStyle(head).position === "absolute")) continue;
    const style = getComputedStyle(el);
    const clips = style.overflowX === "hidden" && style.textOverflow === "ellipsis";
    if (!clips && el.scrollWidth > el.clientWidth + 1) out.push(el.outerHTML.slice(0, 400));
    if (box.right > document.documentElement.clientWidth + 1 && !el.closest(".table-wrap"))
      out.push("off-screen: " + el.outerHTML.slice(0, 400));
  }
  return out;
}"""
OFF_SCREEN_CARD_CELLS = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("table.cards td, table.cards th")]
    .filter(el => el.getBoundingClientRect().width > 0)
    .filter(el => el.getBoundingClientRect().right > width + 1)
    .map(el => el.outerHTML.slice(0, 400));
}"""


def _sign_in(browser: object, served: Served, width: int, height: int) -> object:
    browser.clear_cookies()  # type: ignore[attr-defined]
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{served.url}/console/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.get_by_role("heading", name="Portfolio", level=1)).to_be_visible()
    return page


def _check_page(page: object, name: str, device: str) -> None:
    """The page fits: nothing scrolls the page sideways, no cell's text runs out of its cell
    (a long one is cut with an ellipsis instead), no model key is visible. Then a screenshot."""
    _shot(page, f"{name}-{device}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name  # type: ignore[attr-defined]
    assert page.evaluate(OVERFLOWING_CELLS) == [], name  # type: ignore[attr-defined]
    text = page.evaluate(VISIBLE_TEXT)  # type: ignore[attr-defined]
    seen = [k for k in RAW_KEYS if re.search(rf"(?<![\w-]){k}(?![\w-])", text, re.IGNORECASE)]
    seen += [p for p in RAW_PHRASES if p in text]
    assert seen == [], f"{name}: {seen}"


@pytest.mark.parametrize(
    ("device", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)]
)
def test_every_page_fits_and_speaks_plainly(
    served: Served, browser: object, device: str, width: int, height: int
) -> None:
    expect = sync_api.expect
    page = _sign_in(browser, served, width, height)
    dormant = served.seeded.id_of(Archetype.DORMANT)

    _check_page(page, "portfolio", device)
    rows = page.locator("#portfolio tbody tr")
    if device == "desktop":
        # One line per account: every row as tall as the shortest.
        heights = [
            round(b["height"])
            for b in rows.evaluate_all("rs => rs.map(r => r.getBoundingClientRect())")
        ]
        assert max(heights) - min(heights) <= 2, heights
        wrap = page.locator("#portfolio").evaluate(
            "t => [t.scrollWidth, t.parentElement.clientWidth]"
        )
        assert wrap[0] <= wrap[1] + 1, wrap  # all eleven columns on a 1280 px screen
    else:
        # Cards: MRR, renewal, CSM and open alerts of the first account are on screen.
        first = rows.first
        first.scroll_into_view_if_needed()
        for label in ("MRR", "Renewal", "CSM", "Open alerts"):
            expect(first.locator(f'[data-label="{label}"]')).to_be_in_viewport()
        assert page.evaluate(OFF_SCREEN_CARD_CELLS) == []
    # A renewal within 30 days is highlighted with the days left.
    soon = page.locator(f'#portfolio tr[data-account-id="{dormant}"] .soon')
    expect(soon).to_have_text("in 20 days")

    page.goto(f"{served.url}/console/accounts/{dormant}")
    expect(page.locator("#components tbody tr").first).to_be_visible()
    _check_page(page, "account", device)
    # The why-this-score table fits its box, its Why column included: nothing cut or scrolled.
    table = page.locator("#components")
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth + 1")
    why = page.locator("#components td.why").first.evaluate(
        "el => [el.getBoundingClientRect().right, document.documentElement.clientWidth]"
    )
    assert why[0] <= why[1] + 1, why
    assert page.evaluate(OFF_SCREEN_CARD_CELLS) == []

    page.goto(f"{served.url}/console/alerts")
    _check_page(page, "alerts", device)
    severities = page.locator("#risks tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.severity)"
    )
    rank = {"critical": 0, "warning": 1, "info": 2}
    assert severities and [rank[s] for s in severities] == sorted(rank[s] for s in severities)
    expect(page.locator("#opportunities tbody tr")).to_have_count(1)
    assert page.evaluate(OFF_SCREEN_CARD_CELLS) == []

    # The monthly report, opened from the console by a click (the signed-in session suffices).
    page.goto(f"{served.url}/console/accounts/{dormant}")
    page.get_by_role("link", name="Monthly value report").click()
    expect(page).to_have_url(f"{served.url}/console/accounts/{dormant}/report")
    _check_page(page, "report", device)
    page.close()


def test_the_monthly_report_opens_from_the_account_page(served: Served, browser: object) -> None:
    """A signed-in CSM clicks through to the account's report (session, not Bearer) and reads
    a chart with dates on its axis."""
    expect = sync_api.expect
    browser.clear_cookies()  # type: ignore[attr-defined]
    page = browser.new_page()  # type: ignore[attr-defined]
    account = served.seeded.id_of(Archetype.DECLINING)
    page.goto(f"{served.url}/console/accounts/{account}")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Monthly value report").click()
    expect(page).to_have_url(f"{served.url}/console/accounts/{account}/report")
    expect(page.get_by_role("heading", name="This month in brief")).to_be_visible()
    chart = page.get_by_role("img", name="Health score history")
    expect(chart).to_be_visible()
    expect(chart.locator("text.axis").last).to_have_text(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    _shot(page, "report")
    page.close()


def test_chromium_is_the_system_one() -> None:
    assert shutil.which("chromium") == str(CHROMIUM) or CHROMIUM.exists()
