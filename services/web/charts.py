"""The one chart helper: the geometry of the SVG charts the console and the monthly report draw.

Functions here compute, templates draw. Each function takes plain data (days and values) and the
chart's size, and returns a frozen dataclass of coordinates already scaled to the SVG's user
space, so a Jinja template only places elements (``<polyline points="{{ c.segments[0] }}">``)
and never does arithmetic. Nothing here is HTML.

- :func:`line_chart` -- values on a fixed 0..100 axis over days: one polyline per run of
  consecutive values (a ``None`` breaks the line), a dot per point, optional band zones behind
  it (``Bands``), grid ticks and date labels. The console's score history and the report's month
  of scores both use it.
- :func:`sparkline` -- a tiny line_chart of the scored points, no axes.
- :func:`bar_chart` -- one bar per value, scaled to the largest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

SCALE_MAX = 100.0
"""Line charts plot scores: a fixed 0..100 axis, so two charts compare at a glance."""


@dataclass(frozen=True, slots=True)
class Bands:
    """Score thresholds: green from ``green`` up, yellow from ``yellow`` up, red below."""

    green: float
    yellow: float


@dataclass(frozen=True, slots=True)
class Margins:
    left: float = 34.0
    right: float = 8.0
    top: float = 8.0
    bottom: float = 26.0


@dataclass(frozen=True, slots=True)
class Point:
    """A value at a day, and where it lands (``x``, ``y``). ``band`` is the caller's label."""

    day: date
    value: float
    x: float
    y: float
    band: str | None = None


@dataclass(frozen=True, slots=True)
class Zone:
    """A band's horizontal stripe behind the line (``name``: green, yellow or red)."""

    name: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Tick:
    """A horizontal grid line at ``value`` (its label is the value, e.g. ``70``)."""

    value: float
    y: float
    x1: float
    x2: float


@dataclass(frozen=True, slots=True)
class DayLabel:
    """A date under the x axis; ``anchor`` is the SVG ``text-anchor`` (start, middle, end)."""

    day: date
    x: float
    anchor: str


@dataclass(frozen=True, slots=True)
class LineChart:
    width: float
    height: float
    margins: Margins
    start: date
    end: date
    points: list[Point]
    """Every point with a value, in day order (draw a dot per point for the report)."""
    segments: list[str]
    """SVG ``points`` attributes, one per run of two or more consecutive values."""
    singles: list[Point]
    """Points with no neighbour to join (a value between two gaps): draw them as dots."""
    zones: list[Zone] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    labels: list[DayLabel] = field(default_factory=list)

    @property
    def first(self) -> Point:
        return self.points[0]

    @property
    def last(self) -> Point:
        return self.points[-1]

    @property
    def lowest(self) -> float:
        return min(p.value for p in self.points)

    @property
    def highest(self) -> float:
        return max(p.value for p in self.points)

    @property
    def label_y(self) -> float:
        """The baseline of the date labels."""
        return self.height - 8


