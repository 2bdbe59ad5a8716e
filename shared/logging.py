"""One logging setup for every process: key=value lines on stderr."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Final, TextIO

from shared.redact import RedactingFormatter

LINE_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
REPEAT_INTERVAL_S: Final = 30.0
"""A library's error of one kind is logged at most once per this many seconds."""
RATE_LIMITED_LOGGERS: Final = ("aiokafka",)
"""While the broker is down, aiokafka logs every failed connect, metadata refresh, fetch and
heartbeat: about 120 lines a second, which bury everything else."""


class RepeatFilter(logging.Filter):
    """Lets through one record per kind per ``interval_s`` from the loggers under
    ``prefixes``; the next one let through says how many were suppressed meanwhile.

    A kind is (logger, level, message template): "Unable connect to node with id %s" is one
    kind whatever the node. Records of other loggers always pass.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = RATE_LIMITED_LOGGERS,
        interval_s: float = REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        # kind -> (when one was last let through, how many were suppressed since)
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self.prefixes):
            return True
        kind = (name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            last = self._kinds.get(kind)
            if last is not None and now - last[0] < self.interval_s:
                self._kinds[kind] = (last[0], last[1] + 1)
                return False
            self._kinds[kind] = (now, 0)
        if last is not None and last[1]:
            record.msg = (
                f"{record.getMessage()} ({last[1]} more like this in the last "
                f"{now - last[0]:.0f}s not logged)"
            )
            record.args = None
        return True


def log_handler(stream: TextIO) -> logging.Handler:
    """The handler every process logs through: URLs in a line are masked (webhook URLs are
    secrets, and libraries log what they are handed, statement parameters included)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(LINE_FORMAT))
    # On the handler, not the loggers: a logger's filters do not see its children's records.
    handler.addFilter(RepeatFilter())
    return handler


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_tend_configured", False):
        root.setLevel(level.upper())
        return
    handler = log_handler(sys.stderr)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._tend_configured = True  # type: ignore[attr-defined]
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
