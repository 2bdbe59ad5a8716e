"""The one SMTP client of tend (aiosmtplib): alert email and the monthly reports both send here.

Contract:

- :class:`SmtpClient` is an async context manager holding one connection. Entering it connects
  (implicit TLS for ``tls``; for ``starttls`` EHLO, then STARTTLS, refusing to go on when the
  server does not offer it, so credentials never cross in clear), then logs in when a user is
  set. Leaving it says QUIT, and closes the socket if QUIT fails.
- Every failure is raised as :class:`SmtpError`: ``temporary`` tells whether trying again later
  could help (4xx answers, refused connections, timeouts) or not (5xx answers, a certificate
  that does not verify, STARTTLS or AUTH not supported), ``reason`` says what happened in a few
  words that carry the SMTP code but never the server's text or a password.
- :meth:`SmtpClient.send` answers the recipients the server refused (when it accepted at least
  one); when it accepted none it raises.
- :func:`send_one` sends one message over its own connection. Once the server has accepted the
  message (250 after DATA) it counts as sent even if QUIT fails, so a flaky goodbye never sends
  a mail twice.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from types import TracebackType
from typing import Literal, Self

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared.settings import Settings

__all__ = [
    "SmtpClient",
    "SmtpError",
    "SmtpNotConfigured",
    "SmtpSettings",
    "TlsMode",
    "parse_recipients",
    "send_one",
]

TlsMode = Literal["starttls", "tls", "none"]


class SmtpNotConfigured(ValueError):
    """Email was asked for but ``TEND_SMTP_HOST`` is not set."""


class SmtpSettings(BaseModel):
    """Where and how to send mail (``TEND_SMTP_*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    from_address: str = Field(description="The From header, e.g. 'tend <alerts@example.com>'.")
    tls: TlsMode = Field("starttls", description="starttls (port 587), tls (465) or none.")
    timeout_s: float = Field(30.0, gt=0, description="Per SMTP command, connecting included.")
    validate_certs: bool = True
    ca_file: str | None = Field(None, description="Extra CA bundle (a private mail relay).")

    @classmethod
    def from_settings(cls, settings: Settings, *, purpose: str = "email") -> SmtpSettings:
        """The ``TEND_SMTP_*`` settings; :class:`SmtpNotConfigured` naming the setting when
        ``TEND_SMTP_HOST`` is not set (``purpose`` says what needed it, e.g. ``--email``)."""
        if not settings.smtp_host:
            raise SmtpNotConfigured(
                f"{purpose} needs an SMTP server: set TEND_SMTP_HOST (and TEND_SMTP_PORT, "
                "TEND_SMTP_USER, TEND_SMTP_PASSWORD, TEND_SMTP_FROM, TEND_SMTP_TLS as needed)"
            )
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            from_address=settings.smtp_from,
            tls=settings.smtp_tls,
            timeout_s=settings.smtp_timeout_s,
            validate_certs=settings.smtp_validate_certs,
            ca_file=settings.smtp_ca_file,
        )

    @property
    def sender(self) -> str:
        """The envelope sender: the address of ``from_address``."""
        return parseaddr(self.from_address)[1]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


class SmtpError(Exception):
    """A connection, TLS, login or send that failed; ``str()`` names the server and the reason."""

    def __init__(
        self, server: str, reason: str, *, temporary: bool, code: int | None = None
    ) -> None:
        super().__init__(f"SMTP server {server}: {reason}")
        self.server = server
        self.reason = reason
        self.temporary = temporary
        self.code = code


def parse_recipients(destination: str | Sequence[str]) -> list[str]:
    """Addresses from ``"a@x.com, Jane <b@y.com>"`` (or a list of such strings)."""
    fields = [destination] if isinstance(destination, str) else list(destination)
    return [addr for _, addr in getaddresses(fields) if addr and "@" in addr]


class SmtpClient:
    """One SMTP connection (see the module docstring for the contract)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        s = settings
        # STARTTLS and AUTH are done step by step (not by ``connect``) so that a server without
        # STARTTLS is told apart from a broken connection.
        self._smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.tls == "tls",
            start_tls=False,
            validate_certs=s.validate_certs,
            cert_bundle=s.ca_file,
            timeout=s.timeout_s,
        )

    async def __aenter__(self) -> Self:
        s = self.settings
        try:
            await self._smtp.connect()
            await self._smtp.ehlo()
            if s.tls == "starttls":
                if not self._smtp.supports_extension("starttls"):
                    raise self._error(
                        "the server does not offer STARTTLS (TEND_SMTP_TLS is starttls)",
                        temporary=False,
                    )
                await self._smtp.starttls()
            if s.user:
                await self._smtp.login(s.user, s.password.get_secret_value() if s.password else "")
        except SmtpError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise self._classify(exc) from None
        except BaseException:  # cancelled: no await, just drop the socket
            self._smtp.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """QUIT, or drop the socket when QUIT fails; never raises."""
        if not self._smtp.is_connected:
            return
        try:
            await self._smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            self._smtp.close()

    async def send(
        self, message: EmailMessage, recipients: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Send ``message`` (to ``recipients``, else its To/Cc/Bcc headers); answers the
        recipients refused with their SMTP codes. Raises :class:`SmtpError` when the message
        was not accepted for anyone."""
        try:
            refused, _ = await self._smtp.send_message(
                message,
                sender=self.settings.sender,
                recipients=list(recipients) if recipients is not None else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: SMTP {r.code}" for r in exc.recipients)
            temporary = any(400 <= c < 500 for c in codes)
            words = "recipients refused, temporarily" if temporary else "recipients refused"
            raise self._error(f"{words}: {detail}", temporary=temporary) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._classify(exc) from None
        return {addr: r.code for addr, r in refused.items()}

    def _error(self, reason: str, *, temporary: bool, code: int | None = None) -> SmtpError:
        return SmtpError(self.settings.server, reason, temporary=temporary, code=code)

    def _classify(self, exc: BaseException) -> SmtpError:
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            code = exc.code
            # 4xx and anything unexpected may pass; 5xx will not.
            return self._error(_code_reason(code), temporary=not code >= 500, code=code)
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return self._error("not supported by the server (STARTTLS or AUTH)", temporary=False)
        cert_error = _certificate_error(exc)
        if cert_error is not None:
            # A certificate that does not verify is a setting to fix, not a passing fault.
            why = cert_error.verify_message or "does not verify"
            return self._error(f"TLS certificate rejected: {why}", temporary=False)
        if isinstance(exc, aiosmtplib.SMTPException | OSError):
            return self._error(_connection_reason(exc), temporary=True)
        return self._error(f"unexpected error ({type(exc).__name__})", temporary=True)


async def send_one(
    settings: SmtpSettings, message: EmailMessage, recipients: Sequence[str] | None = None
) -> dict[str, int]:
    """One message over its own connection; answers the refused recipients (see
    :meth:`SmtpClient.send`). A failing QUIT after the message was accepted is ignored."""
    async with SmtpClient(settings) as client:
        return await client.send(message, recipients)


def _code_reason(code: int) -> str:
    """``SMTP 550 (refused permanently)``: the code only, never the server's text."""
    if 400 <= code < 500:
        return f"SMTP {code} (refused for now)"
    if code >= 500:
        return f"SMTP {code} (refused permanently)"
    return f"SMTP {code} (unexpected answer)"


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "timeout"
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return "could not connect (SMTPConnectError)"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    return f"connection error ({type(exc).__name__})"


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind ``exc`` (aiosmtplib wraps it when connecting with TLS)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
