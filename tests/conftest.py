"""The suite's fixtures and its lanes.

Fixtures are defined once in tests/fixtures/ and registered here as plugins, so a test in any
directory can use any of them by name (tests/test_fixtures_once.py checks that no fixture name
is defined twice).

Every test runs in exactly one lane (a marker): ``unit`` (no server, no process, no database,
no broker: the fast lane, ``bash scripts/test --fast`` or ``pytest -m unit``), ``integration``
(the broker, PostgreSQL, a SQLite file or loopback servers) or ``e2e`` (starts tend
processes); ``simulation`` holds the long pure simulations (a year of accounts through the real
rules: no server either, but seconds each). A test's lane
is the marker it or its module, class or fixture parameter carries (``pytest.param(...,
marks=pytest.mark.integration)`` marks one case of a fixture, as ``db``'s ``postgresql``);
unmarked, the lane follows from the fixtures it uses (any fixture of INTEGRATION or E2E below,
directly or through another fixture); with neither, it is ``unit``. Collection fails when a
test carries two lanes, or a lane below what its fixtures need (a ``unit`` test that asks for
PostgreSQL).
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.expression import Expression

# Cache compiled modules and pytest's rewritten test modules (__pycache__, git-ignored) even
# when PYTHONDONTWRITEBYTECODE is set: recompiling and re-rewriting every module on each run
# doubles the time to collect (unit lane: ~13 s -> ~7 s of CPU on this machine).
sys.dont_write_bytecode = False

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.databases",
    "tests.fixtures.servers",
    "tests.fixtures.console",
    "tests.fixtures.ingest",
    "tests.fixtures.ops",
    "tests.fixtures.browser",
]

LANES = ("unit", "simulation", "integration", "e2e")

# Fixtures that need the broker, PostgreSQL, a loopback server or a database file (SQLite).
INTEGRATION = frozenset(
    {
        "broker",
        "own_broker",
        "stopped_broker",
        "pg_url",
        "pg_engine",
        "pg_sessions",
        "fresh_pg",
        "database",
        "slack_server",
        "slack_api_server",
        "smtp_server",
        "webhook_server",
        "ingest",
        "serve_ingest",
        "write_key",
        "sqlite_url",
        "sqlite_sessions",
        "db",
        "own_db_url",
        "seeded",
        "chromium",
        "page_server",
        "npm_sdks",
    }
)

# Fixtures that start tend processes.
E2E = frozenset({"ops_broker", "ops_database", "stack", "prometheus", "tend_up", "tend_up_pg"})


MODULE_LANE = re.compile(r"^pytestmark = pytest\.mark\.(unit|integration|e2e)\b", re.MULTILINE)
LANE_WORDS = re.compile(r"\b(?!(?:and|or|not)\b)\w+")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m`` naming lanes only (``-m unit``), a module whose ``pytestmark`` puts it in a
    lane the expression leaves out is not imported at all: the unit lane does not pay for
    importing the integration and e2e modules' dependencies."""
    markexpr = config.option.markexpr
    if (
        not markexpr
        or collection_path.suffix != ".py"
        or not collection_path.name.startswith("test_")
    ):
        return None
    if not set(LANE_WORDS.findall(markexpr)) <= set(LANES):
        return None
    found = MODULE_LANE.search(collection_path.read_text())
    if found is None:
        return None
    lane = found.group(1)
    if Expression.compile(markexpr).evaluate(lambda name, **_: name == lane):
        return None
    return True


def needed_lane(fixturenames: list[str]) -> str:
    """The lowest lane that has what these fixtures need."""
    names = set(fixturenames)
    if names & E2E:
        return "e2e"
    if names & INTEGRATION:
        return "integration"
    return "unit"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems: list[str] = []
    for item in items:
        marked = {m.name for m in item.iter_markers() if m.name in LANES}
        needed = needed_lane(getattr(item, "fixturenames", []))
        if len(marked) > 1:
            problems.append(f"{item.nodeid}: marked {' and '.join(sorted(marked))}: one lane only")
            continue
        if marked:
            lane = marked.pop()
            if LANES.index(lane) < LANES.index(needed):
                used = sorted(set(item.fixturenames) & (E2E if needed == "e2e" else INTEGRATION))  # type: ignore[attr-defined]
                problems.append(
                    f"{item.nodeid}: marked {lane} but uses {', '.join(used)} ({needed})"
                )
            continue
        item.add_marker(needed)
    if problems:
        raise pytest.UsageError(
            "tests in the wrong lane (see tests/conftest.py):\n  " + "\n  ".join(problems)
        )


# -- the unit lane opens no database file ------------------------------------------------------
# Enforced while each unit test runs (its fixtures included): opening a SQLite file fails the
# test with the reason, so a test that needs a database cannot slip into the fast lane.
_sqlite_connect = sqlite3.connect
_unit_test: list[str] = []


def _in_memory(database: Any) -> bool:
    name = str(database)
    return name in ("", ":memory:") or "mode=memory" in name


def _connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
    if _unit_test and not _in_memory(database):
        raise RuntimeError(
            f"{_unit_test[0]} is in the unit lane but opened the SQLite file {str(database)!r}: "
            "a database file is the integration lane (mark it pytest.mark.integration; see "
            "tests/conftest.py)"
        )
    return _sqlite_connect(database, *args, **kwargs)


sqlite3.connect = _connect  # type: ignore[assignment]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if item.get_closest_marker("unit") is not None:
        _unit_test.append(item.nodeid)
    try:
        yield
    finally:
        _unit_test.clear()
