"""``tend tail``: the newest events counted, oldest first, and with ``--follow`` each new one as
it arrives; Ctrl-C ends it with exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.scorer.writer import RollupWriter
from shared.db.keys import create_key
from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from tests.cli.test_cli import CLEAN_ENV, KEY_RE, UpProcess, invoke, wait_for_health
from tests.support.broker import free_port
from tests.support.events import create_event

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def seed(db_path: Path) -> str:
    """Three events of acme (the last with a key), one of globex; returns the key."""
    url = f"sqlite+aiosqlite:///{db_path}"
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            key, plaintext = await create_key(session, "web app")
            events = [
                create_event(
                    f"e{i}", account_id="acme", name=f"Step {i}", at=START.isoformat()
                ).model_copy(update={"received_at": START + timedelta(minutes=i)})
                for i in range(3)
            ]
            events[-1] = events[-1].model_copy(update={"write_key_id": key.id})
            events.append(create_event("g1", account_id="globex", user_id="g-7", name="Login"))
            await RollupWriter().flush(session, "tail-test", events, {})
        return plaintext
    finally:
        await engine.dispose()


@pytest.mark.integration
class TestOnce:
    def test_newest_events_oldest_first(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        plaintext = asyncio.run(seed(db_path))
        result = invoke(db_path, "tail", "--account", "acme")
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert len(lines) == 3
        assert [line.split('"')[1] for line in lines] == ["Step 0", "Step 1", "Step 2"]
        assert lines[0].startswith("2026-11-30 09:00 UTC  acme  track")
        assert "user u1" in lines[0] and "happened 2026-11-30 09:00 UTC" in lines[0]
        assert lines[0].endswith("no write key (imported)")
        assert lines[2].endswith(f"write key 1 web app ({plaintext[:12]}...)")
        assert plaintext not in result.output

    def test_every_account_and_a_line_count(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        asyncio.run(seed(db_path))
        result = invoke(db_path, "tail", "-n", "2")
        assert result.exit_code == 0, result.output
        assert len(result.output.splitlines()) == 2
        assert any("globex" in line for line in result.output.splitlines())

    def test_no_events_says_so(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        asyncio.run(seed(db_path))
        result = invoke(db_path, "tail", "--account", "nobody")
        assert result.exit_code == 0
        assert result.output == "No events counted yet for account nobody.\n"

    def test_bad_line_count_is_a_usage_error(self, tmp_path: Path) -> None:
        result = invoke(tmp_path / "tend.db", "tail", "-n", "0")
        assert result.exit_code == 2
        assert "--lines" in result.output

    def test_unmigrated_database_is_one_line_exit_1(self, tmp_path: Path) -> None:
        result = run_tail(tmp_path / "empty.db")
        assert result.returncode == 1
        assert result.stderr.startswith("tend: database error on")
        assert len(result.stderr.splitlines()) == 1


def run_tail(db_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env["TEND_DATABASE_URL"] = f"sqlite+aiosqlite:///{db_path}"
    return subprocess.run(
        [sys.executable, "-m", "services", "tail"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
class TestFollow:
    def test_follows_events_sent_to_tend_up_and_stops_on_ctrl_c(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        up = UpProcess(db_path, port, tmp_path / "up.log")
        tail: subprocess.Popen[str] | None = None
        try:
            up.wait_for_output(base)
            wait_for_health(base, up)
            [key] = set(KEY_RE.findall(up.output))
            env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
            env.update(TEND_DATABASE_URL=f"sqlite+aiosqlite:///{db_path}", PYTHONUNBUFFERED="1")
            tail = subprocess.Popen(
                [sys.executable, "-m", "services", "tail", "--account", "acme", "--follow"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                start_new_session=True,
            )
            lines: list[str] = []
            assert tail.stdout is not None
            reader = threading.Thread(target=lambda: lines.extend(tail.stdout), daemon=True)  # type: ignore[union-attr,arg-type]
            reader.start()
            wait_for(lambda: any("Following" in line for line in lines), lines)
            event = {
                "userId": "u1",
                "event": "Report Exported",
                "properties": {"account_id": "acme"},
            }
            r = httpx.post(f"{base}/v1/track", json=event, auth=(key, ""), timeout=10)
            assert r.status_code == 200, r.text
            wait_for(lambda: any("Report Exported" in line for line in lines), lines)
            [shown] = [line for line in lines if "Report Exported" in line]
            assert " acme  track " in shown and "user u1" in shown
            assert f"({key[:12]}...)" in shown and key not in shown
            tail.send_signal(signal.SIGINT)
            assert tail.wait(timeout=30) == 0
            reader.join(timeout=5)
            assert "Traceback" not in "".join(lines)
        finally:
            if tail is not None and tail.poll() is None:
                tail.kill()
                tail.wait()
            up.stop()


def wait_for(condition: object, lines: list[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; tend tail printed: {''.join(lines)}")
        time.sleep(0.05)
