"""The monthly report goes to the customer: contacts in the profile (operator data, never a
write key's), ``tend report --send`` through a real SMTP server with the PDF Chromium prints
(checked as an image by pdftoppm), the report page in the console for a signed-in CSM, and
``tend report`` leaving out accounts that were not customers in the month."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import date
from email.message import EmailMessage
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
from shared.accounts_csv import import_accounts, parse_accounts_csv
from shared.db.models import Account, Outcome
from shared.settings import Settings
from tests.support.servers import SmtpServer
from tests.web.console_data import Seeded
from tests.web.test_profile_api import group_call, stored
from tests.web.test_report import seed_account

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
TOKEN = "customer-report-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest_asyncio.fixture
async def contacts_api(db: Sessions) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(api_token=SecretStr(TOKEN)), sessions=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://web", headers=AUTH
    ) as c:
        yield c


class TestContacts:
    async def test_the_operator_sets_them_and_a_group_call_cannot(
        self, db: Sessions, contacts_api: httpx.AsyncClient, uid: str
    ) -> None:
        account = f"{uid}-acme"
        body = {"customer_emails": ["ops@acme.example", "cfo@acme.example"]}
        r = await contacts_api.patch(f"/v1/accounts/{account}", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["customer_emails"] == ["ops@acme.example", "cfo@acme.example"]
        await group_call(
            db, f"{uid}-g1", account, {"name": "Acme", "customerEmails": "attacker@evil.example"}
        )
        row = await stored(db, account)
        assert row.customer_emails == ["ops@acme.example", "cfo@acme.example"]
        assert row.name == "Acme"  # the call counted; its trait is only a trait, never a contact
        cleared = await contacts_api.patch(
            f"/v1/accounts/{account}", json={"customer_emails": None}
        )
        assert cleared.status_code == 200 and cleared.json()["customer_emails"] == []

    @pytest.mark.parametrize(
        "value",
        [["not-an-email"], "ops@acme.example", [""], [f"u{i}@x.example" for i in range(21)]],
    )
    async def test_a_bad_list_is_a_422_naming_the_field(
        self, contacts_api: httpx.AsyncClient, uid: str, value: Any
    ) -> None:
        r = await contacts_api.patch(f"/v1/accounts/{uid}-acme", json={"customer_emails": value})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "customer_emails"

    async def test_the_import_column(self, db: Sessions, uid: str) -> None:
        rows = parse_accounts_csv(
            [
                "account_id,customer_emails\n",
                f"{uid}-a,ops@a.example; cfo@a.example\n",
                f"{uid}-b,\n",
            ]
        )
        async with db() as s, s.begin():
            await import_accounts(s, rows)
        assert (await stored(db, f"{uid}-a")).customer_emails == ["ops@a.example", "cfo@a.example"]
        assert (await stored(db, f"{uid}-b")).customer_emails is None

    def test_the_import_names_the_line_and_column(self) -> None:
        with pytest.raises(ValueError, match="line 2, column customer_emails: 'x' is not an email"):
            parse_accounts_csv(["account_id,customer_emails\n", "a,x\n"])


class TestConsole:
    async def test_the_account_page_links_the_report_a_signed_in_browser_opens(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account_id = seeded.replay.accounts[0].account_id
        page = await client.get(f"/console/accounts/{account_id}")
        href = f"/console/accounts/{account_id}/report"
        assert f'href="{href}"' in page.text
        r = await client.get(href)
        assert r.status_code == 200 and "Monthly value report" in r.text
        assert (
            "default-src 'none'; style-src 'unsafe-inline'" in r.headers["content-security-policy"]
        )
        month = seeded.today.strftime("%Y-%m")
        assert "(month to date)" in (await client.get(href, params={"month": month})).text

    async def test_bad_month_unknown_account_and_no_session(
        self, client: httpx.AsyncClient, anonymous: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account_id = seeded.replay.accounts[0].account_id
        bad = await client.get(f"/console/accounts/{account_id}/report", params={"month": "13"})
        assert bad.status_code == 422 and "month: " in bad.text
        assert (await client.get("/console/accounts/nope/report")).status_code == 404
        client.cookies.clear()
        r = await anonymous.get(f"/console/accounts/{account_id}/report")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")


async def invoke(args: list[str], env: dict[str, str | None]) -> Result:
    """The CLI runs its own event loop (asyncio.run): in a thread, off the test's loop."""
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)


