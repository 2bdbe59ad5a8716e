"""Process logs: text or JSON lines with service, level, event and ids (issue 11), secrets
masked in both, and broker-outage logs rate-limited to one line per kind per interval (issue 9).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from shared.db.keys import generate_key
from shared.logging import (
    RepeatFilter,
    SecretMask,
    log_handler,
    resolve_format,
    secrets_of,
    setup_logging,
)
from shared.redact import MASK
from shared.request_id import RequestIdMiddleware
from shared.settings import Settings
from tests.support.broker import TansuBroker, free_port

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.unit
class TestRepeatFilter:
    def test_one_per_kind_per_interval_then_the_count(self) -> None:
        clock = Clock()
        f = RepeatFilter(interval_s=30, clock=clock)
        unable = "Unable connect to node with id %s: %s"
        assert f.filter(record("aiokafka", unable, 0, "refused"))
        # The same kind with other arguments, within the interval: suppressed.
        assert not any(f.filter(record("aiokafka", unable, n, "refused")) for n in range(50))
        clock.now += 29.9
        assert not f.filter(record("aiokafka", unable, 1, "refused"))
        clock.now += 0.1
        after = record("aiokafka", unable, 2, "refused")
        assert f.filter(after)
        assert after.getMessage() == (
            "Unable connect to node with id 2: refused (51 more like this in the last 30s not "
            "logged)"
        )
        clock.now += 30
        quiet = record("aiokafka", unable, 3, "refused")
        assert f.filter(quiet) and quiet.getMessage() == "Unable connect to node with id 3: refused"

    def test_kinds_are_logger_level_and_template(self) -> None:
        f = RepeatFilter(clock=Clock())
        assert f.filter(record("aiokafka", "Unable to update metadata from %s", 0))
        assert f.filter(record("aiokafka.consumer.fetcher", "Unable to update metadata from %s", 0))
        assert f.filter(
            record("aiokafka", "Unable to update metadata from %s", 0, level=logging.WARNING)
        )
        assert f.filter(record("aiokafka", "Failed fetch messages from %s: %s", 0, "x"))
        assert not f.filter(record("aiokafka", "Unable to update metadata from %s", 1))

    @pytest.mark.parametrize("name", ["tend.scorer", "aiokafkax", "root", "uvicorn.error"])
    def test_other_loggers_always_pass(self, name: str) -> None:
        f = RepeatFilter(clock=Clock())
        assert all(f.filter(record(name, "same %s", n)) for n in range(20))

    def test_the_process_handler_has_it(self) -> None:
        handler = log_handler(open("/dev/null", "w"))  # noqa: SIM115
        try:
            assert any(isinstance(f, RepeatFilter) for f in handler.filters)
        finally:
            handler.stream.close()


@contextlib.contextmanager
def aiokafka_handlers(*handlers: logging.Handler) -> Iterator[None]:
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.WARNING)
    for h in handlers:
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
        logger.setLevel(level)


@contextlib.asynccontextmanager
async def clients_of_a_dead_broker() -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """A producer and a consumer in a group, connected, whose broker then stops: its port
    is closed, as when Kafka is down. The broker is back when the block ends."""
    broker = TansuBroker()
    broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    # No auto commit: with the group's state gone with the broker's memory, the commit at
    # stop would wait for a coordinator that no longer knows the group.
    consumer = AIOKafkaConsumer(
        "outage", bootstrap_servers=broker.bootstrap, group_id="outage", enable_auto_commit=False
    )
    try:
        await producer.start()
        await producer.send_and_wait("outage", b"before")
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)
        broker.stop()
        yield producer, consumer
        # Back up before the clients stop: stopping flushes and commits, which would wait.
        broker.start()
        await producer.stop()
        await consumer.stop()
    finally:
        broker.stop()


@pytest.mark.integration
class TestBrokerOutage:
    async def test_aiokafka_errors_are_one_line_per_kind(self) -> None:
        raw, logged = Collect(), Collect()
        logged.addFilter(RepeatFilter(interval_s=3600))
        with aiokafka_handlers(raw, logged):
            async with clients_of_a_dead_broker() as (producer, consumer):
                # Until aiokafka has logged plenty (it logs about 120 lines a second).
                for _ in range(600):
                    if len(raw.records) >= 200:
                        break
                    await consumer.getmany(timeout_ms=100)
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(0.1):
                            await producer.send_and_wait("outage", b"during")
        kinds = collections.Counter((r.name, r.levelno, str(r.msg)) for r in raw.records)
        assert len(raw.records) >= 200, kinds
        assert [(r.name, r.levelno, str(r.msg)) for r in logged.records] == list(kinds)
        assert len(logged.records) <= 12, kinds


# -- formats and secrets (issue 11) -----------------------------------------------------------

API_TOKEN = "4f1c0d6e9b2a47c8a1e3f5d7b9c0e2a4"
SMTP_PASSWORD = "hunter2-smtp-pass"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T0AAA/B0BBB/xoxWEBHOOKsecret"
SLACK_SECRET_PART = "xoxWEBHOOKsecret"


@contextlib.contextmanager
def capture(
    fmt: str = "json",
    *,
    service: str = "scorer",
    secrets: tuple[str, ...] = (),
    name: str | None = None,
) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger (``name``) writing through the process handler (``fmt``) into a string."""
    stream = io.StringIO()
    handler = log_handler(
        stream,
        fmt="json" if fmt == "json" else "text",
        service=service,
        mask=SecretMask(secrets),
    )
    logger = logging.getLogger(name or f"tend.test.{fmt}")
    propagate, level = logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.unit
