"""The report as a PDF: the same HTML page printed by headless Chromium (``--print-to-pdf``).

The page is self-contained (inline styles and SVG, no network), so printing needs nothing but
the file. Each print runs in its own temporary directory with its own browser profile, so
concurrent prints (several replicas, or a test beside the console) never share a lock; the
process is killed when it outlives ``timeout_s`` or when the caller is cancelled (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["PdfError", "print_pdf"]


class PdfError(RuntimeError):
    """Chromium is missing, failed, or took too long; the message says which."""


def _command(chromium: str, page: Path, out: Path, profile: Path) -> list[str]:
    cmd = [
        chromium,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-pdf-header-footer",
        f"--user-data-dir={profile}",
        f"--print-to-pdf={out}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return [*cmd, page.as_uri()]


async def print_pdf(page: str, chromium: str = "chromium", timeout_s: float = 60.0) -> bytes:
    """``page`` (an HTML document) printed to PDF by the Chromium at ``chromium`` (a path or
    a name on PATH). Raises :class:`PdfError`."""
    binary = shutil.which(chromium)
    if binary is None:
        raise PdfError(f"no Chromium at {chromium!r} (TEND_REPORTS__CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="tend-pdf-") as tmp:
        work = Path(tmp)
        html, out = work / "report.html", work / "report.pdf"
        html.write_text(page, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            *_command(binary, html, out, work / "profile"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except BaseException as exc:  # a timeout, or the caller cancelled (shutdown): no orphan
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
            if isinstance(exc, TimeoutError):
                raise PdfError(f"Chromium took longer than {timeout_s:g} s to print") from None
            raise
        data = out.read_bytes() if out.exists() else b""
        if proc.returncode != 0 or not data.startswith(b"%PDF"):
            last = (err or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise PdfError(
                f"Chromium could not print the report (exit {proc.returncode}): {last[0]}"
            )
        return data
