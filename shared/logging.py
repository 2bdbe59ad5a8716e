"""One logging setup for every process: lines on stderr, as ``key=value`` text or JSON.

``TEND_LOG_FORMAT`` picks the format: ``text`` (the line people read), ``json`` (one JSON object
a line, for a log pipeline) or ``auto`` (text when stderr is a terminal, JSON otherwise). A JSON
line carries ``ts``, ``level``, ``service``, ``logger``, ``event`` (the message), every id the
call passed with ``extra=`` (``account_id``, ``topic``, ``partition``, ``offset``, ...), the
``request_id`` of the HTTP request being handled (:mod:`shared.request_id`) and ``exc`` when
there is an exception.

Neither format ever shows a secret: every line goes through :class:`SecretMask` (URLs masked by
:func:`shared.redact.mask_url`, the process's known secret values, write keys, and the values
of fields named like secrets), as the last step before output, since libraries log what they
were handed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, cast, get_args

from pydantic import BaseModel, SecretStr

from shared.db.keys import KEY_PREFIX
from shared.redact import MASK, RedactingFormatter, mask_text
from shared.request_id import REQUEST_ID

if TYPE_CHECKING:
    from shared.settings import Settings

LogFormat = Literal["text", "json", "auto"]
LOG_FORMATS: Final = get_args(LogFormat)
LINE_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
DEFAULT_SERVICE: Final = "tend"
REPEAT_INTERVAL_S: Final = 30.0
"""A library's error of one kind is logged at most once per this many seconds."""
RATE_LIMITED_LOGGERS: Final = ("aiokafka",)
"""While the broker is down, aiokafka logs every failed connect, metadata refresh, fetch and
heartbeat: about 120 lines a second, which bury everything else."""
MIN_SECRET_CHARS: Final = 6
"""Known secret values shorter than this are not masked by value (a 1-letter password would
mask that letter everywhere); fields named like secrets and URLs are masked whatever their
length."""

# Lower case; a word of a longer one (`passed`, `tokens`) is no secret's name.
_SECRET_WORDS = (
    r"(?:pass(?:word|wd|phrase)?|secret|token|authori[sz]ation|api_?key|write_?key|cookie)"
    r"(?![a-z])"
)
_SECRET_NAME = re.compile(rf"{_SECRET_WORDS}|credential|webhook")
"""Matched against a field's name in lower case: its value is masked whatever it is."""
_SECRET_HINTS: Final = ("pass", "secret", "token", "authori", "key", "cookie", "bearer")
"""Most lines name no secret: a lower-case line without any of these skips the patterns."""
# On the lower-cased line: `password=x`, `"api_token": "x"`, `Authorization: Bearer x`,
# `writeKey=x`, `bearer x`; the value's span is masked in the line as it was.
_NAMED_SECRET = re.compile(
    rf"{_SECRET_WORDS}[\w-]*[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?"
    r"(?P<value>[^\s\"',;&)}\]]+)"
)
_BEARER = re.compile(r"bearer\s+(?P<value>[a-z0-9._~+/=-]{8,})")
_WRITE_KEY = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]+")
# LogRecord's own attributes; anything else on a record came with `extra=`.
_RECORD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_LINE_FIELDS: Final = ("ts", "level", "service", "logger", "event", "exc", "stack")


class SecretMask:
    """Masks secrets in log text and in the values passed with ``extra=``.

    Thread-safe; known values may be added while the process logs (each service adds its
    settings' secrets at start).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._known: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            known = set(self._known) | {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
            # Longest first: a secret containing another is masked whole.
            self._known = tuple(sorted(known, key=len, reverse=True))

    def text(self, text: str) -> str:
        text = mask_text(text)
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MASK)
        if KEY_PREFIX in text:
            text = _WRITE_KEY.sub(KEY_PREFIX + MASK, text)
        return _mask_named(text)

    def value(self, name: str, value: Any) -> Any:
        """``value`` of the field ``name`` as it may be logged (JSON-like values only)."""
        if value is None:
            return None
        if _SECRET_NAME.search(name.lower()):
            return MASK
        if isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {str(k): self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(name, v) for v in value]
        return self.text(str(value))


def _mask_named(text: str) -> str:
    """``text`` with the values of secret-named fields and bearer tokens masked.

    The patterns run on the lower-cased line (case-insensitive patterns cost ten times more,
    on every line); a character whose lower case is longer stays as it is, so positions agree.
    """
    low = text.lower()
    if not any(hint in low for hint in _SECRET_HINTS):
        return text
    if len(low) != len(text):
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    spans = sorted(m.span("value") for p in (_NAMED_SECRET, _BEARER) for m in p.finditer(low))
    if not spans:
        return text
    parts, at = [], 0
    for start, end in spans:
        if end <= at:  # the same value, found by both patterns
            continue
        parts += [text[at : max(start, at)], MASK]
        at = end
    return "".join(parts) + text[at:]


def secrets_of(settings: BaseModel) -> list[str]:
    """Every ``SecretStr`` value set in ``settings`` and its nested blocks."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secrets_of(value))
    return found


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