class TestJsonLines:
    def test_a_line_carries_service_level_event_and_ids(self) -> None:
        with capture() as (log, stream):
            log.info(
                "flushed %d records",
                3,
                extra={"account_id": "acme", "topic": "tend.events", "partition": 2, "offset": 41},
            )
        [line] = json_lines(stream.getvalue())
        ts = datetime.fromisoformat(line.pop("ts"))
        assert ts.tzinfo is not None and ts.utcoffset() == UTC.utcoffset(ts)
        assert abs((datetime.now(UTC) - ts).total_seconds()) < 60
        assert line == {
            "level": "INFO",
            "service": "scorer",
            "logger": "tend.test.json",
            "event": "flushed 3 records",
            "account_id": "acme",
            "topic": "tend.events",
            "partition": 2,
            "offset": 41,
        }

    def test_the_exception_comes_with_its_line(self) -> None:
        with capture() as (log, stream):
            empty: dict[str, int] = {}
            try:
                empty["missing"]
            except KeyError:
                log.exception("batch failed", extra={"alert_id": 7})
        [line] = json_lines(stream.getvalue())
        assert (line["level"], line["event"], line["alert_id"]) == ("ERROR", "batch failed", 7)
        assert line["exc"].startswith("Traceback (most recent call last):")
        assert line["exc"].rstrip().endswith("KeyError: 'missing'")

    def test_one_line_a_record_whatever_the_values(self) -> None:
        with capture() as (log, stream):
            log.warning("two\nlines", extra={"as_of": date(2026, 11, 1), "tags": ("a", "b")})
            log.warning("ünïcode …")
        first, second = json_lines(stream.getvalue())
        assert first["event"] == "two\nlines"
        assert (first["as_of"], first["tags"]) == ("2026-11-01", ["a", "b"])
        assert second["event"] == "ünïcode …"

    def test_an_access_line_has_method_path_and_status(self) -> None:
        with capture(service="web", name="uvicorn.access") as (access, stream):
            access.info(
                '%s - "%s %s HTTP/%s" %d',
                "127.0.0.1:5000",
                "GET",
                f"/v1/accounts?token={API_TOKEN}",
                "1.1",
                200,
            )
        [line] = json_lines(stream.getvalue())
        assert (line["method"], line["path"], line["status"]) == (
            "GET",
            "/v1/accounts?token=…",
            200,
        )
        assert API_TOKEN not in stream.getvalue()

    def test_an_id_never_hides_a_field_of_the_line(self) -> None:
        with capture(service="alerts") as (log, stream):
            log.info("sent", extra={"service": "slack", "event_id": "m-1"})
        [line] = json_lines(stream.getvalue())
        assert (line["service"], line["extra_service"]) == ("alerts", "slack")
        assert (line["event"], line["event_id"]) == ("sent", "m-1")


