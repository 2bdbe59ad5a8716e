"""The one chart helper's geometry: where points, zones, ticks, labels and bars land."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.web.charts import Bands, Margins, bar_chart, line_chart, sparkline

pytestmark = pytest.mark.unit

D0 = date(2026, 11, 1)
NO_MARGINS = Margins(left=0, right=0, top=0, bottom=0)


def days(*values: float | None) -> list[tuple[date, float | None]]:
    return [(D0 + timedelta(days=i), v) for i, v in enumerate(values)]


class TestLineChart:
    @pytest.mark.parametrize("values", [(), (None,), (None, None)])
    def test_nothing_to_draw_without_a_value(self, values: tuple[None, ...]) -> None:
        assert line_chart(days(*values)) is None

    def test_values_span_the_plot_on_a_0_to_100_axis(self) -> None:
        chart = line_chart(days(100, 50, 0), width=200, height=100, margins=NO_MARGINS)
        assert chart is not None
        assert [(p.x, p.y) for p in chart.points] == [(0, 0), (100, 50), (200, 100)]
        assert chart.segments == ["0.0,0.0 100.0,50.0 200.0,100.0"]
        assert (chart.first.value, chart.last.value, chart.lowest, chart.highest) == (
            100,
            0,
            0,
            100,
        )

    def test_margins_shift_the_plot(self) -> None:
        chart = line_chart(days(100, 0), width=140, height=60, margins=Margins(30, 10, 5, 15))
        assert chart is not None
        assert [(p.x, p.y) for p in chart.points] == [(30, 5), (130, 45)]

    def test_a_missing_value_breaks_the_line_and_a_lone_value_is_a_dot(self) -> None:
        chart = line_chart(days(10, 20, None, 30, None, 40, 50), margins=NO_MARGINS)
        assert chart is not None
        assert len(chart.segments) == 2
        assert [p.value for p in chart.singles] == [30]
        assert [p.value for p in chart.points] == [10, 20, 30, 40, 50]

    def test_a_single_value_is_a_chart_of_one_dot(self) -> None:
        chart = line_chart(days(None, 70), margins=NO_MARGINS)
        assert chart is not None and chart.segments == [] and len(chart.singles) == 1

    def test_bands_shade_the_zones_and_put_ticks_at_their_thresholds(self) -> None:
        chart = line_chart(days(10, 90), Bands(green=70, yellow=40), 100, 100, margins=NO_MARGINS)
        assert chart is not None
        zones = {z.name: (round(z.y, 6), round(z.height, 6)) for z in chart.zones}
        assert zones == {"green": (0, 30), "yellow": (30, 30), "red": (60, 40)}
        ticks = [(t.value, round(t.y, 6)) for t in chart.ticks]
        assert ticks == [(0, 100), (40, 60), (70, 30), (100, 0)]

    def test_no_bands_no_zones_unless_ticks_are_named(self) -> None:
        plain = line_chart(days(10, 90))
        ticked = line_chart(days(10, 90), ticks=(0, 50, 100))
        assert plain is not None and plain.zones == [] and plain.ticks == []
        assert ticked is not None and [t.value for t in ticked.ticks] == [0, 50, 100]

    def test_points_keep_their_band(self) -> None:
        chart = line_chart([(D0, 30.0, "red"), (D0 + timedelta(days=1), 80.0, "green")])
        assert chart is not None and [p.band for p in chart.points] == ["red", "green"]

    @pytest.mark.parametrize(("span", "labels"), [(1, 2), (13, 2), (14, 3), (180, 3)])
    def test_date_labels_at_the_ends_and_the_middle_of_long_spans(
        self, span: int, labels: int
    ) -> None:
        chart = line_chart([(D0, 50.0), (D0 + timedelta(days=span), 60.0)])
        assert chart is not None
        assert len(chart.labels) == labels
        assert [lab.anchor for lab in chart.labels][0 :: labels - 1] == ["start", "end"]
        assert chart.labels[-1].day == D0 + timedelta(days=span)

    def test_a_fixed_period_places_points_inside_it(self) -> None:
        start, end = date(2026, 10, 1), date(2026, 10, 31)
        chart = line_chart(
            [(date(2026, 10, 16), 50.0)], None, 300, 100, margins=NO_MARGINS, start=start, end=end
        )
        assert chart is not None
        assert chart.points[0].x == 150 and (chart.start, chart.end) == (start, end)


class TestSparkline:
    @pytest.mark.parametrize("values", [(), (50,), (None, 50, None)])
    def test_needs_two_values(self, values: tuple[float | None, ...]) -> None:
        assert sparkline(days(*values)) is None

    def test_joins_across_gaps_inside_a_two_pixel_margin(self) -> None:
        chart = sparkline(days(100, None, 0), width=120, height=28)
        assert chart is not None
        assert chart.segments == ["2.0,2.0 118.0,26.0"]


class TestBarChart:
    def test_the_tallest_bar_reaches_the_top_and_others_scale(self) -> None:
        chart = bar_chart(
            [10, 5, 0], ["a", "b", "c"], width=100, height=100, side=5, top=10, bottom=10
        )
        heights = [b.height for b in chart.bars]
        assert heights == [80, 40, 0]
        assert [b.y for b in chart.bars] == [10, 50, 90]
        assert chart.baseline == 90
        assert all(b.width == pytest.approx(0.7 * 30) for b in chart.bars)
        assert (chart.first_label, chart.last_label) == ("a", "c")

    @pytest.mark.parametrize("n", [0, 1, 12])
    def test_bars_stay_inside_the_chart(self, n: int) -> None:
        chart = bar_chart([0] * n, [str(i) for i in range(n)])
        assert len(chart.bars) == n
        assert all(chart.left <= b.x and b.x + b.width <= chart.right for b in chart.bars)
        assert all(b.height == 0 for b in chart.bars)
