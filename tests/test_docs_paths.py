"""Every path and module the docs name exists: README.md and docs/*.md name code in backticks
(```services/web/app.py```, ```shared/read/```, ```shared.scores.ScoreMessage```), and a
newcomer who follows one must find it. A file moved or renamed without its docs fails here.

Checked: a backticked path under one of :data:`ROOTS` (a file, or a folder when it ends with
``/``; ``*`` and ``{a,b}`` are expanded and must match something), and a backticked dotted name
starting ``services.`` or ``shared.`` (a module, or a name defined at the top of one, or a
class's attribute); and the target of every relative markdown link (``[api](docs/api.md)``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROOTS = ("services", "shared", "tests", "migrations", "deploy", "docs", "scripts", "bench", ".ci")

NOT_IN_TREE: dict[str, str] = {
    "deploy/.env": "the operator writes it (docs/operations.md: compose reads it)",
    "deploy/tend.env": "the operator's copy of deploy/tend.env.example",
}
"""Paths docs name that are not meant to be in the tree, each with why."""

SPAN = re.compile(r"``?([^`\n]+?)``?")
PATH = re.compile(r"(?:\./)?((?:" + "|".join(map(re.escape, ROOTS)) + r")/[\w.*{},/-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOTTED = re.compile(r"((?:services|shared)(?:\.\w+)+)(?:\(\))?")


def spans(text: str) -> Iterator[tuple[int, str]]:
    """``(line, content)`` of every inline code span of a markdown text."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in SPAN.finditer(line):
            yield number, match.group(1).strip()


def expand(pattern: str) -> list[str]:
    """``{a,b}`` alternatives spelt out: ``x/{a,b}.py`` -> ``x/a.py``, ``x/b.py``."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for part in match.group(1).split(",") for name in expand(head + part + tail)]


def path_exists(path: str, root: Path = ROOT) -> bool:
    for each in expand(path):
        name = each.rstrip("/")
        found = list(root.glob(name)) if "*" in name else [root / name]
        wanted = (lambda p: p.is_dir()) if each.endswith("/") else (lambda p: p.exists())
        if not any(wanted(p) for p in found):
            return False
    return True


def top_level_names(tree: ast.Module | ast.ClassDef) -> dict[str, ast.AST]:
    """Names a module (or class body) defines: functions, classes, assignments, imports."""
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING blocks, optional imports
            names.update(top_level_names(ast.Module(body=node.body, type_ignores=[])))
    return names


def dotted_exists(name: str, root: Path = ROOT) -> bool:
    """A module (``shared.read``), or a module's name (``shared.read.accounts.find_accounts``),
    or a class's attribute (``shared.api_errors.ApiError.status``)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        module = base.with_suffix(".py")
        if not module.is_file():
            module = base / "__init__.py"
        if module.is_file():
            break
    else:
        return False
    scope: ast.Module | ast.ClassDef = ast.parse(module.read_text(encoding="utf-8"))
    for attribute in parts[cut:]:
        found = top_level_names(scope).get(attribute)
        if found is None:
            return False
        if not isinstance(found, ast.ClassDef):
            return True  # past a function or a value, the docs name what it holds
        scope = found
    return True


def named_in(doc: Path, root: Path = ROOT) -> Iterator[tuple[str, bool]]:
    """``("doc:line: name", exists)`` for every path and dotted name ``doc`` puts in backticks."""
    for line, content in spans(doc.read_text(encoding="utf-8")):
        place = f"{doc.relative_to(root).as_posix()}:{line}: {content}"
        if match := PATH.fullmatch(content):
            path = match.group(1)
            yield place, path in NOT_IN_TREE or path_exists(path, root)
        elif match := DOTTED.fullmatch(content):
            yield place, dotted_exists(match.group(1), root)