def request_id_app(log: logging.Logger) -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        log.info("handling %s", request.url.path, extra={"account_id": "acme"})
        return PlainTextResponse("hi")

    return Starlette(routes=[Route("/hello", hello)], middleware=[Middleware(RequestIdMiddleware)])


@pytest.mark.unit
class TestRequestIds:
    async def test_every_line_of_a_request_carries_its_id(self) -> None:
        with capture(service="ingest") as (log, stream):
            transport = httpx.ASGITransport(app=request_id_app(log))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = await client.get("/hello")
                second = await client.get("/hello")
            log.info("outside any request")
        one, two, outside = json_lines(stream.getvalue())
        assert one["request_id"] == first.headers["X-Request-ID"]
        assert two["request_id"] == second.headers["X-Request-ID"]
        assert one["request_id"] != two["request_id"] and one["account_id"] == "acme"
        assert "request_id" not in outside

    async def test_an_app_mounted_in_another_keeps_the_outer_id(self) -> None:
        with capture() as (log, stream):
            outer = Starlette(
                routes=[Mount("/inner", request_id_app(log))],
                middleware=[Middleware(RequestIdMiddleware)],
            )
            transport = httpx.ASGITransport(app=outer)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answer = await client.get("/inner/hello")
        [line] = json_lines(stream.getvalue())
        assert line["request_id"] == answer.headers["X-Request-ID"]
        assert answer.headers.get_list("X-Request-ID") == [line["request_id"]]

    @pytest.mark.parametrize(
        ("given", "kept"),
        [("req-7f3a.1:x", True), ("", False), ("x" * 129, False), ("a b", False), ("a/b", False)],
    )
    async def test_a_sane_client_id_is_kept(self, given: str, kept: bool) -> None:
        with capture() as (log, stream):
            transport = httpx.ASGITransport(app=request_id_app(log))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answer = await client.get("/hello", headers={"X-Request-ID": given})
        [line] = json_lines(stream.getvalue())
        assert line["request_id"] == answer.headers["X-Request-ID"]
        assert (answer.headers["X-Request-ID"] == given) is kept
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", answer.headers["X-Request-ID"])


@pytest.mark.unit
class TestTextLines:
    def test_the_line_is_unchanged(self) -> None:
        with capture("text") as (log, stream):
            log.info("flushed %d records", 3, extra={"account_id": "acme", "partition": 2})
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=INFO logger=tend\.test\.text "
            r"flushed 3 records\n",
            stream.getvalue(),
        )


def secret_settings() -> Settings:
    return Settings(
        api_token=API_TOKEN,
        smtp_password=SMTP_PASSWORD,
        slack_webhook_url=SLACK_WEBHOOK,
    )


WRITE_KEY = generate_key()
# (what is logged by mistake, the part of it that must never be shown)
SECRETS = {
    "api token": (API_TOKEN, API_TOKEN),
    "write key": (WRITE_KEY, WRITE_KEY.removeprefix("tend_wk_")),
    "smtp password": (SMTP_PASSWORD, SMTP_PASSWORD),
    "slack webhook": (SLACK_WEBHOOK, SLACK_SECRET_PART),
}


