"""One logging setup for every process: key=value lines on stderr."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_tend_configured", False):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._tend_configured = True  # type: ignore[attr-defined]
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
