"""A score as the scorer stores it in ``health_scores``: decoded (:class:`ScoreRow`) or with its
JSON parts as JSON texts (:class:`EncodedScore`), and the conversions between a stored row and a
published :class:`~shared.scores.ScoreMessage`. Values only: the queries are in
:mod:`services.scorer.score_history`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgspec

from shared.scores import PreviousScore, ScoreMessage, row_parts


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One ``health_scores`` row: an account's score as of a day, with its explanation."""

    account_id: str
    as_of: date
    score: float | None
    """None when there was nothing to judge."""
    band: str
    components: dict[str, Any] = field(default_factory=dict)
    left_out: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    moved: dict[str, Any] = field(default_factory=dict)
    previous_score: float | None = None
    previous_band: str | None = None
    computed_at: datetime | None = None
    """Defaults to now when saved."""
    provisional: bool = False
    """A score of today, whose day is not complete yet."""

    def same_score(self, other: ScoreRow) -> bool:
        """Whether ``other`` says the same as this row (when it was computed aside)."""
        return all(getattr(self, f) == getattr(other, f) for f in _SCORE_FIELDS)

    def encoded(self) -> EncodedScore:
        """This row with its JSON parts encoded as the engine encodes them (``json.dumps``)."""
        return EncodedScore(
            account_id=self.account_id,
            as_of=self.as_of,
            score=self.score,
            band=self.band,
            components=json.dumps(self.components),
            left_out=json.dumps(list(self.left_out)),
            metrics=json.dumps(self.metrics),
            moved=json.dumps(self.moved),
            previous_score=self.previous_score,
            previous_band=self.previous_band,
            computed_at=self.computed_at,
            provisional=self.provisional,
        )


_SCORE_FIELDS = (
    "score",
    "band",
    "components",
    "left_out",
    "metrics",
    "moved",
    "previous_score",
    "previous_band",
    "provisional",
)


@dataclass(frozen=True, slots=True)
class EncodedScore:
    """A ``health_scores`` row whose JSON parts are JSON texts already (cut out of the
    published message by :func:`shared.scores.row_parts`): saved without encoding them again,
    and compared with a stored row without decoding either while the texts are the same."""

    account_id: str
    as_of: date
    score: float | None
    band: str
    components: str
    left_out: str
    metrics: str
    moved: str
    previous_score: float | None = None
    previous_band: str | None = None
    computed_at: datetime | None = None
    """Defaults to now when saved."""
    provisional: bool = False

    def same_score(self, other: EncodedScore) -> bool:
        """Whether ``other`` says the same as this row: the same values, as
        :meth:`ScoreRow.same_score` compares them (a text written by an older version may
        differ in spacing, number format or key order: then the decoded values decide)."""
        if any(getattr(self, f) != getattr(other, f) for f in _SCALAR_FIELDS):
            return False
        for f in JSON_PARTS:
            mine, theirs = getattr(self, f), getattr(other, f)
            if mine != theirs and json.loads(mine) != json.loads(theirs):
                return False
        return True

    def decoded(self) -> ScoreRow:
        return ScoreRow(
            account_id=self.account_id,
            as_of=self.as_of,
            score=self.score,
            band=self.band,
            components=json.loads(self.components),
            left_out=json.loads(self.left_out),
            metrics=json.loads(self.metrics),
            moved=json.loads(self.moved),
            previous_score=self.previous_score,
            previous_band=self.previous_band,
            computed_at=self.computed_at,
            provisional=self.provisional,
        )


JSON_PARTS = ("components", "left_out", "metrics", "moved")
"""The columns of ``health_scores`` that hold JSON."""
_SCALAR_FIELDS = tuple(f for f in _SCORE_FIELDS if f not in JSON_PARTS)


ONBOARDING_COMPONENTS = frozenset({"seats_activated", "time_to_first_value", "first_week_logins"})


def previous_from_row(row: ScoreRow) -> PreviousScore:
    return previous_score(row.score, row.band, row.components, row.as_of)


def previous_score(
    score: float | None, band: str, components: Mapping[str, Any], as_of: date
) -> PreviousScore:
    """What the scorer remembers of a stored score (its ``components`` as stored: an object
    of component objects by name)."""
    points = {name: float(c["score"]) for name, c in components.items() if isinstance(c, dict)}
    return _previous(score, band, points, as_of)


def _previous(
    score: float | None, band: str, points: dict[str, float], as_of: date
) -> PreviousScore:
    onboarding = band == "new" or bool(ONBOARDING_COMPONENTS & points.keys())
    return PreviousScore(
        score=score,
        band=band,
        scorecard="onboarding" if onboarding else "health",
        components=points,
        as_of=as_of,
    )


class _Points(msgspec.Struct):
    """What a stored component object says that the scorer remembers (its other keys are
    skipped, not decoded)."""

    score: float


_COMPONENT_POINTS = msgspec.json.Decoder(dict[str, _Points])


def previous_score_from_text(
    score: float | None, band: str, components: str | None, as_of: date
) -> PreviousScore:
    """:func:`previous_score` of a row whose components are the stored JSON text: only each
    component's points are decoded (the inputs and explanations are most of the text)."""
    if components is None:
        return previous_score(score, band, {}, as_of)
    try:
        points = _COMPONENT_POINTS.decode(components)
    except msgspec.ValidationError:
        # Written by an older version (not an object of component objects): as it is read.
        return previous_score(score, band, json.loads(components) or {}, as_of)
    return _previous(score, band, {name: c.score for name, c in points.items()}, as_of)


_ROW_PARTS = {"components", "left_out", "metrics", "moved"}


def row_from_message(msg: ScoreMessage) -> ScoreRow:
    # One serialiser call for all the JSON parts (one per part is several times slower).
    parts = msg.model_dump(mode="json", include=_ROW_PARTS)
    return ScoreRow(
        account_id=msg.account_id,
        as_of=msg.as_of,
        score=msg.score,
        band=msg.band,
        components={c["name"]: c for c in parts["components"]},
        left_out=list(parts["left_out"]),
        metrics=parts["metrics"],
        moved=parts["moved"],
        previous_score=msg.previous_score,
        previous_band=msg.previous_band,
        computed_at=msg.computed_at,
        provisional=msg.provisional,
    )


def encode(msg: ScoreMessage) -> tuple[bytes, EncodedScore]:
    """The message's bytes, serialised once, and its ``health_scores`` row with the JSON parts
    cut out of those bytes (the same values as :func:`row_from_message`'s, tested)."""
    raw = msg.to_bytes()
    parts = row_parts(raw)
    if parts is None:  # pragma: no cover - the message's layout is tested
        row = row_from_message(msg)
        texts = [json.dumps(p) for p in (row.components, row.left_out, row.metrics, row.moved)]
    else:
        texts = [p.decode() for p in parts]
    components, left_out, metrics, moved = texts
    return raw, EncodedScore(
        account_id=msg.account_id,
        as_of=msg.as_of,
        score=msg.score,
        band=msg.band,
        components=components,
        left_out=left_out,
        metrics=metrics,
        moved=moved,
        previous_score=msg.previous_score,
        previous_band=msg.previous_band,
        computed_at=msg.computed_at,
        provisional=msg.provisional,
    )