def log_by_mistake(log: logging.Logger, secret: str) -> None:
    """The ways a secret slips into a log line: the message, an argument, an id, a
    secret-named field, a nested value, an exception."""
    log.warning(f"connecting with {secret}")
    log.warning("settings: %r", {"value": secret})
    log.info("sending", extra={"detail": secret, "smtp_password": secret, "pin_password": 4711})
    log.info("request", extra={"headers": {"Authorization": f"Bearer {secret}"}})
    try:
        raise RuntimeError(f"login refused for {secret}")
    except RuntimeError:
        log.exception("delivery failed", extra={"account_id": "acme"})


@pytest.mark.unit
class TestSecretsAreMasked:
    @pytest.mark.parametrize("fmt", ["json", "text"])
    @pytest.mark.parametrize("kind", list(SECRETS))
    def test_a_secret_logged_by_mistake(self, kind: str, fmt: str) -> None:
        logged, hidden = SECRETS[kind]
        with capture(fmt, secrets=tuple(secrets_of(secret_settings()))) as (log, stream):
            log_by_mistake(log, logged)
        text = stream.getvalue()
        assert hidden not in text
        # Text lines show no ids: the message, the argument and the traceback.
        assert text.count(MASK) >= (6 if fmt == "json" else 3), text
        if fmt == "json":
            lines = json_lines(text)
            assert len(lines) == 5
            assert lines[2]["smtp_password"] == lines[2]["pin_password"] == MASK
            assert lines[4]["account_id"] == "acme" and MASK in lines[4]["exc"]

    def test_the_settings_secrets_are_found_in_nested_blocks_too(self) -> None:
        assert sorted(secrets_of(secret_settings())) == sorted(
            [API_TOKEN, SMTP_PASSWORD, SLACK_WEBHOOK]
        )
        assert secrets_of(Settings(api_token=None)) == []

    @pytest.mark.parametrize(
        ("said", "shown"),
        [
            ("smtp login password=pa55word!x failed", "smtp login password=… failed"),
            ('{"api_token": "abc123", "key_id": 7}', '{"api_token": "…", "key_id": 7}'),
            ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer …"),
            ("curl -H 'authorization: Basic dXNlcjpwYXNz'", "curl -H 'authorization: Basic …'"),
            ("writeKey=wk-1&event=x", "writeKey=…&event=x"),
            ("Bearer sk-0123456789abcdef", "Bearer …"),
            (
                "db postgresql+asyncpg://tend:s3cretpw@db:5432/tend",
                "db postgresql+asyncpg://db:5432/tend/…",
            ),
            (
                "key_id=7 account_id=acme partition=2 offset=41",
                "key_id=7 account_id=acme partition=2 offset=41",
            ),
            ("46 passed=46 tokens=3 bypass", "46 passed=46 tokens=3 bypass"),
            ("PASSWORD: hunter2 and İstanbul token=abc", "PASSWORD: … and İstanbul token=…"),
            (
                "TEND_API_TOKEN must be at least 32 characters",
                "TEND_API_TOKEN must be at least 32 characters",
            ),
        ],
    )
    def test_secret_fields_in_free_text(self, said: str, shown: str) -> None:
        assert SecretMask().text(said) == shown