def broken_links(doc: Path, root: Path = ROOT) -> Iterator[str]:
    """``doc:line: target`` of every relative link of ``doc`` whose file is not there."""
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        for match in LINK.finditer(line):
            target = match.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL, mailto:, an anchor on the same page
            if not (doc.parent / target.split("#")[0]).exists():
                yield f"{doc.relative_to(root).as_posix()}:{number}: {target}"


def test_every_relative_link_of_the_docs_has_its_file() -> None:
    broken = [place for doc in DOCS for place in broken_links(doc)]
    assert not broken, "links to files that are not there:\n  " + "\n  ".join(broken)


def test_every_path_the_docs_name_exists() -> None:
    missing = [place for doc in DOCS for place, exists in named_in(doc) if not exists]
    assert not missing, "the docs name what is not in the tree:\n  " + "\n  ".join(missing)


def test_the_docs_name_code() -> None:
    """The check has something to check: the architecture doc names modules by the dozen."""
    named = [place for doc in DOCS for place, _ in named_in(doc)]
    assert len(named) > 50


class TestTheCheck:
    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        (tmp_path / "shared" / "read").mkdir(parents=True)
        (tmp_path / "shared" / "__init__.py").write_text("")
        (tmp_path / "shared" / "read" / "__init__.py").write_text("from x import y as alias\n")
        (tmp_path / "shared" / "read" / "accounts.py").write_text(
            "class A:\n    field: int = 1\n    def m(self): ...\n\ndef f(): ...\nX = 1\n"
        )
        (tmp_path / "docs").mkdir()
        return tmp_path

    @pytest.mark.parametrize(
        ("span", "exists"),
        [
            ("`shared/read/accounts.py`", True),
            ("`shared/read/`", True),
            ("`./shared/read/`", True),
            ("`shared/read/*.py`", True),
            ("`shared/read/{accounts,__init__}.py`", True),
            ("`shared.read`", True),
            ("`shared.read.accounts.f()`", True),
            ("`shared.read.accounts.A.m`", True),
            ("`shared.read.accounts.A.field`", True),
            ("`shared.read.accounts.X`", True),
            ("`shared.read.alias`", True),
            ("`shared.read.accounts`", True),
            ("`shared/read/scores.py`", False),
            ("`shared/read/accounts.py/`", False),
            ("`shared/read/*.txt`", False),
            ("`shared/read/{accounts,scores}.py`", False),
            ("`shared.read.scores`", False),
            ("`shared.read.accounts.g`", False),
            ("`shared.read.accounts.A.other`", False),
            ("`services.web`", False),
        ],
    )
    def test_a_span(self, tree: Path, span: str, exists: bool) -> None:
        doc = tree / "docs" / "x.md"
        doc.write_text(f"See {span} here.\n")
        assert [ok for _, ok in named_in(doc, tree)] == [exists]

    @pytest.mark.parametrize(
        "span", ["`TEND_CONFIG=deploy/tend.yaml`", "`services`", "`text/plain`", "`shared`"]
    )
    def test_other_spans_are_not_paths(self, tree: Path, span: str) -> None:
        doc = tree / "docs" / "x.md"
        doc.write_text(f"Set {span}.\n")
        assert list(named_in(doc, tree)) == []

    def test_links(self, tree: Path) -> None:
        doc = tree / "docs" / "x.md"
        doc.write_text(
            "[a](../shared/read/accounts.py) [b](x.md#top) [c](https://example.com/n.md) "
            "[d](#here) [e](gone.md) [f](../shared/none.py#L1)\n"
        )
        assert list(broken_links(doc, tree)) == [
            "docs/x.md:1: gone.md",
            "docs/x.md:1: ../shared/none.py#L1",
        ]

    def test_a_double_backtick_span(self, tree: Path) -> None:
        doc = tree / "docs" / "x.md"
        doc.write_text("``shared/read/`` and ``shared/none.py``\n")
        assert [ok for _, ok in named_in(doc, tree)] == [True, False]
