"""Migrated SQLite files by copy: the migrations run once per test process into a template file,
and every test's database is a copy of it (a file copy instead of ~0.2 s of Alembic)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_lock = threading.Lock()
_template: Path | None = None


def _migrated_template() -> Path:
    global _template
    with _lock:
        if _template is None:
            from shared.db.migrate import upgrade

            directory = Path(tempfile.mkdtemp(prefix="tend-sqlite-template-"))
            atexit.register(shutil.rmtree, directory, True)
            path = directory / "template.db"
            # upgrade() runs its own event loop: in a thread, the caller's loop may be running.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(upgrade, f"sqlite+aiosqlite:///{path}").result()
            for suffix in ("-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    raise RuntimeError(f"the migrated template left {path}{suffix} behind")
            _template = path
        return _template


def migrated_sqlite(path: Path | str) -> str:
    """Write a migrated (head) SQLite database at ``path``; its SQLAlchemy async URL."""
    shutil.copyfile(_migrated_template(), path)
    return f"sqlite+aiosqlite:///{path}"
