"""``tend up`` started twice on one data folder, as the README's next step does: the second
start keeps the console signed in (the API token is kept in the data folder), names the write
keys by prefix and says how to make another; each start speaks once (no Alembic lines, email
off said once with the setting to fix)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx
import pytest

from services.cli.up import TOKEN_FILE
from tests.cli.test_cli import UpProcess, wait_for_health
from tests.support.broker import free_port

pytestmark = pytest.mark.e2e

TOKEN_LINE = re.compile(r"^    ([A-Za-z0-9_-]{43})$", re.MULTILINE)


def start(db_path: Path, port: int, log: Path) -> UpProcess:
    up = UpProcess(db_path, port, log)
    up.wait_for_output("Press Ctrl-C to stop.")
    wait_for_health(f"http://127.0.0.1:{port}", up)
    return up


def test_a_restart_keeps_the_console_signed_in(tmp_path: Path) -> None:
    db_path = tmp_path / "tend.db"
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    first = start(db_path, port, tmp_path / "up1.log")
    try:
        [token] = TOKEN_LINE.findall(first.output)
        assert f"kept in {tmp_path / TOKEN_FILE}, so restarts keep the console signed in" in (
            first.output
        )
        email = re.search(r"^    email: +(\S+)$", first.output, re.MULTILINE)
        password = re.search(r"^    password: +(\S+)$", first.output, re.MULTILINE)
        assert email and password, first.output
        with httpx.Client(base_url=base, timeout=10) as client:
            r = client.post(
                "/console/login",
                data={"email": email[1], "password": password[1], "next": "/console/"},
            )
            assert r.status_code == 303, r.text
            cookies = dict(client.cookies)
    finally:
        assert first.stop() == 0, first.describe()
    log = (tmp_path / "up1.log").read_text()
    assert "alembic" not in log
    assert log.count("email is off: TEND_SMTP_HOST is not set") == 1
    assert "Set TEND_SMTP_HOST" in log
    token_file = tmp_path / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    second = start(db_path, port, tmp_path / "up2.log")
    try:
        assert TOKEN_LINE.findall(second.output) == [token]
        assert f"Admin API token (kept in {token_file};" in second.output
        named = r"Active write keys: 1 'default' \(tend_wk_[\w-]{4}\.\.\.\)"
        assert re.search(named, second.output)
        assert "Create another with: tend keys create NAME" in second.output
        with httpx.Client(base_url=base, timeout=10, cookies=cookies) as client:
            page = client.get("/console/")
            assert page.status_code == 200  # still signed in, not sent to the sign-in page
    finally:
        assert second.stop() == 0, second.describe()
    assert "alembic" not in (tmp_path / "up2.log").read_text()
