"""The web service's Jinja2 environment: templates in ``services/web/templates/``, autoescaping
on for every template, and the number and date formats of :mod:`shared.format` as filters.

Every public function of :mod:`shared.format` is a filter under its own name
(``{{ account.mrr | money }}``, ``{{ row.score | score(1) }}``, ``{{ at | timestamp }}``);
``count`` replaces Jinja's alias of ``length``, which templates write as ``length``. A missing
variable is an error (``StrictUndefined``), not an empty string, so a renamed field fails the
tests instead of blanking a page. ``path_segment`` quotes a value for one segment of a URL path
(``/`` included). ``money`` and ``mrr`` write the amount in the render's ``currency`` (an ISO
code: the configuration's ``currency``, which every page and report puts in its context; US
dollars when none is given).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from shared import format as fmt

TEMPLATES_DIR = Path(__file__).parent / "templates"


@cache
def environment() -> Environment:
    """The one environment (templates are compiled once per process)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update({name: getattr(fmt, name) for name in fmt.__all__ if name != "MISSING"})
    env.filters["path_segment"] = path_segment
    env.filters["money"] = _money
    env.filters["mrr"] = _mrr
    env.globals["MISSING"] = fmt.MISSING
    return env


def path_segment(value: object) -> str:
    return quote(str(value), safe="")


def _currency(context: Context) -> str:
    code = context.get("currency")
    return code if isinstance(code, str) and code else fmt.DEFAULT_CURRENCY


@pass_context
def _money(context: Context, amount: float | None, cents: bool = False) -> str:
    return fmt.money(amount, cents=cents, currency=_currency(context))


@pass_context
def _mrr(context: Context, amount: float | None) -> str:
    return fmt.mrr(amount, _currency(context))
