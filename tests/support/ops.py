"""The production stack as processes, with traffic, and a real Prometheus scraping it
(the fixtures ``stack`` and ``prometheus`` are in tests/fixtures/ops.py).

One stack per session (only started when an ops test asks for it): its own tansu broker, a
fresh migrated PostgreSQL database, ``tend ingest --workers 2`` (multiprocess metrics),
``tend scorer`` and ``tend alerts`` on free loopback ports, fed a few batches of events.
Prometheus and promtool come from the Debian ``prometheus`` package (``scripts/test`` installs
it); Prometheus gets its own free port, config and storage directory, never the packaged
service on :9090.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import insert

from shared.db.models import HealthScore
from shared.db.session import create_engine, create_sessionmaker, transaction
from tests.support.broker import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ACCOUNTS = 6
FEATURES = ("reports", "dashboards", "integrations")


def tool(name: str) -> str:
    """Path of a Prometheus binary; skips when it is not installed (scripts/test installs the
    Debian package, and fails in CI when it cannot)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} not found: install the Debian package `prometheus` "
            "(scripts/test does it when run as root)"
        )
    return path


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


class Process:
    """A child process whose output goes to a log file (its tail explains failures)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Service:
    """A tend HTTP service of the stack: its process and where it answers."""

    name: str
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> str:
        r = httpx.get(f"{self.url}/metrics", timeout=10)
        r.raise_for_status()
        return r.text

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            self.process.alive()
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

        wait_for(healthy, f"{self.name} to be ready ({self.process.tail()})", timeout_s=90)


@dataclass
class Stack:
    database_url: str
    services: dict[str, Service]
    write_key: str
    ingest_requests: int = 0
    events_accepted: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def service_env(bootstrap: str, database_url: str, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        TEND_KAFKA_BOOTSTRAP=bootstrap,
        TEND_DATABASE_URL=database_url,
        TEND_CONFIG=str(config),
        TEND_API_TOKEN="ops-test-token-0123456789abcdefghij",
        TEND_KAFKA__PARTITIONS="3",
        TEND_SCORER__BATCH_MAX_WAIT_S="0.1",
        TEND_SCORER__SWEEP_INTERVAL_S="2",
        TEND_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def write_accounts_csv(path: Path, prefix: str) -> list[str]:
    ids = [f"{prefix}-acct-{i}" for i in range(ACCOUNTS)]
    renewal = date.today() + timedelta(days=45)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["account_id", "name", "seats", "mrr", "renewal_date", "csm_email"])
        for i, account in enumerate(ids):
            w.writerow([account, f"Account {i}", 10, 1000 * (i + 1), renewal, "csm@example.com"])
    return ids


def event_batch(accounts: list[str], round_: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    batch: list[dict[str, Any]] = []
    for i, account in enumerate(accounts):
        for u in range(1 + i % 3):
            user = f"{account}-u{u}"
            stamp = (now - timedelta(seconds=u)).isoformat()
            batch.append(
                {
                    "type": "track",
                    "messageId": f"{account}-{round_}-{u}-login",
                    "userId": user,
                    "event": "Signed In",
                    "timestamp": stamp,
                    "context": {"groupId": account},
                }
            )
            batch.append(
                {
                    "type": "track",
                    "messageId": f"{account}-{round_}-{u}-feature",
                    "userId": user,
                    "event": "Used",
                    "properties": {"feature": FEATURES[(i + u) % len(FEATURES)]},
                    "timestamp": stamp,
                    "context": {"groupId": account},
                }
            )
    # One event the API refuses (no account), so the rejection series has data.
    batch.append({"type": "track", "messageId": f"orphan-{round_}", "userId": "nobody-x"})
    return {"batch": batch, "sentAt": now.isoformat()}


def send_traffic(stack: Stack, accounts: list[str], rounds: int) -> None:
    ingest = stack.services["ingest"]
    with httpx.Client(base_url=ingest.url, auth=(stack.write_key, ""), timeout=30) as client:
        for round_ in range(rounds):
            r = client.post("/v1/batch", json=event_batch(accounts, round_))
            assert r.status_code == 200, r.text
            stack.events_accepted += r.json()["accepted"]
            stack.ingest_requests += 1
        # A request with a wrong key: a 401 in the request counts and a rejection reason.
        r = httpx.post(f"{ingest.url}/v1/track", json={}, auth=("wrong-key", ""), timeout=10)
        assert r.status_code == 401
        stack.ingest_requests += 1


async def seed_history(database_url: str, accounts: list[str]) -> None:
    """A week of scores, one account turning red, so the health panels have history."""
    engine = create_engine(database_url)
    try:
        today = date.today()
        rows = []
        for i, account in enumerate(accounts):
            for back in range(1, 8):
                band = "green" if i % 2 == 0 else "yellow"
                if i == 1 and back <= 2:
                    band = "red"
                rows.append(
                    {
                        "account_id": account,
                        "as_of": today - timedelta(days=back),
                        "score": {"green": 80.0, "yellow": 55.0, "red": 20.0}[band],
                        "band": band,
                    }
                )
        async with transaction(create_sessionmaker(engine)) as session:
            await session.execute(insert(HealthScore), rows)
    finally:
        await engine.dispose()


class Prometheus:
    """The Debian package's Prometheus on a free loopback port with its own storage."""

    def __init__(self, workdir: Path, targets: dict[str, str], rules: list[Path]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rules],
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": [target]}]}
                for name, target in targets.items()
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        (workdir / "data").mkdir()
        args = [
            tool("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
        ]
        self.process = Process("prometheus", args, dict(os.environ), workdir)
        self.targets = targets

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def ready() -> bool:
            self.process.alive()
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

        wait_for(ready, f"Prometheus to be ready ({self.process.tail()})")

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (status, data or error)."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = r.json()
        return body

    def scraped_all(self, min_samples: int) -> bool:
        """Every target up and scraped at least ``min_samples`` times."""
        for job in self.targets:
            res = self.query(f'count_over_time(up{{job="{job}"}}[5m])')["data"]["result"]
            if not res or float(res[0]["value"][1]) < min_samples:
                return False
            up = self.query(f'up{{job="{job}"}}')["data"]["result"]
            if not up or up[0]["value"][1] != "1":
                return False
        return True


def dump(value: object) -> str:
    return json.dumps(value, indent=1)[:2000]
