"""A tend service (``tend scorer``, ``tend alerts``, ``tend web``, ``tend up`` ...) as a child
process, for crash and layout tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.broker import free_port

REPO = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """``python -m services COMMAND`` with only the given ``TEND_*`` settings, one log file per
    run (so a restart's log does not hide the previous one's)."""

    def __init__(self, command: str, env: dict[str, str], tmp: Path) -> None:
        self.command = command
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
        self.env.update(env, PYTHONUNBUFFERED="1")
        self.tmp = tmp
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"{command}-0.log"
        self.port = 0
        """The port of the latest start (each start picks a free one)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.runs += 1
        self.log_path = self.tmp / f"{self.command}-{self.runs}.log"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services", self.command, "--port", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def alive(self) -> None:
        """Raises when the process ended on its own (its log tail says why)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"tend {self.command} exited {self.proc.returncode}: {self.tail()}"
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, and check that it drained: uvicorn ran the lifespan shutdown (the service
        finished its batch, flushed and committed) and the process ended on its own, with exit
        code 0, within ``timeout_s``."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"tend {self.command} did not stop on SIGTERM: {self.tail()}"
            ) from None
        log = self.log_path.read_text(errors="replace")
        assert "Application shutdown complete" in log, self.tail()
        assert "stopped with an error" not in log, self.tail()
        # A drained service exits 0 (uvicorn alone would re-raise SIGTERM and end with -15).
        assert code == 0, (code, self.tail())

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
