"""Real loopback servers for delivery tests: HTTP servers standing in for Slack's incoming
webhooks (and ``response_url``) and for its Web API, and an aiosmtpd SMTP server. All record
what they receive and answer from a script (one scripted answer per call, then the default)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from services.alerts.notifiers.base import Notification

__all__ = [
    "ReceivedMail",
    "RecordedRequest",
    "Reply",
    "SlackApiServer",
    "SlackWebhookServer",
    "SmtpServer",
    "WebhookReceiver",
    "create_notification",
    "create_self_signed_cert",
]


# -- Slack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer; ``delay_s`` waits before answering (a slow Slack)."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str = "text/plain"

    @classmethod
    def api(cls, status: int = 200, **body: Any) -> Reply:
        """A Web API answer: ``Reply.api(ok=False, error="channel_not_found")``."""
        return cls(status, json.dumps(body), content_type="application/json")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request had been read (for latency benchmarks)."""

    def json(self) -> Any:
        return json.loads(self.body)


class SlackWebhookServer:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                reply = server._next(
                    RecordedRequest("POST", self.path, dict(self.headers.items()), body)
                )
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else self.default_reply(request)

    def default_reply(self, request: RecordedRequest) -> Reply:
        return Reply()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def url(self, path: str = "/services/T000/B000/secretsecret") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class SlackApiServer(SlackWebhookServer):
    """Slack's Web API on 127.0.0.1: ``chat.postMessage`` answers ``ok`` with the channel it
    was given and a new ``ts`` (unless scripted); :meth:`api_url` is the base URL to use."""

    def __init__(self) -> None:
        super().__init__()
        self._posted = 0

    def default_reply(self, request: RecordedRequest) -> Reply:
        self._posted += 1
        channel = request.json().get("channel") if request.body else None
        return Reply.api(ok=True, channel=channel, ts=f"1764583200.{self._posted:06d}")

    def reset(self) -> None:
        super().reset()
        self._posted = 0

    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


class WebhookReceiver(SlackWebhookServer):
    """A loopback receiver of tend's outbound webhooks: records every POST, answers 401 to one
    whose ``Tend-Signature`` ``check(header, body)`` refuses, else from the script."""

    def __init__(self) -> None:
        super().__init__()
        self.check: Callable[[str, bytes], bool] | None = None
        self.refused: list[RecordedRequest] = []

    def _next(self, request: RecordedRequest) -> Reply:
        check = self.check
        if check is not None and not check(request.headers.get("Tend-Signature", ""), request.body):
            with self._lock:
                self.requests.append(request)
                self.refused.append(request)
            return Reply(401, "bad signature")
        return super()._next(request)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.refused.clear()
        self.check = None


# -- SMTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.data_script: deque[str] = deque()
        self.rcpt_script: deque[str] = deque()
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            answer = self.rcpt_script.popleft() if self.rcpt_script else "250 OK"
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            answer = self.data_script.popleft() if self.data_script else "250 Message accepted"
            if answer.startswith("250"):
                content = envelope.original_content or b""
                self.messages.append(
                    ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), content)
                )
        return answer


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def create_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made with the openssl command."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class SmtpServer:
    """An aiosmtpd server on a free 127.0.0.1 port that keeps accepted mail.

    ``tls``: ``none``, ``starttls`` (required before MAIL) or ``tls`` (implicit, from the first
    byte), with the certificate ``cert`` (see :func:`create_self_signed_cert`). ``users`` turns
    on AUTH (LOGIN/PLAIN) and requires it. ``script_data("451 4.3.0 Try again later")`` makes
    the next DATA answer 451; ``script_rcpt(...)`` does the same for the next RCPT TO.
    """

    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "tls"] = "none",
        cert: tuple[Path, Path] | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self._handler = _Handler()
        self.port = _free_port()
        kwargs: dict[str, Any] = {}
        if tls != "none":
            if cert is None:
                raise ValueError("TLS needs a certificate")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            if tls == "tls":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if users is not None:
            known = dict(users)

            def authenticate(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and known.get(data.login.decode()) == data.password.decode()
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_required=True)
            # aiosmtpd does not notice an implicit-TLS transport (it only tracks STARTTLS), so
            # it would hide AUTH there; the connection is encrypted either way.
            kwargs["auth_require_tls"] = tls == "starttls"
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._handler.lock:
            return list(self._handler.messages)

    def script_data(self, *answers: str) -> None:
        with self._handler.lock:
            self._handler.data_script.extend(answers)

    def script_rcpt(self, *answers: str) -> None:
        with self._handler.lock:
            self._handler.rcpt_script.extend(answers)

    def reset(self) -> None:
        with self._handler.lock:
            self._handler.messages.clear()
            self._handler.data_script.clear()
            self._handler.rcpt_script.clear()

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


# -- factories --------------------------------------------------------------------------------


def create_notification(**overrides: Any) -> Notification:
    """A login-plateau alert on Acme Corp, yellow at 58; override any field."""
    values: dict[str, Any] = {
        "alert_id": "42",
        "rule": "login_plateau",
        "severity": "warning",
        "kind": "open",
        "as_of": date(2026, 11, 23),
        "account_id": "acme",
        "account_name": "Acme Corp",
        "score": 58.4,
        "band": "yellow",
        "mrr": 4500.0,
        "renewal_date": date(2027, 1, 15),
        "reason": "weekly actives 41, 40, 42, 41 over 4 weeks; 33% of 120 seats active",
        "next_step": "Book an adoption review with the admin; offer onboarding for idle seats.",
        "console_url": "http://tend.example.com/accounts/acme",
        "csm_name": "Jane Doe",
        "csm_email": "jane@vendor.example.com",
    }
    values.update(overrides)
    return Notification(**values)
