"""No fixture is defined twice: every fixture name under tests/ has one definition, so a test
anywhere uses the same fixture by the same name (the shared ones live in tests/fixtures/ and
are registered by tests/conftest.py)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent

# Names allowed more than one definition, each with its reason. Empty: keep it so.
ALLOWED_TWICE: dict[str, str] = {}


def fixture_name(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The fixture name a definition registers (``name=`` wins), or None if not a fixture."""
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call is not None else decorator
        if ast.unparse(target).split(".")[-1] != "fixture":
            continue
        for keyword in call.keywords if call is not None else []:
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
        return node.name
    return None


def fixture_definitions(root: Path) -> dict[str, list[str]]:
    """Fixture name -> every place ("path:line") it is defined under ``root``."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        if "fixture" not in source:  # most modules define none: skip parsing them
            continue
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = fixture_name(node)
                if name is not None:
                    found[name].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_no_fixture_is_defined_twice() -> None:
    twice = {
        name: places
        for name, places in fixture_definitions(TESTS).items()
        if len(places) > 1 and name not in ALLOWED_TWICE
    }
    assert not twice, (
        "fixtures defined more than once (keep one, in tests/fixtures/ if several modules "
        "use it, or give a module's own fixture a name of its own):\n"
        + "\n".join(f"  {name}: {', '.join(places)}" for name, places in sorted(twice.items()))
    )


def test_the_check_sees_fixtures_of_every_spelling(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(
        "import pytest, pytest_asyncio\n"
        "from pytest import fixture\n"
        "@pytest.fixture\ndef one(): ...\n"
        "@pytest_asyncio.fixture(scope='module')\nasync def two(): ...\n"
        "@fixture(name='three')\ndef _three(): ...\n"
        "class TestX:\n    @pytest.fixture\n    def four(self): ...\n"
        "def not_a_fixture(): ...\n"
    )
    (tmp_path / "tests" / "test_b.py").write_text(
        "import pytest\n@pytest.fixture(params=[1])\ndef one(request): ...\n"
    )
    found = fixture_definitions(tmp_path / "tests")
    assert sorted(found) == ["four", "one", "three", "two"]
    assert found["one"] == ["tests/test_a.py:4", "tests/test_b.py:3"]
