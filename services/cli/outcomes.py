"""Outcomes for ``tend accounts import --outcomes FILE`` (issue 12; columns in docs/retention.md).

The file is read whole and checked before anything is written (every problem names its line
or item and field); then it is recorded in the same transaction as the profiles imported with
it, so an outcome may name an account the same command creates. Re-importing a file changes
nothing (the natural key ``(account_id, kind, effective_on)`` is upserted).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from services.cli.common import Failure

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.outcomes.model import CustomerOutcome, OutcomesPolicy
    from shared.outcomes.recording import Recorded


def read_outcomes_file(path: Path) -> list[CustomerOutcome]:
    """The file's outcomes (CSV, or JSON when it ends in ``.json``); a :class:`Failure` listing
    every problem otherwise."""
    from shared.outcomes.importer import OutcomeImportError, read_outcomes

    try:
        return [i.outcome for i in read_outcomes(path)]
    except OutcomeImportError as err:
        raise Failure(f"{path}: {err}") from None
    except OSError as err:
        raise Failure(f"{path}: cannot read it ({err.strerror or err})") from None


async def record_outcomes_file(
    session: AsyncSession,
    outcomes: list[CustomerOutcome],
    path: Path,
    policy: OutcomesPolicy | None = None,
) -> Recorded:
    """Record ``outcomes`` (the caller's transaction commits); unknown accounts and outcomes
    that contradict the recorded ones are a :class:`Failure`, and nothing is recorded."""
    from shared.outcomes.mrr import InconsistentOutcomes
    from shared.outcomes.recording import record_outcomes
    from shared.outcomes.repository import UnknownAccounts

    try:
        return await record_outcomes(session, outcomes, now=datetime.now(UTC), policy=policy)
    except UnknownAccounts as err:
        raise Failure(f"{path}: {err} (import their profiles first)") from None
    except InconsistentOutcomes as err:
        raise Failure(f"{path}: {err}; nothing was recorded") from None


def describe(recorded: Recorded, path: Path) -> str:
    r = recorded.result
    parts = [f"{r.inserted} new", f"{r.updated} changed", f"{r.unchanged} unchanged"]
    text = f"Recorded outcomes from {path}: {', '.join(parts)}."
    if recorded.renewal_dates_moved:
        text += f" Renewal dates moved: {recorded.renewal_dates_moved}."
    if recorded.alerts_resolved:
        text += f" Alerts resolved (account cancelled): {recorded.alerts_resolved}."
    return text
