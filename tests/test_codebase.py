"""Guards on the shape of the code (docs/architecture.md, "Rules the tests keep"):

- no HTML in Python: pages are Jinja templates in ``services/web/templates/`` (and the email
  templates of ``services/alerts/notifiers/templates/``), never markup in string literals;
- no module over 400 lines unless its docstring says why, in a paragraph that starts
  ``One module of about N lines on purpose:``;
- services never import each other and ``shared/`` never imports a service; only the CLI
  (``services/cli/``, the composition root) wires services together.

Each guard reads the source with :mod:`ast` (nothing is imported), so the whole file runs in
well under a second.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"
SHARED = ROOT / "shared"


def modules(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(root.rglob("*.py"))


def where(path: Path, line: int | None = None, root: Path = ROOT) -> str:
    relative = path.relative_to(root).as_posix()
    return relative if line is None else f"{relative}:{line}"


@cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of ``path``, parsed once for every guard."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@cache
def source_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


# --- no HTML in Python ---------------------------------------------------------------------

TAG = re.compile(
    r"</?(!doctype|html|head|body|meta|link|title|style|script|div|span|p|a|br|hr|img"
    r"|h[1-6]|ul|ol|li|dl|dt|dd|table|thead|tbody|tfoot|tr|td|th|caption|form|input|button"
    r"|select|option|textarea|label|fieldset|section|nav|main|header|footer|article|aside"
    r"|strong|em|b|i|small|code|pre|svg|g|path|polyline|polygon|rect|circle|line|text)"
    r"(?=[\s>/]|$)",
    re.IGNORECASE,
)
"""The start of an HTML (or SVG) tag: ``<div``, ``</td>``, ``<p>``, ``<br/>``. Slack's
``<https://...|text>`` links and ``<account>``-style placeholders do not match."""

HTML_ALLOWED: dict[str, str] = {}
"""``path:line`` -> why a string literal there may hold a tag. Empty: keep it so (a helper
small enough to deserve a place here is small enough to be a template macro)."""


