"""Run a ``tend`` command to completion as a child process (``python -m services``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_tend(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``tend ARGS`` with exactly ``env``; its exit code and output, whatever they are."""
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