@pytest.mark.unit
class TestFormatChoice:
    class Stream(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    @pytest.mark.parametrize(
        ("fmt", "env", "tty", "chosen"),
        [
            ("auto", None, True, "text"),
            ("auto", None, False, "json"),
            (None, None, True, "text"),
            (None, None, False, "json"),
            (None, "text", False, "text"),
            (None, "json", True, "json"),
            ("text", "json", False, "text"),
        ],
    )
    def test_auto_is_text_on_a_terminal_only(
        self,
        monkeypatch: pytest.MonkeyPatch,
        fmt: str | None,
        env: str | None,
        tty: bool,
        chosen: str,
    ) -> None:
        if env is None:
            monkeypatch.delenv("TEND_LOG_FORMAT", raising=False)
        else:
            monkeypatch.setenv("TEND_LOG_FORMAT", env)
        assert resolve_format(fmt, self.Stream(tty)) == chosen

    def test_a_bad_format_names_the_setting(self) -> None:
        with pytest.raises(ValueError, match="TEND_LOG_FORMAT must be one of text, json, auto"):
            resolve_format("yaml", self.Stream(False))
        with pytest.raises(ValueError, match="log_format"):
            Settings(log_format="yaml")


@pytest.fixture
def root_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The root logger as setup_logging leaves it, put back after; the string the tests set
    as stderr (in the test: pytest swaps sys.stderr between a fixture and its test)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configured = root.__dict__.pop("_tend_handler", None)
    stderr = io.StringIO()
    monkeypatch.delenv("TEND_LOG_FORMAT", raising=False)
    try:
        yield stderr
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        root.__dict__.pop("_tend_handler", None)
        if configured is not None:
            root._tend_handler = configured  # type: ignore[attr-defined]


@pytest.mark.unit
class TestSetupLogging:
    def test_one_handler_whatever_the_calls(
        self, root_logging: io.StringIO, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "stderr", root_logging)
        root = logging.getLogger()
        before = len(root.handlers)
        setup_logging("INFO")  # still callable with the level alone
        setup_logging("INFO", service="scorer", secrets=[API_TOKEN])
        setup_logging("DEBUG")
        assert len(root.handlers) == before + 1 and root.level == logging.DEBUG
        logging.getLogger("tend.test.root").debug("token %s", API_TOKEN, extra={"offset": 3})
        [line] = json_lines(root_logging.getvalue())  # stderr is no terminal: json
        assert (line["service"], line["level"], line["offset"]) == ("scorer", "DEBUG", 3)
        assert line["event"] == f"token {MASK}"

    def test_a_later_format_replaces_the_earlier(
        self, root_logging: io.StringIO, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "stderr", root_logging)
        setup_logging("INFO", service="alerts", fmt="json")
        setup_logging("INFO", fmt="text")
        logging.getLogger("tend.test.root").info("now text")
        assert root_logging.getvalue().endswith(" level=INFO logger=tend.test.root now text\n")


# -- a real tend process -----------------------------------------------------------------------


def tend_env(tmp_path: Path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
    return {
        **clean,
        "TEND_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tend.db'}",
        "PYTHONUNBUFFERED": "1",
        **env,
    }


@pytest.mark.e2e
class TestTendProcess:
    def test_json_lines_from_tend_up(self, tmp_path: Path) -> None:
        port = free_port()
        log_path = tmp_path / "up.log"
        env = tend_env(
            tmp_path,
            TEND_LOG_FORMAT="json",
            TEND_API_TOKEN=API_TOKEN,
            TEND_SMTP_PASSWORD=SMTP_PASSWORD,
            TEND_SLACK_WEBHOOK_URL=SLACK_WEBHOOK,
        )
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services", "up", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            deadline = time.monotonic() + 60
            while "Application startup complete" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
            # A request the access log records, carrying the token in its URL by mistake.
            answer = httpx.get(f"http://127.0.0.1:{port}/healthz?token={API_TOKEN}", timeout=10)
            deadline = time.monotonic() + 10
            while "/healthz" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log_path.read_text()
        lines = json_lines(text)  # every line parses
        assert lines, text
        for line in lines:
            assert {"ts", "level", "service", "logger", "event"} <= line.keys(), line
            assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
            assert line["service"] == "up", line
        events = [line["event"] for line in lines]
        assert any("Application startup complete" in e for e in events), events
        [access] = [line for line in lines if line.get("path", "").startswith("/healthz")]
        assert (access["method"], access["status"]) == ("GET", 200)
        assert access["request_id"] == answer.headers["X-Request-ID"]
        for secret in (API_TOKEN, SMTP_PASSWORD, SLACK_SECRET_PART):
            assert secret not in text

    def test_a_bad_format_stops_the_command_naming_the_variable(self, tmp_path: Path) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "services", "migrate"],
            cwd=tmp_path,
            env=tend_env(tmp_path, TEND_LOG_FORMAT="yaml"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "TEND_LOG_FORMAT" in done.stdout + done.stderr
