"""The real SDKs from npm (tests/js/package.json, pinned by its package-lock.json): installed
with ``npm ci`` when missing or out of date, run by node (the Node SDKs) or bundled with
esbuild for a page (the browser SDK)."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE_MODULES = JS_DIR / "node_modules"
NO_NODE = "node and npm are needed for the SDK tests (Debian packages nodejs and npm)"


def node_missing() -> str | None:
    """Why the SDK tests cannot run here, or None when they can."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return NO_NODE
    return None


def install() -> None:
    """``npm ci`` in tests/js unless node_modules matches the lock file (scripts/test does
    the same first); one process at a time."""
    lock = JS_DIR / "package-lock.json"
    installed = NODE_MODULES / ".package-lock.json"
    with (JS_DIR / ".npm-ci.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
            return
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            check=True,
            capture_output=True,
            timeout=600,
        )


def bundle(out: Path, source: str | None = None) -> bytes:
    """One script for a page, with its imports from tests/js's packages: ``source`` (an app's
    module), or else tests/js/browser_entry.js (@segment/analytics-next as
    ``window.AnalyticsBrowser``)."""
    subprocess.run(
        [
            str(NODE_MODULES / ".bin" / "esbuild"),
            *([] if source is not None else ["browser_entry.js"]),
            "--bundle",
            "--format=iife",
            "--log-level=error",
            f"--outfile={out}",
        ],
        input=source.encode() if source is not None else None,
        cwd=JS_DIR,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out.read_bytes()


def send_with_node_sdk(
    sdk: str, url: str, write_key: str, calls: list[dict[str, Any]]
) -> dict[str, Any]:
    """Runs tests/js/send_node.js: ``calls`` ({"method", "message"}) through ``sdk``
    ("segment" or "rudderstack"), flushed; returns what the SDK reported."""
    options = {"sdk": sdk, "url": url, "writeKey": write_key, "calls": calls}
    done = subprocess.run(
        ["node", "send_node.js", json.dumps(options)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
