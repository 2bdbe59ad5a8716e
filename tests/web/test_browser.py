"""The console in a real browser: headless Chromium (the Debian package) driven by Playwright.

The app (console, read API, alerts API) runs under uvicorn on a free loopback port over a
seeded private SQLite database. A CSM signs in, opens the portfolio, opens the at-risk account,
acknowledges its alert and sees the state change. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
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
from tests.web.console_data import TOKEN, Seeded, build_app, seed

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

    # 1. Signing in: the portfolio sends us to the sign-in page; a wrong token is refused.
    page.goto(f"{served.url}/console/")
    expect(page).to_have_url(f"{served.url}/console/login?next=%2Fconsole%2F")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the tend console")
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the API token")
    _shot(page, "login-refused")
    page.get_by_label("API token").fill(TOKEN)
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


def test_readable_on_a_phone(served: Served, browser: object) -> None:
    browser.clear_cookies()  # type: ignore[attr-defined]
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{served.url}/console/login")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.get_by_role("heading", name="Portfolio", level=1)).to_be_visible()
    # Wide tables scroll inside their box; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(page, "portfolio-phone")
    page.goto(f"{served.url}/console/accounts/{served.seeded.id_of(Archetype.DECLINING)}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(page, "account-phone")
    page.close()


def test_chromium_is_the_system_one() -> None:
    assert shutil.which("chromium") == str(CHROMIUM) or CHROMIUM.exists()
