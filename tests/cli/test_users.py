"""``tend users`` and the first admin: made and printed once by ``tend migrate``; people added,
listed, given roles and disabled, each change in the audit log (by ``cli``)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.cli.test_cli import invoke

pytestmark = pytest.mark.integration


def audit_rows(db_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT actor, action, target FROM audit_log ORDER BY id").fetchall()


class TestFirstAdmin:
    def test_migrate_prints_it_once(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        first = invoke(db_path, "migrate", TEND_PEOPLE__FIRST_ADMIN_EMAIL="Boss@Example.com")
        assert first.exit_code == 0, first.output
        assert re.search(r"email:\s+boss@example.com", first.output)
        assert re.search(r"password:\s+\S{20}", first.output)
        again = invoke(db_path, "migrate")
        assert "password" not in again.output
        listed = invoke(db_path, "users", "list").output
        assert re.search(r"boss@example.com\s+Admin\s+admin", listed)


class TestUsers:
    def test_add_role_disable_each_audited(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        invoke(db_path, "migrate")
        added = invoke(db_path, "users", "add", "Ana@CS.example", "--name", "Ana", "--role", "csm")
        assert added.exit_code == 0, added.output
        assert "Added ana@cs.example as csm" in added.output
        assert re.search(r"^\s{4}\S{20}$", added.output, re.MULTILINE)
        twice = invoke(db_path, "users", "add", "ana@cs.example")
        assert twice.exit_code == 2 and "email: ana@cs.example already exists" in twice.output
        role = invoke(db_path, "users", "role", "ana@cs.example", "leader")
        assert "ana@cs.example is now leader (was csm)" in role.output
        off = invoke(db_path, "users", "disable", "ana@cs.example")
        assert "stop now" in off.output
        nobody = invoke(db_path, "users", "disable", "nobody@cs.example")
        assert nobody.exit_code == 1 and "no person with email" in nobody.output
        bad = invoke(db_path, "users", "role", "ana@cs.example", "owner")
        assert bad.exit_code == 2
        assert [r[1] for r in audit_rows(db_path)] == [
            "person.add",  # the first admin
            "person.add",
            "person.role",
            "person.disable",
        ]
        assert {r[0] for r in audit_rows(db_path)} == {"cli"}

    def test_write_keys_are_audited(self, tmp_path: Path) -> None:
        db_path = tmp_path / "tend.db"
        invoke(db_path, "migrate")
        assert invoke(db_path, "keys", "create", "web").exit_code == 0
        assert invoke(db_path, "keys", "revoke", "1").exit_code == 0
        assert [r[1:] for r in audit_rows(db_path)][-2:] == [
            ("write_key.create", "write_key:1"),
            ("write_key.revoke", "write_key:1"),
        ]
