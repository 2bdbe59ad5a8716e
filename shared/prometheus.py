"""The ``/metrics`` payload of every service, in one process or in several worker processes.

prometheus-client keeps metric values in process memory; with ``tend ingest --workers N`` each
scrape would reach one random worker and counters would jump between workers' values. In
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before any worker imports
prometheus-client) every worker writes its values to memory-mapped files in that directory and
:func:`render_metrics` sums them across workers, so counters only go up.

Contract:

- :func:`prepare_multiprocess_dir` gives the parent a fresh, empty directory and exports it in
  the environment, so workers it starts afterwards inherit it; stale files from an earlier run
  would otherwise be summed in.
- :func:`mark_worker_dead` removes a finished worker's live-gauge files (counters and
  histograms are kept: their totals must not go down when a worker exits).
- ``process_*`` and ``python_*`` metrics exist only in single-process mode: prometheus-client
  cannot aggregate them across workers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The multiprocess directory of this process, or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def render_metrics() -> tuple[bytes, str]:
    """The text exposition of this process's metrics (all workers' in multiprocess mode) and
    its content type."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(prefix: str = "tend-metrics-") -> Path:
    """A fresh empty directory for the workers' metric files, exported as
    ``PROMETHEUS_MULTIPROC_DIR``. Call it in the parent before any worker starts."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == str(path):
        del os.environ[MULTIPROC_ENV]


def mark_worker_dead(pid: int | None = None) -> None:
    """Forget the live gauges of a finished worker (no-op in single-process mode)."""
    if multiprocess_dir() is None:
        return
    multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]