class TextFormatter(RedactingFormatter):
    """The ``key=value`` line (:data:`LINE_FORMAT`), traceback included, with secrets masked."""

    def __init__(self, mask: SecretMask) -> None:
        super().__init__(LINE_FORMAT)
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        return self.mask.text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC, ISO 8601), level, service, logger, event, the fields
    passed with ``extra=``, exc and stack when there are any; secrets masked field by field."""

    def __init__(self, mask: SecretMask, service: str = DEFAULT_SERVICE) -> None:
        super().__init__()
        self.mask = mask
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "event": self.mask.text(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(_access_fields(record.args, self.mask))
        for key, value in record.__dict__.items():
            if key in _RECORD_FIELDS or key.startswith("_"):
                continue
            # An id never hides a field of the line itself.
            line[f"extra_{key}" if key in _LINE_FIELDS else key] = self.mask.value(key, value)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = self.mask.text(record.exc_text)
        if record.stack_info:
            line["stack"] = self.mask.text(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def _access_fields(args: tuple[Any, ...], mask: SecretMask) -> dict[str, Any]:
    """uvicorn's access line as fields: its arguments are (client, method, path, http
    version, status)."""
    if len(args) != 5:
        return {}
    _, method, path, _, status = args
    return {"method": method, "path": mask.text(str(path)), "status": status}


def resolve_format(fmt: str | None, stream: TextIO) -> Literal["text", "json"]:
    """``fmt`` (or ``TEND_LOG_FORMAT``, or auto) as the format the lines are written in."""
    chosen = fmt or os.environ.get("TEND_LOG_FORMAT") or "auto"
    if chosen not in LOG_FORMATS:
        raise ValueError(f"TEND_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}")
    if chosen == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return cast(Literal["text", "json"], chosen)


class LogHandler(logging.StreamHandler[TextIO]):
    """The handler every process logs through, its lines masked by ``mask`` (webhook URLs are
    secrets, and libraries log what they are handed, statement parameters included)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        fmt: Literal["text", "json"] = "text",
        service: str = DEFAULT_SERVICE,
        mask: SecretMask | None = None,
    ) -> None:
        super().__init__(stream)
        self.mask = mask or SecretMask()
        self.configure(fmt, service)
        # On the handler, not the loggers: a logger's filters do not see its children's records.
        self.addFilter(RepeatFilter())

    def configure(self, fmt: Literal["text", "json"], service: str) -> None:
        self.fmt, self.service = fmt, service
        self.setFormatter(
            JsonFormatter(self.mask, service) if fmt == "json" else TextFormatter(self.mask)
        )


def log_handler(
    stream: TextIO,
    *,
    fmt: Literal["text", "json"] = "text",
    service: str = DEFAULT_SERVICE,
    mask: SecretMask | None = None,
) -> LogHandler:
    return LogHandler(stream, fmt=fmt, service=service, mask=mask)


_MASK = SecretMask()
"""The process's one mask: what every call of setup_logging added."""


def setup_logging(
    level: str = "INFO",
    *,
    service: str | None = None,
    fmt: str | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Log to stderr at ``level`` for ``service`` (``"ingest"``, ...) in ``fmt`` (``None``:
    ``TEND_LOG_FORMAT``, auto when unset), masking ``secrets`` (see :func:`secrets_of`).

    Called again (``tend up`` starts several services in one process), it keeps the one
    handler and updates it: a later call without a service or format keeps the earlier ones.
    """
    _MASK.add(secrets)
    root = logging.getLogger()
    handler: LogHandler | None = getattr(root, "_tend_handler", None)
    if handler is None:
        handler = LogHandler(
            sys.stderr,
            fmt=resolve_format(fmt, sys.stderr),
            service=service or DEFAULT_SERVICE,
            mask=_MASK,
        )
        root.addHandler(handler)
        root._tend_handler = handler  # type: ignore[attr-defined]
    elif fmt is not None or service is not None:
        handler.configure(
            resolve_format(fmt, sys.stderr) if fmt is not None else handler.fmt,
            service or handler.service,
        )
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def configure_logging(settings: Settings, service: str) -> None:
    """:func:`setup_logging` as ``settings`` ask (``TEND_LOG_LEVEL``, ``TEND_LOG_FORMAT``),
    lines marked with ``service``, the settings' secrets masked by value."""
    setup_logging(
        settings.log_level,
        service=service,
        fmt=settings.log_format,
        secrets=secrets_of(settings),
    )
