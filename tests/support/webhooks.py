"""The receiver's side of tend's outbound webhooks: the verification snippet of
docs/webhooks.md, loaded and run exactly as the page prints it."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@cache
def docs_verifier() -> Callable[..., bool]:
    """``verify_tend_signature(secret, header, body, tolerance_s=300)`` from docs/webhooks.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    (snippet,) = [b for b in blocks if "def verify_tend_signature" in b]
    scope: dict[str, Any] = {}
    exec(compile(snippet, str(DOCS), "exec"), scope)
    verifier: Callable[..., bool] = scope["verify_tend_signature"]
    return verifier


def checker(secret: str) -> Callable[[str, bytes], bool]:
    """A receiver's signature check with ``secret`` (for ``WebhookReceiver.check``)."""
    verify = docs_verifier()
    return lambda header, body: verify(secret, header, body)
