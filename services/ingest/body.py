"""Pure: request bodies in chunks, with the size limit enforced on the decoded bytes.

A gzip body is inflated as it arrives, never more than one byte past the limit, so a small
compressed "bomb" costs at most ``limit`` bytes of memory before it is refused.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Final

GZIP_ENCODINGS: Final = frozenset({"gzip", "x-gzip"})
IDENTITY_ENCODINGS: Final = frozenset({"", "identity"})
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


class BodyError(ValueError):
    """The whole request is unusable; ``status`` is the HTTP answer, the message is safe."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_encoding(content_encoding: str | None) -> bool:
    """True for gzip, False for none; raises 415 for anything else."""
    value = (content_encoding or "").strip().lower()
    if value in GZIP_ENCODINGS:
        return True
    if value in IDENTITY_ENCODINGS:
        return False
    raise BodyError(
        415, f"Content-Encoding: {value[:40]!r} is not supported; send gzip or no encoding"
    )


class BodyReader:
    """Collects a body from its chunks; :meth:`feed` raises 413 as soon as the decoded size
    passes ``limit``; :meth:`finish` raises 400 for a truncated or corrupt gzip stream."""

    def __init__(self, limit: int, *, gzip: bool) -> None:
        self.limit = limit
        self.gzip = gzip
        self._parts: list[bytes] = []
        self._size = 0
        self._inflater: Any = zlib.decompressobj(_GZIP_WBITS) if gzip else None
        self._raw_size = 0

    @property
    def size(self) -> int:
        return self._size

    def _too_large(self) -> BodyError:
        what = "decompressed body" if self.gzip else "body"
        return BodyError(413, f"{what}: more than the limit of {self.limit} bytes")

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        if self._size > self.limit:
            raise self._too_large()
        self._parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._inflater is None:
            self._keep(chunk)
            return
        self._raw_size += len(chunk)
        # The compressed stream can never legitimately be much larger than its content.
        if self._raw_size > self.limit + self.limit // 100 + 1024:
            raise self._too_large()
        data = chunk
        while data:
            try:
                if self._inflater.eof:
                    # Another gzip member follows (concatenated gzip files are valid gzip).
                    self._inflater = zlib.decompressobj(_GZIP_WBITS)
                out = self._inflater.decompress(data, self.limit - self._size + 1)
            except zlib.error:
                raise BodyError(400, "body: not valid gzip data") from None
            self._keep(out)
            data = self._inflater.unconsumed_tail or self._inflater.unused_data

    def finish(self) -> bytes:
        if self._inflater is not None:
            if self._raw_size == 0:
                return b""
            if not self._inflater.eof:
                raise BodyError(400, "body: truncated gzip data")
        return b"".join(self._parts)


def decode_body(raw: bytes, *, limit: int, gzip: bool) -> bytes:
    """Everything at once (tests, small callers): the same checks as :class:`BodyReader`."""
    reader = BodyReader(limit, gzip=gzip)
    reader.feed(raw)
    return reader.finish()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else, with where it went wrong."""
    if not body.strip():
        raise BodyError(400, "body: empty; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except json.JSONDecodeError as err:
        raise BodyError(
            400, f"malformed JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except UnicodeDecodeError:
        raise BodyError(400, "malformed JSON: the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as err:
        raise BodyError(400, f"malformed JSON: {str(err)[:100] or 'nested too deeply'}") from None
    if not isinstance(data, dict):
        raise BodyError(400, f"body: must be a JSON object, not {type(data).__name__}")
    return data
