"""shared.smtp against a real aiosmtpd server on 127.0.0.1: what is sent, and how each failure
is told (temporary or not, naming the server, never the password or the server's text)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import SecretStr

from shared.settings import Settings
from shared.smtp import (
    SmtpClient,
    SmtpError,
    SmtpNotConfigured,
    SmtpSettings,
    parse_recipients,
    send_one,
)
from tests.support.servers import SmtpServer, _free_port

pytestmark = pytest.mark.integration

FROM = "tend <reports@vendor.example>"


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


def create_message(to: str, subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = FROM
    msg["To"] = to
    msg.set_content("body\n")
    return msg


class TestSettings:
    def test_from_the_tend_settings(self) -> None:
        settings = Settings(
            smtp_host="mail.example",
            smtp_port=465,
            smtp_tls="tls",
            smtp_user="tend",
            smtp_password=SecretStr("pw"),
            smtp_from=FROM,
            smtp_timeout_s=7.5,
            smtp_ca_file="/etc/ssl/relay.pem",
            smtp_validate_certs=False,
        )
        smtp = SmtpSettings.from_settings(settings)
        assert (smtp.host, smtp.port, smtp.tls, smtp.user) == ("mail.example", 465, "tls", "tend")
        assert (smtp.timeout_s, smtp.ca_file, smtp.validate_certs) == (
            7.5,
            "/etc/ssl/relay.pem",
            False,
        )
        assert smtp.sender == "reports@vendor.example" and smtp.server == "mail.example:465"

    def test_no_host_names_the_setting(self) -> None:
        with pytest.raises(
            SmtpNotConfigured, match=r"^--email needs an SMTP server: set TEND_SMTP_HOST"
        ):
            SmtpSettings.from_settings(Settings(smtp_host=None), purpose="--email")

    def test_recipients_from_a_list_of_addresses(self) -> None:
        assert parse_recipients("a@x.example, Jane <b@y.example>, nobody") == [
            "a@x.example",
            "b@y.example",
        ]
        assert parse_recipients(["a@x.example", "c@z.example"]) == ["a@x.example", "c@z.example"]


class TestSending:
    async def test_several_messages_over_one_connection(self, smtp: SmtpServer) -> None:
        async with SmtpClient(create_settings(smtp.port)) as client:
            for n in range(3):
                refused = await client.send(create_message(f"csm{n}@vendor.example", f"n{n}"))
                assert refused == {}
        assert [m.message["Subject"] for m in smtp.messages] == ["n0", "n1", "n2"]
        assert [m.rcpt_tos for m in smtp.messages] == [[f"csm{n}@vendor.example"] for n in range(3)]
        assert {m.mail_from for m in smtp.messages} == {"reports@vendor.example"}

    async def test_recipients_given_override_the_headers(self, smtp: SmtpServer) -> None:
        await send_one(create_settings(smtp.port), create_message("x@y.example"), ["z@y.example"])
        assert [m.rcpt_tos for m in smtp.messages] == [["z@y.example"]]

    async def test_some_recipients_refused_are_answered(self, smtp: SmtpServer) -> None:
        smtp.script_rcpt("550 5.1.1 no such user")
        refused = await send_one(
            create_settings(smtp.port),
            create_message("a@x.example"),
            ["a@x.example", "b@x.example"],
        )
        assert refused == {"a@x.example": 550}
        assert [m.rcpt_tos for m in smtp.messages] == [["b@x.example"]]


class TestFailures:
    @pytest.mark.parametrize(
        ("answer", "temporary", "reason"),
        [
            ("451 4.3.0 Try again later", True, "SMTP 451 (refused for now)"),
            ("554 5.7.1 Go away secret-server-text", False, "SMTP 554 (refused permanently)"),
        ],
    )
    async def test_a_refused_message(
        self, smtp: SmtpServer, answer: str, temporary: bool, reason: str
    ) -> None:
        smtp.script_data(answer)
        with pytest.raises(SmtpError) as caught:
            await send_one(create_settings(smtp.port), create_message("a@x.example"))
        err = caught.value
        assert (err.temporary, err.reason, err.code) == (temporary, reason, int(answer[:3]))
        assert str(err) == f"SMTP server 127.0.0.1:{smtp.port}: {reason}"
        assert "secret-server-text" not in str(err)

    async def test_every_recipient_refused(self, smtp: SmtpServer) -> None:
        smtp.script_rcpt("550 5.1.1 no such user")
        with pytest.raises(SmtpError) as caught:
            await send_one(create_settings(smtp.port), create_message("a@x.example"))
        assert not caught.value.temporary
        assert caught.value.reason == "recipients refused: a@x.example: SMTP 550"

    async def test_nobody_listening_is_temporary(self) -> None:
        port = _free_port()
        with pytest.raises(SmtpError) as caught:
            await send_one(create_settings(port, timeout_s=2), create_message("a@x.example"))
        assert caught.value.temporary and caught.value.reason == "connection refused"
        assert str(caught.value).startswith(f"SMTP server 127.0.0.1:{port}: ")

    async def test_starttls_asked_but_not_offered_sends_nothing(self, smtp: SmtpServer) -> None:
        settings = create_settings(
            smtp.port, tls="starttls", user="tend", password=SecretStr("hunter2")
        )
        with pytest.raises(SmtpError) as caught:
            async with SmtpClient(settings):
                pass  # pragma: no cover - entering fails
        assert not caught.value.temporary
        assert "does not offer STARTTLS" in caught.value.reason
        assert "hunter2" not in str(caught.value)
        assert smtp.messages == []
