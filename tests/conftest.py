"""The suite's fixtures, defined once in tests/fixtures/ and registered here as plugins, so a
test in any directory can use any of them by name (tests/test_fixtures_once.py checks that no
fixture name is defined twice)."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.databases",
    "tests.fixtures.servers",
    "tests.fixtures.console",
    "tests.fixtures.ingest",
    "tests.fixtures.ops",
]