def html_literals(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, tag)`` of every string literal of ``path`` that holds an HTML tag: f-string parts
    included, documentation not (a docstring, or a bare string under an attribute, may show
    markup as an example)."""
    if not TAG.search(path.read_text(encoding="utf-8")):
        return  # no tag anywhere in the file: nothing to parse (most modules)
    documentation: set[int] = set()
    for node in ast.walk(parsed(path)):  # breadth first: a statement before its value
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            documentation.add(id(node.value))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in documentation
        ):
            match = TAG.search(node.value)
            if match:
                yield node.lineno, match.group(0)


class TestNoHtmlInPython:
    def test_no_string_literal_holds_a_tag(self) -> None:
        found = [
            f"{where(path, line)}: {tag!r}"
            for path in modules(SERVICES, SHARED)
            for line, tag in html_literals(path)
            if where(path, line) not in HTML_ALLOWED
        ]
        assert not found, (
            "HTML in Python (write it in a Jinja template under services/web/templates/, "
            "autoescaped, and pass the values):\n  " + "\n  ".join(found)
        )

    @pytest.mark.parametrize(
        ("source", "markup"),
        [
            ('x = "<div class=\\"card\\">"', True),
            ('x = f"<td>{value}</td>"', True),
            ("x = '</p>'", True),
            ('x = "<br/>"', True),
            ('x = "<!DOCTYPE html>"', True),
            ("x = '<svg viewBox=\"0 0 10 10\">'", True),
            ('x = "<https://hooks.example/x|open in tend>"', False),  # a Slack link
            ('x = "tend report <account>"', False),
            ('x = "a < b and p > q"', False),
            ('"""A docstring may show ``<div class="x">`` as an example."""', False),
            ('def f() -> None:\n    """Draws ``<polyline points="...">``."""', False),
        ],
    )
    def test_the_scan(self, source: str, markup: bool, tmp_path: Path) -> None:
        path = tmp_path / "m.py"
        path.write_text(source + "\n")
        assert bool(list(html_literals(path))) is markup


# --- module length -------------------------------------------------------------------------

MAX_LINES = 400
REASON = re.compile(r"^One module of about [\d,]+ lines on purpose: \S", re.MULTILINE)
"""The convention (docs/architecture.md): a paragraph of the module docstring starting
``One module of about N lines on purpose:`` and saying why the module is not split."""

TO_SPLIT: dict[str, str] = {
    "services/alerts/rules.py": "one module per rule family (logins, usage and seats, health "
    "and renewal, people) beside the shared Finding and helpers",
    "services/ingest/normalize.py": "the storability checks (check_tree, names, timestamps, "
    "clock skew) apart from parse/resolve/to_message",
    "services/alerts/consumer.py": "AlertsHandler (the batch step) in a module of its own, as "
    "the scorer's handler is in writer.py, leaving AlertsService the process",
    "services/alerts/state.py": "the notification builders (build_notification, "
    "group_notification, console_link) apart from AlertRepository",
}
"""Modules over the limit with no reason: each should be split as said. A guard that lists
them keeps the list honest: one that is split (or shrinks) must leave this table."""


def line_count(path: Path) -> int:
    return source_lines(path)


def states_its_length(path: Path) -> bool:
    docstring = ast.get_docstring(parsed(path))
    return docstring is not None and REASON.search(docstring) is not None


class TestModuleLength:
    def test_a_long_module_says_why(self) -> None:
        long = [
            f"{where(path)} ({line_count(path)} lines)"
            for path in modules(SERVICES, SHARED)
            if line_count(path) > MAX_LINES
            and not states_its_length(path)
            and where(path) not in TO_SPLIT
        ]
        assert not long, (
            f"modules over {MAX_LINES} lines without a reason: split them, or start a paragraph "
            "of the module docstring with 'One module of about N lines on purpose:' and say "
            "why (docs/architecture.md):\n  " + "\n  ".join(long)
        )

    def test_the_split_list_is_current(self) -> None:
        stale = [
            name
            for name in TO_SPLIT
            if not (ROOT / name).is_file()
            or line_count(ROOT / name) <= MAX_LINES
            or states_its_length(ROOT / name)
        ]
        assert not stale, f"no longer over the limit without a reason; drop from TO_SPLIT: {stale}"

    def test_the_convention_reads_a_paragraph_start(self) -> None:
        assert REASON.search("Intro.\n\nOne module of about 480 lines on purpose: one loop.")
        assert not REASON.search("One module of about 480 lines on purpose:")  # no reason given
        assert not REASON.search("It is one module of about 480 lines on purpose: x")


# --- import boundaries ---------------------------------------------------------------------

COMPOSITION_ROOT = "cli"
"""The one package of ``services/`` that may import every service: it wires them together."""


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import of ``path`` (relative ones resolved, ``TYPE_CHECKING``
    ones included: a type is a dependency too) and every ``import_module("...")`` of a literal."""
    tree = parsed(path)
    package = path.relative_to(root).parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # from services import scorer
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).split(".")[-1] == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def boundary_breaks(path: Path, root: Path = ROOT) -> Iterator[str]:
    """What ``path`` imports that its place in the tree does not allow."""
    parts = path.relative_to(root).parts
    for line, module in imported_modules(path, root):
        target = module.split(".")
        if target[0] != "services" or len(target) < 2:
            continue
        if parts[0] == "shared":
            yield f"{where(path, line, root)}: shared imports {module}"
        elif len(parts) > 2 and parts[1] not in (COMPOSITION_ROOT, target[1]):
            yield f"{where(path, line, root)}: services/{parts[1]} imports {module}"


class TestImportBoundaries:
    def test_services_never_import_each_other_and_shared_no_service(self) -> None:
        found = [line for path in modules(SERVICES, SHARED) for line in boundary_breaks(path)]
        assert not found, (
            "services never import each other and shared/ never imports a service (move what "
            "both need to shared/; only services/cli wires services together):\n  "
            + "\n  ".join(found)
        )

    @pytest.mark.parametrize(
        ("place", "source", "breaks"),
        [
            ("services/web/x.py", "from services.scorer.usage import f", True),
            ("services/web/x.py", "import services.alerts.rules", True),
            ("services/web/x.py", "from services import alerts", True),
            ("services/web/x.py", "from services.cli.common import x", True),
            ("services/web/api/x.py", "from ...scorer import usage", True),
            ("services/web/x.py", 'importlib.import_module("services.ingest.app")', True),
            ("shared/x.py", "from services.web.app import create_app", True),
            ("shared/read/x.py", "if TYPE_CHECKING:\n    from services.web import deps", True),
            ("services/web/x.py", "from services.web.deps import clock_of", False),
            ("services/web/api/x.py", "from ..deps import clock_of", False),
            ("services/web/x.py", "from shared.read import accounts", False),
            ("services/cli/x.py", "from services.scorer.rescorer import Rescorer", False),
            ("services/__main__.py", "from services.cli import main", False),
        ],
    )
    def test_the_rule(self, place: str, source: str, breaks: bool, tmp_path: Path) -> None:
        path = tmp_path / place
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source + "\n")
        assert bool(list(boundary_breaks(path, tmp_path))) is breaks
