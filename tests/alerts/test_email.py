"""EmailNotifier against real aiosmtpd servers on 127.0.0.1 (plain, STARTTLS, implicit TLS)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.alerts.notifiers.base import DeliveryResult, Notification
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings, TlsMode
from tests.support.servers import (
    SmtpServer,
    _free_port,
    create_notification,
    create_self_signed_cert,
)

FROM = "tend <alerts@tend.example.com>"
CSM = "jane@vendor.example.com"


def create_settings(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "from_address": FROM,
        "tls": "none",
        "timeout_s": 5,
    }
    values.update(overrides)
    return SmtpSettings(**values)


@pytest.fixture
def notifier(smtp: SmtpServer) -> EmailNotifier:
    return EmailNotifier(create_settings(smtp.port))


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tend_alerts_notifications_total", {"channel": "email", "outcome": outcome}
    )
    return value or 0.0


def _parts(message: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): str(part.get_content())
        for part in message.iter_parts()
        if isinstance(part, EmailMessage)
    }


class TestMime:
    async def test_one_alert_is_a_multipart_alternative_mail(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        result = await notifier.send(create_notification(), CSM)

        assert result.is_delivered
        [mail] = smtp.messages
        assert mail.mail_from == "alerts@tend.example.com"
        assert mail.rcpt_tos == [CSM]
        message = mail.message
        assert message.get_content_type() == "multipart/alternative"
        assert message["Subject"] == "[tend] Acme Corp: login plateau (yellow, 58)"
        assert message["From"] == FROM
        assert message["To"] == CSM
        assert message["Message-ID"] == "<tend.alert.42.open.2026-11-23@tend.example.com>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["X-Tend-Alert-Id"] == "42"
        parts = _parts(message)
        assert list(parts) == ["text/plain", "text/html"]
        for body in parts.values():
            assert "$4,500 MRR" in body
            assert "renews 2027-01-15 (in 53 days)" in body
            assert "weekly actives 41, 40, 42, 41 over 4 weeks; 33% of 120 seats active" in body
            assert "Book an adoption review" in body
            assert "58 (yellow)" in body
        assert "Open in tend: http://tend.example.com/accounts/acme" in parts["text/plain"]
        assert '<a href="http://tend.example.com/accounts/acme">' in parts["text/html"]

    async def test_html_is_escaped_and_text_is_not(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        n = create_notification(
            account_name="R&D <script>alert(1)</script>",
            reason="usage <50% & falling",
            next_step='Ask "why" <now>',
        )
        assert (await notifier.send(n, CSM)).is_delivered

        message = smtp.messages[0].message
        assert message["Subject"] == (
            "[tend] R&D <script>alert(1)</script>: login plateau (yellow, 58)"
        )
        parts = _parts(message)
        html = parts["text/html"]
        assert "<script>" not in html
        assert "R&amp;D &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "usage &lt;50% &amp; falling" in html
        assert "Ask &#34;why&#34; &lt;now&gt;" in html
        assert "usage <50% & falling" in parts["text/plain"]

    async def test_a_newline_in_a_name_cannot_inject_headers(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        n = create_notification(account_name="Acme\r\nBcc: evil@example.com")
        assert (await notifier.send(n, CSM)).is_delivered
        [mail] = smtp.messages
        assert mail.rcpt_tos == [CSM]
        assert mail.message["Bcc"] is None
        assert mail.message["Subject"].startswith("[tend] Acme Bcc: evil@example.com:")

    async def test_non_ascii_names_survive_the_headers(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        n = create_notification(account_name="Müller & Søn GmbH")
        assert (await notifier.send(n, CSM)).is_delivered
        message = smtp.messages[0].message
        assert message["Subject"] == "[tend] Müller & Søn GmbH: login plateau (yellow, 58)"
        assert "Müller &amp; Søn GmbH" in _parts(message)["text/html"]

    async def test_a_resolve_says_so_and_has_no_next_step(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        n = create_notification(kind="resolve", band="green", score=74)
        assert (await notifier.send(n, CSM)).is_delivered
        message = smtp.messages[0].message
        assert message["Subject"] == "[tend] Acme Corp: login plateau resolved (green, 74)"
        assert message["Message-ID"] == "<tend.alert.42.resolve.2026-11-23@tend.example.com>"
        assert all("Next step" not in body for body in _parts(message).values())

    async def test_a_list_of_recipients_gets_one_mail(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        result = await notifier.send(create_notification(), "a@x.example, Bob <b@y.example>")
        assert result.is_delivered
        [mail] = smtp.messages
        assert mail.rcpt_tos == ["a@x.example", "b@y.example"]
        assert mail.message["To"] == "a@x.example, b@y.example"

    @pytest.mark.parametrize("destination", ["", "   ", "not an address"])
    async def test_no_address_fails_permanently(
        self, smtp: SmtpServer, notifier: EmailNotifier, destination: str
    ) -> None:
        result = await notifier.send(create_notification(), destination)
        assert result.is_failed
        assert smtp.messages == []


class TestClassification:
    async def test_451_is_retried_with_backoff_then_succeeds(
        self, smtp: SmtpServer, notifier: EmailNotifier
    ) -> None:
        smtp.script_data("451 4.3.0 Try again later")
        before = _count("retry")

        retried = await notifier.send(create_notification(), CSM)
        assert retried.is_retry
        assert retried.backoff
        assert retried.reason == "SMTP 451 (refused for now)"
        assert retried.delay(2) == 2 * retried.delay(1)
        assert smtp.messages == []
        assert _count("retry") == before + 1

        assert (await notifier.send(create_notification(), CSM)).is_delivered
        assert len(smtp.messages) == 1

    async def test_550_at_data_fails_permanently(
        self, smtp: SmtpServer, notifier: EmailNotifier, caplog: pytest.LogCaptureFixture
    ) -> None:
        smtp.script_data("550 5.7.1 Message rejected")
        before = _count("failed")
        with caplog.at_level(logging.WARNING):
            result = await notifier.send(create_notification(), CSM)
        assert result == DeliveryResult.failed_permanently("SMTP 550 (refused permanently)")
        assert _count("failed") == before + 1
        assert "notification failed permanently channel=email alert_id=42" in caplog.text

    @pytest.mark.parametrize(
        ("answer", "outcome"),
        [("550 5.1.1 No such user", "failed"), ("451 4.3.0 Mailbox busy", "retry")],
    )
    async def test_a_refused_recipient_is_classified_by_its_code(
        self, smtp: SmtpServer, notifier: EmailNotifier, answer: str, outcome: str
    ) -> None:
        smtp.script_rcpt(answer)
        result = await notifier.send(create_notification(), CSM)
        assert result.outcome == outcome
        assert answer.split()[0] in result.reason
        assert smtp.messages == []

    async def test_one_recipient_of_two_refused_is_still_delivered(
        self, smtp: SmtpServer, notifier: EmailNotifier, caplog: pytest.LogCaptureFixture
    ) -> None:
        smtp.script_rcpt("550 5.1.1 No such user", "250 OK")
        with caplog.at_level(logging.WARNING):
            result = await notifier.send(create_notification(), "gone@x.example, b@y.example")
        assert result.is_delivered
        assert [m.rcpt_tos for m in smtp.messages] == [["b@y.example"]]
        assert "some recipients refused" in caplog.text and "gone@x.example" in caplog.text

    async def test_nobody_listening_is_retried(self) -> None:
        notifier = EmailNotifier(create_settings(_free_port(), timeout_s=1))
        result = await notifier.send(create_notification(), CSM)
        assert result.is_retry
        assert result.reason == "connection refused"

    async def test_starttls_required_but_not_offered_fails_permanently(
        self, smtp: SmtpServer
    ) -> None:
        notifier = EmailNotifier(create_settings(smtp.port, tls="starttls"))
        result = await notifier.send(create_notification(), CSM)
        assert result.is_failed
        assert smtp.messages == []


@pytest.mark.integration  # loopback SMTP servers with TLS and AUTH
class TestTlsAndAuth:
    @pytest.fixture(scope="class")
    @classmethod
    def cert(cls, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
        return create_self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))

    @pytest.mark.parametrize("mode", ["starttls", "tls"])
    @pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
    async def test_tls_modes_deliver_with_the_configured_ca(
        self, cert: tuple[Path, Path], mode: TlsMode
    ) -> None:
        server = SmtpServer(tls=mode, cert=cert, users={"tend": "s3cret"}).start()
        try:
            settings = create_settings(
                server.port,
                tls=mode,
                ca_file=str(cert[0]),
                user="tend",
                password=SecretStr("s3cret"),
            )
            result = await EmailNotifier(settings).send(create_notification(), CSM)
            assert result.is_delivered, result.reason
            assert len(server.messages) == 1
        finally:
            server.stop()

    @pytest.mark.parametrize("mode", ["starttls", "tls"])
    async def test_an_untrusted_certificate_fails_permanently(
        self, cert: tuple[Path, Path], mode: TlsMode
    ) -> None:
        server = SmtpServer(tls=mode, cert=cert).start()
        try:
            settings = create_settings(server.port, tls=mode)
            result = await EmailNotifier(settings).send(create_notification(), CSM)
            assert result.is_failed, result.reason
            assert result.reason.startswith("TLS certificate rejected")
            assert server.messages == []
        finally:
            server.stop()

    async def test_a_wrong_password_fails_permanently(self, cert: tuple[Path, Path]) -> None:
        server = SmtpServer(tls="starttls", cert=cert, users={"tend": "s3cret"}).start()
        try:
            settings = create_settings(
                server.port,
                tls="starttls",
                ca_file=str(cert[0]),
                user="tend",
                password=SecretStr("wrong"),
            )
            result = await EmailNotifier(settings).send(create_notification(), CSM)
            assert result.is_failed
            assert result.reason.startswith("SMTP 535")
            assert "wrong" not in result.reason
        finally:
            server.stop()


def _digest_notifications() -> list[Notification]:
    return [
        create_notification(alert_id="1", account_id="small", account_name="Small Co", mrr=900),
        create_notification(alert_id="2", account_id="big", account_name="Big Inc", mrr=25_000),
        create_notification(alert_id="3", account_id="none", account_name="Unknown MRR", mrr=None),
        create_notification(
            alert_id="4", account_id="mid", account_name="Mid LLC", mrr=4_500, rule="dormant"
        ),
        create_notification(
            alert_id="5", account_id="small", account_name="Small Co", mrr=900, rule="dormant"
        ),
        create_notification(
            alert_id="6",
            account_id="grow",
            account_name="Growing Ltd",
            mrr=50_000,
            rule="upsell_seats",
            severity="opportunity",
        ),
        create_notification(
            alert_id="7", account_id="fixed", account_name="Fixed Co", mrr=99_000, kind="resolve"
        ),
    ]


class TestDigest:
    def test_one_mail_orders_accounts_by_mrr_at_risk(self) -> None:
        notifier = EmailNotifier(create_settings(25))
        message = notifier.build_digest(_digest_notifications(), CSM, csm_name="Jane Doe")

        assert message.get_content_type() == "multipart/alternative"
        # 4 accounts at risk: 25,000 + 4,500 + 900 (Small Co once, with two alerts) + unknown.
        assert message["Subject"] == (
            "[tend] Daily digest 2026-11-23: 4 accounts at risk, $30,400 MRR"
        )
        assert message["To"] == CSM
        parts = _parts(message)
        text = parts["text/plain"]
        names = [
            "Big Inc: login plateau",
            "Mid LLC: dormant",
            "Small Co: login plateau",
            "Small Co: dormant",
            "Unknown MRR: login plateau",
            "OPPORTUNITIES",
            "Growing Ltd: upsell seats",
            "RESOLVED",
            "Fixed Co: login plateau resolved",
        ]
        positions = [text.index(name) for name in names]
        assert positions == sorted(positions)
        assert text.startswith("Hello Jane Doe,")
        html = parts["text/html"]
        html_names = ["Big Inc", "Mid LLC", "Small Co", "Unknown MRR", "Growing Ltd", "Fixed Co"]
        html_positions = [html.index(name) for name in html_names]
        assert html_positions == sorted(html_positions)

    @pytest.mark.parametrize("count", [1, 2, 7])
    async def test_the_digest_is_sent_as_one_mail(
        self, smtp: SmtpServer, notifier: EmailNotifier, count: int
    ) -> None:
        result = await notifier.send_digest(_digest_notifications()[:count], CSM)
        assert result.is_delivered
        [mail] = smtp.messages
        assert mail.rcpt_tos == [CSM]
        assert mail.message["Subject"].startswith("[tend] Daily digest 2026-11-23:")

    def test_an_empty_digest_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            EmailNotifier(create_settings(25)).build_digest([], CSM)
