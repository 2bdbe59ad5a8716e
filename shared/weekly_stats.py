"""Small statistics of weekly counts, shared by the scorer's metrics and the alert rules (pure).

Weekly active users of an account are, to a first approximation, a binomial count: each of its
``seats`` is active in a week or not. That gives the week-to-week noise a steady account shows
without a single real change, which is what the rules' thresholds must clear.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from statistics import median

__all__ = ["LineFit", "binomial_variance", "fit_line", "least_squares_slope", "robust_variance"]


@dataclass(frozen=True, slots=True)
class LineFit:
    slope: float
    level: float
    """The mean of the values."""
    residual_variance: float
    """Sum of squared residuals / (n - 2); 0 with 2 points."""
    sxx: float

    @property
    def slope_standard_error(self) -> float:
        return math.sqrt(self.residual_variance / self.sxx)


def fit_line(values: Sequence[float]) -> LineFit | None:
    """The least-squares line through ``(i, values[i])``; None under 2 points."""
    n = len(values)
    if n < 2:
        return None
    xs, sxx = _centred(n)
    mean_y, slope = _slope(values, xs, sxx)
    ssr = sum((y - mean_y - slope * x) ** 2 for x, y in zip(xs, values, strict=True))
    return LineFit(slope, mean_y, ssr / (n - 2) if n > 2 else 0.0, sxx)


def _slope(values: Sequence[float], xs: tuple[float, ...], sxx: float) -> tuple[float, float]:
    """The mean of ``values`` and the least-squares slope through them (``xs, sxx`` of
    :func:`_centred` for their length)."""
    mean_y = sum(values) / len(values)
    return mean_y, sum(x * (y - mean_y) for x, y in zip(xs, values, strict=True)) / sxx


@cache
def _centred(n: int) -> tuple[tuple[float, ...], float]:
    """``i - mean(i)`` for ``i`` in ``0 .. n-1`` and the sum of their squares (per length)."""
    mean_x = (n - 1) / 2
    xs = tuple(i - mean_x for i in range(n))
    return xs, sum(x**2 for x in xs)


def least_squares_slope(values: Sequence[float]) -> float | None:
    """Slope of the least-squares line through ``(i, values[i])``; None under 2 points. The
    same float as ``fit_line(values).slope``, without the residuals (the scorer fits two
    series an account-day and reads only their slopes)."""
    if len(values) < 2:
        return None
    return _slope(values, *_centred(len(values)))[1]


def binomial_variance(level: float, trials: int | None) -> float:
    """Variance of a weekly count at ``level``: binomial in ``trials`` (seats) when known, else
    Poisson. The share is smoothed (+0.5 / +1) so a count at 0 or at every seat still has noise."""
    if trials is None or trials <= 0:
        return max(level, 0.25)
    n = max(float(trials), level)
    p = (level + 0.5) / (n + 1)
    return n * p * (1 - p)


def robust_variance(values: Sequence[float]) -> float:
    """Week-to-week variance from the median absolute deviation of the changes between
    consecutive weeks (halved: a change carries two weeks' noise). Neither a trend in the weeks
    nor one holiday week among them inflates it; 0 under 3 weeks."""
    if len(values) < 3:
        return 0.0
    changes = [b - a for a, b in pairwise(values)]
    mid = median(changes)
    mad = median(abs(c - mid) for c in changes)
    return (1.4826 * mad) ** 2 / 2