def svg_points(pairs: Iterable[tuple[float, float]]) -> str:
    """An SVG ``points`` attribute, one decimal per coordinate."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs)


def line_chart(
    points: Sequence[tuple[date, float | None] | tuple[date, float | None, str | None]],
    bands: Bands | None = None,
    width: float = 640.0,
    height: float = 220.0,
    *,
    margins: Margins | None = None,
    ticks: Sequence[float] | None = None,
    start: date | None = None,
    end: date | None = None,
    scale_max: float = SCALE_MAX,
) -> LineChart | None:
    """Scores over days on a 0..100 axis (0..``scale_max``: e.g. retention percentages above
    100); None when no point has a value.

    ``points`` are ``(day, value)`` or ``(day, value, band)`` in day order; a ``None`` value
    breaks the line. The x axis runs from ``start`` to ``end`` (default: the first and last day
    with a value). ``bands`` shades the green, yellow and red zones and puts grid ticks at 0, the
    thresholds and 100 unless ``ticks`` names them. Date labels: the two ends, and the middle
    when the span is two weeks or more.
    """
    m = margins or Margins()
    scored = [(p[0], p[1]) for p in points if p[1] is not None]
    if not scored:
        return None
    first = start or scored[0][0]
    last = end or scored[-1][0]
    span = max(1, (last - first).days)
    pw, ph = width - m.left - m.right, height - m.top - m.bottom

    def x(d: date) -> float:
        return m.left + (d - first).days / span * pw

    def y(v: float) -> float:
        return m.top + (1 - v / scale_max) * ph

    placed: list[Point] = []
    runs: list[list[Point]] = [[]]
    for p in points:
        day, value = p[0], p[1]
        if value is None:
            runs.append([])
            continue
        band = p[2] if len(p) > 2 else None
        point = Point(day, float(value), x(day), y(float(value)), band)
        placed.append(point)
        runs[-1].append(point)
    segments = [svg_points((q.x, q.y) for q in run) for run in runs if len(run) > 1]
    singles = [run[0] for run in runs if len(run) == 1]

    zones: list[Zone] = []
    if bands is not None:
        for name, hi, lo in (
            ("green", SCALE_MAX, bands.green),
            ("yellow", bands.green, bands.yellow),
            ("red", bands.yellow, 0.0),
        ):
            zones.append(Zone(name, m.left, y(hi), pw, y(lo) - y(hi)))
    tick_values = (
        ticks if ticks is not None else (0.0, bands.yellow, bands.green, SCALE_MAX) if bands else ()
    )
    grid = [Tick(float(v), y(v), m.left, width - m.right) for v in tick_values]
    days = [first, last] if span < 14 else [first, first + timedelta(days=span // 2), last]
    labels = [
        DayLabel(d, x(d), "start" if i == 0 else "end" if d == last else "middle")
        for i, d in enumerate(days)
    ]
    return LineChart(
        width=width,
        height=height,
        margins=m,
        start=first,
        end=last,
        points=placed,
        segments=segments,
        singles=singles,
        zones=zones,
        ticks=grid,
        labels=labels,
    )


SPARK_MARGINS = Margins(left=2.0, right=2.0, top=2.0, bottom=2.0)


def sparkline(
    points: Sequence[tuple[date, float | None]], width: float = 120.0, height: float = 28.0
) -> LineChart | None:
    """A small line of the points that have a value (gaps joined); None under two of them."""
    scored = [(d, v) for d, v in points if v is not None]
    if len(scored) < 2:
        return None
    return line_chart(scored, None, width, height, margins=SPARK_MARGINS)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True, slots=True)
class BarChart:
    width: float
    height: float
    bars: list[Bar]
    baseline: float
    """The y of the axis line under the bars."""
    left: float
    right: float
    first_label: str | None
    last_label: str | None

    @property
    def label_y(self) -> float:
        return self.height - 6


def bar_chart(
    values: Sequence[int],
    labels: Sequence[str],
    width: float = 320.0,
    height: float = 170.0,
    *,
    side: float = 8.0,
    top: float = 16.0,
    bottom: float = 22.0,
) -> BarChart:
    """One bar per value (``labels[i]`` names it), the tallest reaching ``top``; bars fill 70% of
    their slot. Zero values give zero-height bars; no values give an empty chart."""
    n = max(1, len(values))
    peak = max([*values, 1])
    slot = (width - 2 * side) / n
    bar = slot * 0.7
    bars = []
    for i, v in enumerate(values):
        bh = v / peak * (height - top - bottom)
        bx = side + i * slot + (slot - bar) / 2
        bars.append(Bar(labels[i] if i < len(labels) else "", v, bx, height - bottom - bh, bar, bh))
    return BarChart(
        width=width,
        height=height,
        bars=bars,
        baseline=height - bottom,
        left=side,
        right=width - side,
        first_label=labels[0] if labels else None,
        last_label=labels[-1] if labels else None,
    )
