"""Webhook URLs are secrets: the one mask, and the log handler every process uses, which masks
them at every level, DEBUG included (libraries log what they are handed)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.alerts.notifiers.slack import SlackNotifier
from shared.accounts_csv import AccountRow, import_accounts
from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from shared.logging import log_handler
from shared.redact import mask_text, mask_url, mask_values
from tests.support.servers import SlackWebhookServer, create_notification

# Plain alphabets rather than ``st.from_regex``: the same values, drawn several times faster.
LOWER = "abcdefghijklmnopqrstuvwxyz"
WORD = LOWER + LOWER.upper() + "0123456789"
hosts = st.builds(
    lambda head, rest, tlds: head + rest + "".join("." + tld for tld in tlds),
    st.sampled_from(LOWER),
    st.text(LOWER + "0123456789-", max_size=20),
    st.lists(st.text(LOWER, min_size=2, max_size=5), max_size=2),
)

SECRET = "B0SECRET/xoxsecretsecretsecret"


@pytest.mark.unit
class TestMask:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            (
                f"https://hooks.slack.com/services/T000/{SECRET}",
                "https://hooks.slack.com/services/…",
            ),
            ("https://hooks.slack.com/services/…", "https://hooks.slack.com/services/…"),
            ("https://u:pw@internal.example/x", "https://internal.example/x/…"),
            ("http://internal.example/?token=abc", "http://internal.example/…"),
            ("http://[::1]:8080/a/b", "http://[::1]:8080/a/…"),
            ("http://127.0.0.1:8000/console/", "http://127.0.0.1:8000/console/"),
            ("https://acme.example", "https://acme.example"),
            ("@dana", "@dana"),
            ("dana@vendor.example", "dana@vendor.example"),
            ("http://h:99999/a/b", "…"),
            ("", ""),
        ],
    )
    def test_keeps_scheme_host_and_first_path_part_only(self, value: str, shown: str) -> None:
        assert mask_url(value) == shown
        assert mask_url(mask_url(value)) == shown

    @settings(max_examples=300, deadline=None)
    @given(
        scheme=st.sampled_from(["http", "https", "HTTPS"]),
        host=hosts,
        first=st.text(WORD + "_-", min_size=1, max_size=12),
        secret=st.text(WORD, min_size=12, max_size=30),
        tail=st.sampled_from(["/{s}", "/x/{s}", "?token={s}", "#{s}", "/{s}/", "/a?b={s}"]),
    )
    def test_nothing_after_the_first_path_part_survives(
        self, scheme: str, host: str, first: str, secret: str, tail: str
    ) -> None:
        assume(secret.lower() not in f"{host}/{first}".lower())
        url = f"{scheme}://{host}/{first}" + tail.format(s=secret)
        shown = mask_url(url)
        assert secret not in shown
        assert shown == f"{scheme.lower()}://{host}/{first}/…"
        assert secret not in mask_text(f"posting {url} failed")

    def test_text_and_nested_values(self) -> None:
        url = f"https://hooks.slack.com/services/T000/{SECRET}"
        assert SECRET not in mask_text(f"posting to {url} failed ('{url}',)")
        masked = mask_values({"a": [url, 3, {"b": url}], "n": None})
        assert masked == {
            "a": [
                "https://hooks.slack.com/services/…",
                3,
                {"b": "https://hooks.slack.com/services/…"},
            ],
            "n": None,
        }


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged, at DEBUG, through the handler ``setup_logging`` installs."""
    stream = io.StringIO()
    handler = log_handler(stream)
    root = logging.getLogger()
    old_level = root.level
    quiet = {name: logging.getLogger(name).level for name in ("aiosqlite", "httpx", "httpcore")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.integration
class TestLogsAtDebug:
    async def test_a_stored_and_posted_webhook_never_reaches_the_log(
        self, debug_log: io.StringIO, tmp_path: object
    ) -> None:
        server = SlackWebhookServer().start()
        try:
            webhook = server.url(f"/services/T000/{SECRET}")
            url = f"sqlite+aiosqlite:///{tmp_path}/redact.db"
            await upgrade_async(url)
            engine = create_engine(url)
            try:
                async with create_sessionmaker(engine)() as session, session.begin():
                    await import_accounts(session, [AccountRow("acme", {"csm_slack": webhook})])
            finally:
                await engine.dispose()
            async with SlackNotifier(min_interval_s=0) as notifier:
                result = await notifier.send(create_notification(), webhook)
            assert result.is_delivered and len(server.requests) == 1
        finally:
            server.stop()
        text = debug_log.getvalue()
        # aiosqlite logs statement parameters and httpx the request URL: both were logged...
        assert "executing" in text and "HTTP Request: POST" in text
        assert f"http://127.0.0.1:{server.port}/services/…" in text
        # ...and neither carries the secret part.
        assert "B0SECRET" not in text and "xoxsecret" not in text
