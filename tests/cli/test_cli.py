"""The ``tend`` command line, run through click's runner and, for ``tend up``, as a process."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel

from services.cli import main
from shared.settings import Settings
from tests.support.broker import free_port
from tests.support.process import ServiceProcess

if TYPE_CHECKING:
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"tend_wk_[A-Za-z0-9_-]+")

# Variables a developer's shell may carry that would change what these tests see.
CLEAN_ENV: dict[str, str | None] = {
    "TEND_KAFKA_BOOTSTRAP": None,
    "TEND_CONFIG": None,
    "TEND_API_TOKEN": None,
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tend.db"


def invoke(db_path: Path, *args: str, **env: str | None) -> Result:
    environment = {**CLEAN_ENV, "TEND_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}", **env}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def tables(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def stored_keys(db_path: Path) -> list[tuple[int, str, str, str | None]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute("SELECT id, name, key_hash, revoked_at FROM api_keys ORDER BY id"))


class TestVersionAndHelp:
    @pytest.mark.unit
    def test_version(self, db_path: Path) -> None:
        result = invoke(db_path, "--version")
        assert result.exit_code == 0
        assert re.search(r"tend, version \d+\.\d+", result.output)

    @pytest.mark.unit
    def test_help_lists_the_commands(self, db_path: Path) -> None:
        result = invoke(db_path, "--help")
        assert result.exit_code == 0
        for command in ("migrate", "ingest", "keys", "up"):
            assert command in result.output

    @pytest.mark.unit
    def test_no_command_prints_help_and_exits_0(self, db_path: Path) -> None:
        result = invoke(db_path)
        assert result.exit_code == 0
        assert result.output.startswith("Usage: ") and "[OPTIONS] [COMMAND]" in result.output
        assert "Commands:" in result.output and "tail" in result.output
        assert "2 bad configuration or usage" in result.output

    @pytest.mark.e2e
    def test_python_dash_m_services(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "services", "--version"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("tend, version")


@pytest.mark.integration  # a SQLite file
class TestMigrate:
    def test_creates_the_tables(self, db_path: Path) -> None:
        result = invoke(db_path, "migrate")
        assert result.exit_code == 0, result.output
        assert "Migrated" in result.output
        assert {"api_keys", "alembic_version", "bus_records"} <= tables(db_path)

    def test_second_run_says_nothing_to_do(self, db_path: Path) -> None:
        invoke(db_path, "migrate")
        result = invoke(db_path, "migrate")
        assert result.exit_code == 0
        assert "nothing to do" in result.output

    def test_unreachable_database_is_one_line_exit_1(self, db_path: Path) -> None:
        result = invoke(
            db_path,
            "migrate",
            TEND_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nope",
        )
        assert result.exit_code == 1
        assert result.output.startswith("tend: database error")
        assert "Traceback" not in result.output


@pytest.mark.integration  # a SQLite file
class TestKeys:
    @pytest.fixture(autouse=True)
    def _migrated(self, db_path: Path) -> None:
        assert invoke(db_path, "migrate").exit_code == 0

    def test_create_prints_a_key_whose_hash_is_stored(self, db_path: Path) -> None:
        result = invoke(db_path, "keys", "create", "web-app")
        assert result.exit_code == 0, result.output
        printed = KEY_RE.findall(result.output)
        assert len(printed) == 1
        [(key_id, name, key_hash, revoked_at)] = stored_keys(db_path)
        assert name == "web-app"
        assert revoked_at is None
        assert key_hash == hashlib.sha256(printed[0].encode()).hexdigest()
        assert f"write key {key_id} " in result.output

    def test_blank_name_is_refused(self, db_path: Path) -> None:
        result = invoke(db_path, "keys", "create", "  ")
        assert result.exit_code == 2
        assert stored_keys(db_path) == []

    def test_list_shows_keys_but_never_the_key(self, db_path: Path) -> None:
        created = invoke(db_path, "keys", "create", "web-app")
        [key] = KEY_RE.findall(created.output)
        result = invoke(db_path, "keys", "list")
        assert result.exit_code == 0
        assert "web-app" in result.output
        assert key[:12] in result.output  # the display prefix
        assert key not in result.output

    def test_list_when_empty_says_how_to_create(self, db_path: Path) -> None:
        result = invoke(db_path, "keys", "list")
        assert result.exit_code == 0
        assert "tend keys create" in result.output

    def test_revoke_marks_the_key_and_is_idempotent(self, db_path: Path) -> None:
        invoke(db_path, "keys", "create", "web-app")
        [(key_id, *_)] = stored_keys(db_path)
        first = invoke(db_path, "keys", "revoke", str(key_id))
        assert first.exit_code == 0
        assert "Revoked" in first.output
        assert stored_keys(db_path)[0][3] is not None
        again = invoke(db_path, "keys", "revoke", str(key_id))
        assert again.exit_code == 0
        assert "already revoked" in again.output
        listing = invoke(db_path, "keys", "list")
        assert re.search(r"web-app .* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s*$", listing.output, re.M)

    def test_revoke_unknown_id_exits_1_with_a_message(self, db_path: Path) -> None:
        result = invoke(db_path, "keys", "revoke", "4242")
        assert result.exit_code == 1
        assert "no write key with id 4242" in result.output

    def test_unmigrated_database_is_one_line_exit_1(self, tmp_path: Path) -> None:
        result = invoke(tmp_path / "empty.db", "keys", "list")
        assert result.exit_code == 1
        assert "tend migrate" in result.output
        assert "Traceback" not in result.output


@pytest.mark.unit
class TestConfigurationErrors:
    @pytest.mark.parametrize("command", [["up"], ["ingest"]])
    def test_bad_yaml_value_exits_2_naming_the_key(
        self, tmp_path: Path, db_path: Path, command: list[str]
    ) -> None:
        bad = tmp_path / "tend.yaml"
        bad.write_text("feature_catalog: 5\n")
        result = invoke(db_path, *command, TEND_CONFIG=str(bad), TEND_KAFKA_BOOTSTRAP="127.0.0.1:1")
        assert result.exit_code == 2
        assert "feature_catalog" in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not db_path.exists()  # nothing happened before the check

    def test_missing_config_file_exits_2(self, tmp_path: Path, db_path: Path) -> None:
        result = invoke(db_path, "up", TEND_CONFIG=str(tmp_path / "absent.yaml"))
        assert result.exit_code == 2
        assert "TEND_CONFIG" in result.output

    @pytest.mark.parametrize("command", [["migrate"], ["keys", "list"], ["up"]])
    def test_bad_setting_exits_2_naming_the_variable(
        self, db_path: Path, command: list[str]
    ) -> None:
        result = invoke(db_path, *command, TEND_INGEST__MAX_BODY_BYTES="lots")
        assert result.exit_code == 2
        assert "TEND_INGEST__MAX_BODY_BYTES" in result.output
        assert len(result.output.strip().splitlines()) == 1

    def test_unparsable_database_url_exits_2(self, db_path: Path) -> None:
        result = invoke(db_path, "migrate", TEND_DATABASE_URL="not a url")
        assert result.exit_code == 2
        assert "TEND_DATABASE_URL" in result.output


@pytest.mark.unit
class TestServiceCommands:
    @pytest.mark.parametrize("command", ["ingest", "scorer", "alerts"])
    def test_refuse_without_kafka(self, db_path: Path, command: str) -> None:
        result = invoke(db_path, command, "--port", "0")
        assert result.exit_code == 2
        assert f"tend: {command} needs a Kafka broker" in result.output
        assert "TEND_KAFKA_BOOTSTRAP" in result.output
        assert "tend up" in result.output

    @pytest.mark.parametrize(
        ("command", "port", "workers"),
        [
            ("ingest", 8000, True),
            ("scorer", 8001, False),
            ("alerts", 8002, False),
            ("web", 8003, True),
        ],
    )
    def test_each_service_has_its_port_and_workers_where_it_scales(
        self, db_path: Path, command: str, port: int, workers: bool
    ) -> None:
        result = invoke(db_path, command, "--help")
        assert result.exit_code == 0
        assert f"default: {port};" in result.output
        assert ("--workers" in result.output) == workers

    @pytest.mark.parametrize("command", ["scorer", "alerts"])
    def test_consumers_say_they_serve_only_ops_routes(self, db_path: Path, command: str) -> None:
        result = invoke(db_path, command, "--help")
        assert "Serves only /healthz, /readyz and /metrics" in result.output

    def test_one_app_factory_per_service(self) -> None:
        from services.cli import serve

        assert set(serve.SERVICES) == {"ingest", "scorer", "alerts", "web"}
        for service in serve.SERVICES.values():
            module, name = service.factory.split(":")
            assert module == "services.cli.serve"
            assert getattr(serve, name).args == (service.name,)  # build_app(name)


@pytest.mark.unit
class TestDocumentation:
    def test_readme_names_every_setting(self) -> None:
        readme = (REPO / "README.md").read_text()
        names: list[str] = []
        for name, field in Settings.model_fields.items():
            block = field.annotation
            if isinstance(block, type) and issubclass(block, BaseModel):
                names += [f"TEND_{name.upper()}__{sub.upper()}" for sub in block.model_fields]
            else:
                names.append(f"TEND_{name.upper()}")
        missing = [name for name in names if f"`{name}`" not in readme]
        assert missing == []


class UpProcess:
    """``tend up`` as a child process; its output is collected line by line."""

    def __init__(self, db_path: Path, port: int, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
        env.update(TEND_DATABASE_URL=f"sqlite+aiosqlite:///{db_path}", PYTHONUNBUFFERED="1")
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services", "up", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=db_path.parent,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def describe(self) -> str:
        self.log.flush()
        return f"stdout:\n{self.output}\nstderr:\n{self.log_path.read_text()[-4000:]}"

    def wait_for_output(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from tend up; {self.describe()}")
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=5)
            self.log.close()


def wait_for_health(base: str, proc: UpProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"tend up never became healthy; {proc.describe()}")


@pytest.mark.e2e
class TestUp:
    def test_serves_events_with_the_printed_key(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        port = free_port()
        base = f"http://127.0.0.1:{port}"

        first = UpProcess(db_path, port, tmp_path / "up1.log")
        try:
            first.wait_for_output(base)
            wait_for_health(base, first)
            [key] = set(KEY_RE.findall(first.output))
            event = {"userId": "u1", "event": "Signed In", "properties": {"account_id": "acme"}}
            response = httpx.post(f"{base}/v1/track", json=event, auth=(key, ""), timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 1
            assert httpx.post(f"{base}/v1/track", json=event, timeout=10).status_code == 401
        finally:
            code = first.stop()
        assert code == 0, (tmp_path / "up1.log").read_text()

        # A second start keeps the data and does not make (or print) another key.
        second = UpProcess(db_path, port, tmp_path / "up2.log")
        try:
            second.wait_for_output("Active write keys")
            # Only the key's prefix, never the key.
            assert [len(k) for k in KEY_RE.findall(second.output)] == [12]
        finally:
            second.stop()
        assert len(stored_keys(db_path)) == 1


@pytest.mark.unit
class TestUpApp:
    """The app `tend up` serves: ingest's, with the web app mounted beside it."""

    @pytest.fixture
    def up_client(self) -> Iterator[TestClient]:
        from starlette.testclient import TestClient

        from services.cli.up import up_app
        from shared.config import TendConfig

        settings = Settings(database_url="sqlite+aiosqlite:///unused.db", kafka_bootstrap=None)
        app = up_app(settings, TendConfig(), api_token="up-app-test-token-0123456789abcdef")
        # Not entered: no lifespan runs, so nothing here opens the database or the bus.
        yield TestClient(app, base_url="http://up")

    def test_each_path_reaches_its_app(self, up_client: TestClient) -> None:
        assert up_client.get("/docs").status_code == 200  # ingest's, describing both
        answer = up_client.get("/v1/accounts")
        assert answer.status_code == 401  # the web app's, in its error shape
        assert answer.json()["error"]["code"] == "unauthorized"
        assert up_client.get("/console/login").status_code == 200
        assert up_client.get("/console/static/console.css").status_code == 200

    def test_known_paths_answer_405_to_other_methods_and_others_404(
        self, up_client: TestClient
    ) -> None:
        for method, path in [("TRACE", "/v1/batch"), ("GET", "/v1/batch"), ("TRACE", "/v1/alerts")]:
            assert up_client.request(method, path).status_code == 405, (method, path)
        missing = up_client.get("/nowhere")
        assert missing.status_code == 404
        # not a tracking path: the tend error shape (docs/api.md), not Segment's
        assert missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}
        assert up_client.get("/v1/batch").json()["success"] is False  # a tracking path: Segment's

    def test_openapi_describes_both_apps(self, up_client: TestClient) -> None:
        paths = up_client.get("/openapi.json").json()["paths"]
        assert {"/v1/batch", "/v1/track", "/v1/accounts", "/v1/alerts"} <= set(paths)


