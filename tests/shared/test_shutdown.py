"""`tend ingest`, `tend scorer` and `tend alerts` as processes: SIGTERM drains them and they
exit 0 (uvicorn alone re-raises the signal, so a clean stop looked like a crash: -15)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e  # starts tend processes


@pytest.mark.parametrize("command", ["ingest", "scorer", "alerts"])
def test_sigterm_after_start_exits_0(
    command: str, own_broker: TansuBroker, pg_url: str, tmp_path: Path
) -> None:
    proc = ServiceProcess(
        command,
        {
            "TEND_KAFKA_BOOTSTRAP": own_broker.bootstrap,
            "TEND_DATABASE_URL": pg_url,
            "TEND_API_TOKEN": "shutdown-test-token-" + "x" * 24,
            "TEND_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "TEND_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
        },
        tmp_path,
    )
    proc.start()
    try:
        deadline = time.monotonic() + 90  # a safety net against hangs, not an assertion
        while "Application startup complete" not in proc.log_path.read_text(errors="replace"):
            proc.alive()
            assert time.monotonic() < deadline, proc.tail()
            time.sleep(0.1)
        proc.terminate()  # asserts the drain and exit code 0
    finally:
        proc.cleanup()
