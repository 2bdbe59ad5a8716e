"""One logging setup for every process: key=value lines on stderr."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from shared.redact import RedactingFormatter

LINE_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def log_handler(stream: TextIO) -> logging.Handler:
    """The handler every process logs through: URLs in a line are masked (webhook URLs are
    secrets, and libraries log what they are handed, statement parameters included)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(LINE_FORMAT))
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
