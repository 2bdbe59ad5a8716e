"""Masking of secret URLs (Slack incoming webhooks carry their secret in the path).

:func:`mask_url` is the one masking function: the read API, the alerts API, the console and the
log formatter all show a webhook URL through it. It keeps what tells an operator where a
message goes (scheme, host, first path segment) and drops what would let anyone post there.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MASK", "RedactingFormatter", "mask_text", "mask_url", "mask_values"]

MASK = "…"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>\\]+")


def mask_url(value: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/xyz`` -> ``https://hooks.slack.com/services/…``.

    Anything that is not an absolute URL (a Slack handle such as ``@dana``, an email address)
    is returned as it is. User info, later path segments, query and fragment are dropped;
    masking a masked URL changes nothing.
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        # Unparseable (a bad port, a broken IPv6 literal): show nothing of it.
        return MASK if "://" in value else value
    if not parts.scheme or not parts.netloc:
        return value
    hostport = (host or "") + (f":{port}" if port is not None else "")
    if ":" in (host or ""):
        hostport = f"[{host}]" + (f":{port}" if port is not None else "")
    segments = parts.path.split("/")[1:]
    kept = f"{parts.scheme}://{hostport}" + (f"/{segments[0]}" if segments else "")
    rest = "/".join(segments[1:])
    dropped = bool(parts.username or parts.password or parts.query or parts.fragment)
    if not dropped and rest in ("", MASK):
        return kept + ("/" + rest if len(segments) > 1 else "")
    return kept + ("" if kept.endswith("/") else "/") + MASK


def mask_text(text: str) -> str:
    """``text`` with every URL in it masked by :func:`mask_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def mask_values(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every URL in its strings masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_values(v) for v in value]
    return value


class RedactingFormatter(logging.Formatter):
    """Masks every URL in the formatted line, traceback included.

    On the handler rather than on each logger: libraries log values they were handed (aiosqlite
    logs statement parameters at DEBUG, httpx logs request URLs at INFO), so only the last
    step before output sees everything.
    """

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))