@pytest.mark.e2e
class TestWeb:
    def test_serves_the_apis_and_console_without_kafka(self, tmp_path: Path) -> None:
        """`tend web` needs only the database: no TEND_KAFKA_BOOTSTRAP, and it is ready."""
        db_path = tmp_path / "tend.db"
        assert invoke(db_path, "migrate").exit_code == 0
        token = "web-command-test-token-0123456789abcdef"
        env = {"TEND_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}", "TEND_API_TOKEN": token}
        web = ServiceProcess("web", env, tmp_path)
        web.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                web.alive()
                try:
                    if httpx.get(f"{web.url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, web.tail()
                time.sleep(0.1)
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{web.url}/v1/accounts", timeout=10).status_code == 401
            accounts = httpx.get(f"{web.url}/v1/accounts", headers=auth, timeout=10)
            assert accounts.status_code == 200 and accounts.json()["accounts"] == []
            assert httpx.get(f"{web.url}/v1/alerts", headers=auth, timeout=10).status_code == 200
            assert httpx.get(f"{web.url}/console/login", timeout=10).status_code == 200
            assert httpx.get(f"{web.url}/metrics", timeout=10).status_code == 200
            # Not ingest: events go to `tend ingest`.
            assert httpx.post(f"{web.url}/v1/track", json={}, timeout=10).status_code in (404, 405)
            web.terminate()  # SIGTERM: exit code 0
        finally:
            web.cleanup()
