"""docs/instrumenting.md's examples, run against a real tend ingest (issue 14).

Every fenced block after an HTML comment ``run: <curl|python|node|browser>, sends <N>`` is
executed as a reader would run it (curl lines by bash, Python by this interpreter with the dev
extra's segment-analytics-python and rudder-sdk-python, JavaScript by node beside the npm
packages of tests/js), with ``TEND_URL`` and ``TEND_WRITE_KEY`` in the environment and the
example's account ``acme-corp`` renamed so runs stay apart. Its N events must then be on the
events topic. The browser's example is bundled and run in headless Chromium by
tests/ingest/test_sdks.py, with its placeholders (key, host, scheme) filled in.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp, read_account_events
from tests.support.js import JS_DIR

DOC = Path(__file__).resolve().parents[2] / "docs" / "instrumenting.md"
MARKED = re.compile(
    r"^<!-- run: (?P<kind>curl|python|node|browser), sends (?P<sends>\d+) -->\n"
    r"```(?P<lang>\w+)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
LANG = {"curl": "sh", "python": "python", "node": "js", "browser": "js"}
ACCOUNT = "acme-corp"


@dataclass(frozen=True)
class Example:
    kind: str
    sends: int
    lang: str
    code: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.kind}-line-{self.line}"


def examples() -> list[Example]:
    text = DOC.read_text()
    return [
        Example(
            kind=m["kind"],
            sends=int(m["sends"]),
            lang=m["lang"],
            code=m["code"],
            line=text.count("\n", 0, m.start()) + 1,
        )
        for m in MARKED.finditer(text)
    ]


EXAMPLES = examples()
RUN_HERE = [e for e in EXAMPLES if e.kind != "browser"]
"""The browser's example runs in headless Chromium: tests/ingest/test_sdks.py."""


class TestTheDoc:
    def test_every_run_marker_is_found_with_its_block(self) -> None:
        markers = DOC.read_text().count("<!-- run:")
        assert len(EXAMPLES) == markers > 0
        assert {e.kind for e in EXAMPLES} == {"curl", "python", "node", "browser"}
        for e in EXAMPLES:
            assert e.lang == LANG[e.kind], e.id
            assert ACCOUNT in e.code, f"{e.id}: the examples' account is {ACCOUNT}"


def run(example: Example, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if example.kind == "curl":
        command, stdin, cwd = ["bash", "-euo", "pipefail", "-c", example.code], None, None
    elif example.kind == "python":
        command, stdin, cwd = [sys.executable, "-c", example.code], None, None
    else:
        # From stdin, require() resolves from the working directory: tests/js's packages.
        command, stdin, cwd = ["node", "-"], example.code, JS_DIR
    return subprocess.run(
        command, input=stdin, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.integration
@pytest.mark.parametrize("example", RUN_HERE, ids=[e.id for e in RUN_HERE])
async def test_the_example_runs_and_its_events_arrive(
    example: Example,
    request: pytest.FixtureRequest,
    ingest: ServedApp,
    write_key: str,
    broker: TansuBroker,
) -> None:
    if example.kind == "node":
        request.getfixturevalue("npm_sdks")
    account = f"{ACCOUNT}-{uuid.uuid4().hex[:8]}"
    renamed = Example(**{**example.__dict__, "code": example.code.replace(ACCOUNT, account)})
    env = {**os.environ, "TEND_URL": ingest.url, "TEND_WRITE_KEY": write_key}
    done = await asyncio.to_thread(run, renamed, env)
    assert done.returncode == 0, (done.stdout, done.stderr)

    events = await read_account_events(broker.bootstrap, account, example.sends)
    assert len(events) == example.sends, [(e.type, e.name) for e in events]
    assert len({e.event_id for e in events}) == example.sends  # each call once
