"""The small statistics behind the trend rules' noise thresholds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.weekly_stats import binomial_variance, fit_line, least_squares_slope, robust_variance

pytestmark = pytest.mark.unit

counts = st.lists(st.integers(0, 1000), min_size=3, max_size=12)


class TestFitLine:
    @given(st.floats(-50, 50), st.floats(0, 1000), st.integers(2, 12))
    def test_a_line_is_fitted_exactly(self, slope: float, start: float, n: int) -> None:
        fit = fit_line([start + slope * i for i in range(n)])
        assert fit is not None
        assert fit.slope == pytest.approx(slope, abs=1e-6)
        assert fit.residual_variance == pytest.approx(0.0, abs=1e-6)

    def test_noise_gives_a_standard_error(self) -> None:
        fit = fit_line([10, 12, 9, 11, 10, 12, 9, 11])
        assert fit is not None and fit.slope_standard_error > 0.1

    @given(st.lists(st.one_of(st.integers(0, 1000), st.floats(0, 1000)), min_size=2, max_size=12))
    def test_the_slope_alone_is_the_fitted_slope(self, values: list[float]) -> None:
        """The scorer's slope without the residuals: the same float, not a close one."""
        fit = fit_line(values)
        assert fit is not None and least_squares_slope(values) == fit.slope

    @pytest.mark.parametrize("values", [[], [3]])
    def test_under_two_points_nothing(self, values: list[float]) -> None:
        assert fit_line(values) is None and least_squares_slope(values) is None


class TestBinomialVariance:
    @pytest.mark.parametrize(
        ("level", "trials", "expected"),
        [(50, 100, 25.0), (0, 10, 0.43), (10, 10, 0.43), (4, None, 4.0), (0, None, 0.25)],
    )
    def test_values(self, level: float, trials: int | None, expected: float) -> None:
        assert binomial_variance(level, trials) == pytest.approx(expected, abs=0.01)

    @given(st.integers(0, 500), st.integers(1, 500))
    def test_never_zero_never_above_poisson_by_much(self, level: int, trials: int) -> None:
        v = binomial_variance(level, trials)
        assert 0 < v <= max(level, trials) / 4 + 1


class TestRobustVariance:
    @given(counts, st.integers(-20, 20))
    def test_a_trend_does_not_count(self, values: list[int], per_week: int) -> None:
        trended = [v + per_week * i for i, v in enumerate(values)]
        assert robust_variance(trended) == pytest.approx(robust_variance(values))

    def test_one_holiday_week_does_not_count(self) -> None:
        assert robust_variance([100, 100, 100, 50, 100, 100, 100, 100]) == 0.0

    def test_weeks_that_jump_about_do(self) -> None:
        assert robust_variance([60, 140, 60, 140, 100, 60, 140, 100]) > 1000

    def test_under_three_weeks_nothing(self) -> None:
        assert robust_variance([1, 9]) == 0.0
