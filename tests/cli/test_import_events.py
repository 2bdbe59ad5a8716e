"""``tend import-events``: an archive lands exactly as the same calls sent over HTTP."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner, Result

from services.cli import main
from shared import topics
from shared.events import CanonicalEvent
from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp, new_write_key
from tests.support.process import ServiceProcess

ROLLUPS = {
    "account_days": "account_id, day, events, logins, active_users",
    "user_days": "account_id, user_id, day, events, logins",
    "feature_days": "account_id, feature, day, uses, users",
    "feature_user_days": "account_id, feature, user_id, day, uses",
}
DEADLINE_S = 120.0
"""Safety net so a stuck pipeline fails the test instead of hanging it; never an assertion."""


def create_calls(n: int = 120) -> list[dict[str, Any]]:
    """Group calls, then track calls that name their account or rely on the user's group
    call, an identify, spread over a few past days."""
    base = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    calls: list[dict[str, Any]] = [
        {
            "type": "group",
            "userId": f"u{u}",
            "groupId": f"acme-{u % 3}",
            "messageId": f"g{u}",
            "timestamp": (base - timedelta(days=5)).isoformat(),
        }
        for u in range(6)
    ]
    for i in range(n):
        call: dict[str, Any] = {
            "type": "track",
            "userId": f"u{i % 6}",
            "event": "Signed In" if i % 5 == 0 else "Report Exported",
            "messageId": str(uuid.UUID(int=i)),
            "timestamp": (base - timedelta(days=i % 4, minutes=i)).isoformat(),
            "properties": {"format": "csv", "feature": "reports"},
        }
        if i % 2:
            call["context"] = {"groupId": f"acme-{i % 3}"}
        calls.append(call)
    identify = {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}}
    calls.append({**identify, "messageId": "identify-1", "timestamp": base.isoformat()})
    return calls


def write_archive(path: Path, lines: list[str], *, compress: bool) -> Path:
    text = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if compress else text)
    return path


def import_file(path: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(
        main, ["import-events", str(path), *args], env=env, catch_exceptions=False
    )


def sqlite_env(db: Path) -> dict[str, str]:
    return {"TEND_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "TEND_KAFKA_BOOTSTRAP": ""}


def migrate(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["migrate"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def rollups(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {
            table: sorted(conn.execute(f"SELECT {columns} FROM {table}"))
            for table, columns in ROLLUPS.items()
        }


def consumed(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets "
            "WHERE group_id = 'tend-scorer' AND topic = ?",
            (topics.EVENTS,),
        ).fetchone()
    return int(row[0])


def run_up_until_consumed(
    db: Path, tmp: Path, expected: int, send: Callable[[str], None] | None = None
) -> None:
    """``tend up`` on ``db``; ``send(url)`` once it is ready; stop when the scorer stored
    offsets for ``expected`` records."""
    env = {**sqlite_env(db), "TEND_API_TOKEN": "import-events-test-token-0123456789abcd"}
    up = ServiceProcess("up", env, tmp)
    up.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            up.alive()
            try:
                if httpx.get(f"{up.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, up.tail()
            time.sleep(0.1)
        if send is not None:
            send(up.url)
        while consumed(db) < expected:
            up.alive()
            assert time.monotonic() < deadline, up.tail()
            time.sleep(0.2)
        up.terminate()
    finally:
        up.cleanup()


@pytest.mark.e2e
class TestThroughTendUp:
    @pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
    def test_rollups_equal_the_same_calls_over_http(self, tmp_path: Path, compress: bool) -> None:
        calls = create_calls()
        archive = write_archive(
            tmp_path / "events.jsonl", [json.dumps(c) for c in calls], compress=compress
        )

        imported = tmp_path / "imported.db"
        migrate(sqlite_env(imported))
        result = import_file(archive, sqlite_env(imported))
        assert result.exit_code == 0, result.output
        assert f"Imported {len(calls)} event(s)" in result.output
        run_up_until_consumed(imported, tmp_path, len(calls))

        sent = tmp_path / "sent.db"
        migrate(sqlite_env(sent))
        _, key = asyncio.run(new_write_key(f"sqlite+aiosqlite:///{sent}"))

        def send(url: str) -> None:
            r = httpx.post(f"{url}/v1/batch", json={"batch": calls}, auth=(key, ""), timeout=30)
            assert r.status_code == 200 and r.json()["accepted"] == len(calls), r.text

        run_up_until_consumed(sent, tmp_path, len(calls), send)

        expected = rollups(sent)
        assert expected["account_days"] and expected["feature_user_days"]
        assert rollups(imported) == expected


async def topic_events(bootstrap: str) -> list[CanonicalEvent]:
    consumer = AIOKafkaConsumer(
        topics.EVENTS, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    events: list[CanonicalEvent] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                return events
            for records in batch.values():
                events.extend(CanonicalEvent.from_bytes(r.value) for r in records)
    finally:
        await consumer.stop()


def comparable(event: CanonicalEvent) -> dict[str, Any]:
    """All a scorer reads of an event, i.e. without when and through which key it arrived."""
    return event.model_dump(exclude={"received_at", "write_key_id"})


@pytest.mark.integration
class TestThroughTansu:
    def test_plain_and_gzip_archives_publish_what_http_publishes(
        self,
        tmp_path: Path,
        own_broker: TansuBroker,
        pg_url: str,
        write_key: str,
        serve_ingest: Callable[..., ServedApp],
    ) -> None:
        calls = create_calls(60)
        env = {"TEND_DATABASE_URL": pg_url, "TEND_KAFKA_BOOTSTRAP": own_broker.bootstrap}
        served = serve_ingest(own_broker.bootstrap)
        batch = {"batch": calls}
        r = httpx.post(f"{served.url}/v1/batch", json=batch, auth=(write_key, ""), timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == len(calls), r.text
        lines = [json.dumps(c) for c in calls]
        for compress in (False, True):
            archive = write_archive(tmp_path / f"a{compress}.jsonl", lines, compress=compress)
            result = import_file(archive, env)
            assert result.exit_code == 0, result.output

        by_id: dict[str, list[dict[str, Any]]] = {}
        for event in asyncio.run(topic_events(own_broker.bootstrap)):
            by_id.setdefault(event.event_id, []).append(comparable(event))
        assert len(by_id) == len(calls)
        for versions in by_id.values():
            # HTTP, the plain archive, the gzip archive: one event, three identical copies.
            assert len(versions) == 3
            assert versions[1] == versions[0] and versions[2] == versions[0]


@pytest.mark.integration
class TestRefusedLines:
    def test_bad_lines_are_reported_by_number_and_field_and_the_rest_imported(
        self, tmp_path: Path
    ) -> None:
        db = tmp_path / "tend.db"
        env = sqlite_env(db)
        migrate(env)
        good = [json.dumps(c) for c in create_calls(10)]
        lines = [
            *good[:2],
            "{not json",  # line 3
            json.dumps({"type": "track", "userId": "u1", "groupId": "acme-1"}),  # 4: no event
            "",  # 5: blank lines are skipped, not refused
            json.dumps({"type": "track", "userId": "nobody", "event": "X"}),  # 6: no account
            json.dumps(
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "X",
                    "groupId": "a",
                    "timestamp": "yesterday",
                }
            ),  # 7
            "[1, 2]",  # 8
            *good[2:],
        ]
        archive = write_archive(tmp_path / "bad.jsonl", lines, compress=False)

        result = import_file(archive, env)
        assert result.exit_code == 1
        out = result.output
        assert "line 3: event: malformed JSON" in out
        assert "line 4: event: " in out and "(field event)" in out
        assert "line 6: no account for this event" in out
        assert "line 7: timestamp: " in out and "(field timestamp)" in out
        assert "line 8: event: must be a JSON object" in out
        assert "line 5" not in out
        assert f"Imported {len(good)} event(s)" in out
        assert "refused 5 line(s)" in out

        again = import_file(archive, env, "--max-errors", "5")
        assert again.exit_code == 0, again.output


@pytest.mark.integration
class TestBusDown:
    def test_an_unreachable_broker_fails_with_a_clear_error(
        self, tmp_path: Path, stopped_broker: TansuBroker, pg_url: str
    ) -> None:
        env = {
            "TEND_DATABASE_URL": pg_url,
            "TEND_KAFKA_BOOTSTRAP": stopped_broker.bootstrap,
            "TEND_INGEST__PRODUCE_TIMEOUT_S": "2",
        }
        archive = write_archive(
            tmp_path / "e.jsonl", [json.dumps(c) for c in create_calls(5)], compress=False
        )
        result = import_file(archive, env)
        assert result.exit_code == 1
        assert "the bus failed" in result.output
        assert "importing the file again is safe" in result.output