class TestWhoIsReported:
    async def test_accounts_that_were_not_customers_in_the_month_are_left_out(
        self, sqlite_url: str, sqlite_sessions: Sessions, tmp_path: Path
    ) -> None:
        await seed_account(sqlite_sessions, "acme")  # first seen 2026-09-30
        async with sqlite_sessions() as s, s.begin():
            s.add(Account(account_id="later", name="Later", first_seen=date(2026, 11, 3)))
            s.add(Account(account_id="never", name="Imported, never seen"))
            s.add(Account(account_id="gone", name="Gone", created_at=date(2025, 1, 1)))
            s.add(Account(account_id="leaving", name="Leaving", created_at=date(2025, 1, 1)))
            for aid, day in (("gone", date(2026, 9, 15)), ("leaving", date(2026, 10, 20))):
                s.add(Outcome(account_id=aid, kind="cancellation", effective_on=day, source="api"))
        out = tmp_path / "out"
        env = {"TEND_DATABASE_URL": sqlite_url, "TEND_CONFIG": None}
        result = await invoke(["report", "--month", "2026-10", "--out", str(out)], env)
        assert result.exit_code == 0, result.output
        assert sorted(p.name.split("-")[0] for p in out.iterdir()) == ["acme", "leaving"]
        assert "Skipped 3 account(s) that were not customers in 2026-10" in result.output
        assert "gone, later, never" in result.output


def page_image(pdf: bytes, tmp_path: Path, dpi: int = 40) -> tuple[int, int, bytes]:
    """The PDF's first page as 8-bit grey pixels (pdftoppm): width, height, pixels."""
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-gray", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    [pgm] = tmp_path.glob("p*.pgm")
    data = pgm.read_bytes()
    magic, width, height, depth, pixels = data.split(maxsplit=4)
    assert (magic, depth) == (b"P5", b"255")
    return int(width), int(height), pixels


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) missing")
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium missing")
class TestSend:
    async def test_each_customer_gets_the_report_and_its_pdf_with_the_csm_in_copy(
        self, sqlite_url: str, sqlite_sessions: Sessions, tmp_path: Path
    ) -> None:
        await seed_account(sqlite_sessions, "acme")
        await seed_account(sqlite_sessions, "globex", name="Globex")  # no contacts
        async with sqlite_sessions() as s, s.begin():
            acme = await s.get(Account, "acme")
            assert acme is not None
            acme.customer_emails = ["ops@acme.example", "cfo@acme.example"]
        config = tmp_path / "tend.yaml"
        config.write_text(
            "feature_catalog:\n"
            "  Report Exported: {feature: reports, label: Exported reports,"
            " minutes_saved_per_use: 30}\n"
            "key_features: [reports, dashboards]\n"
        )
        server = SmtpServer().start()
        try:
            env = {
                "TEND_DATABASE_URL": sqlite_url,
                "TEND_CONFIG": str(config),
                "TEND_SMTP_HOST": "127.0.0.1",
                "TEND_SMTP_PORT": str(server.port),
                "TEND_SMTP_TLS": "none",
                "TEND_SMTP_FROM": "tend <reports@vendor.example>",
            }
            args = ["report", "--month", "2026-10", "--send", "--out", str(tmp_path / "r")]
            result = await invoke(args, env)
            mails = server.messages
        finally:
            server.stop()
        assert result.exit_code == 0, result.output
        assert "Emailed 1 report(s) to the customers, the CSMs in copy." in result.output
        assert "Not emailed (no customer_emails): globex" in result.output
        [mail] = mails
        assert sorted(mail.rcpt_tos) == [
            "cfo@acme.example",
            "csm-acme@vendor.example",
            "ops@acme.example",
        ]
        msg = email.message_from_bytes(mail.message.as_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        assert msg["To"] == "ops@acme.example, cfo@acme.example"
        assert (msg["Cc"], msg["Reply-To"]) == (
            "csm-acme@vendor.example",
            "csm-acme@vendor.example",
        )
        text = msg.get_body(("plain",))
        assert text is not None
        words = text.get_content()
        # 2 uses x 30 minutes; 50 uses in September
        assert "About 1 hour saved with Exported reports (25 hours the month before)." in words
        assert "The full report is attached as PDF and as HTML." in words
        html_part = msg.get_body(("html",))
        assert html_part is not None and "Exported reports (key)" in html_part.get_content()
        attached = {p.get_content_type(): p for p in msg.iter_attachments()}
        assert attached["application/pdf"].get_filename() == "acme-2026-10.pdf"
        pdf = attached["application/pdf"].get_content()
        assert pdf.startswith(b"%PDF")
        width, height, pixels = page_image(pdf, tmp_path)
        # A4 (210 x 297 mm, the page's @page size) at 40 dpi.
        assert (abs(width - 331), abs(height - 468)) <= (1, 1)
        inked = sum(1 for p in pixels if p < 200) / len(pixels)
        assert 0.01 < inked < 0.5, inked  # words and a chart on white, neither blank nor black

    async def test_send_needs_smtp_and_excludes_email(self, sqlite_url: str) -> None:
        env = {"TEND_DATABASE_URL": sqlite_url, "TEND_CONFIG": None, "TEND_SMTP_HOST": ""}
        no_smtp = await invoke(["report", "--month", "2026-10", "--send"], env)
        assert no_smtp.exit_code == 2 and "TEND_SMTP_HOST" in no_smtp.output
        both = await invoke(["report", "--month", "2026-10", "--send", "--email"], env)
        assert both.exit_code == 2 and "not both" in both.output
