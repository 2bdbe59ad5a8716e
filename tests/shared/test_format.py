"""shared.format: how numbers, dates and names read on every page and in every message."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shared import format as fmt

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class TestMissing:
    @pytest.mark.parametrize(
        "render",
        [
            fmt.count,
            fmt.number,
            fmt.trimmed,
            fmt.measure,
            fmt.percent,
            fmt.signed,
            fmt.signed_percent,
            fmt.score,
            fmt.money,
            fmt.day,
            fmt.short_day,
            fmt.month,
            fmt.timestamp,
        ],
    )
    def test_none_is_a_dash(self, render: object) -> None:
        assert callable(render) and render(None) == fmt.MISSING == "\u2014"

    def test_nan_is_a_dash(self) -> None:
        nan = float("nan")
        assert {fmt.number(nan), fmt.percent(nan), fmt.money(nan), fmt.score(nan)} == {"\u2014"}
        assert fmt.mrr(None) == "MRR unknown" and fmt.score_band(None, "new") == "new"


class TestNumbers:
    @pytest.mark.parametrize(
        ("n", "text"), [(0, "0"), (1, "1"), (999, "999"), (1234, "1,234"), (2.6, "3")]
    )
    def test_count(self, n: float, text: str) -> None:
        assert fmt.count(n) == text

    @pytest.mark.parametrize(
        ("x", "decimals", "text"),
        [(1234.56, 0, "1,235"), (1234.56, 1, "1,234.6"), (0.1, 2, "0.10"), (-3, 0, "-3")],
    )
    def test_number(self, x: float, decimals: int, text: str) -> None:
        assert fmt.number(x, decimals) == text

    @pytest.mark.parametrize(
        ("x", "text"), [(2, "2"), (2.0, "2"), (2.54, "2.5"), (1234.5, "1,234.5"), (-0.01, "0")]
    )
    def test_trimmed_keeps_at_most_one_decimal(self, x: float, text: str) -> None:
        assert fmt.trimmed(x) == text

    @pytest.mark.parametrize(
        ("value", "text"),
        [(1234, "1,234"), (0.125, "0.125"), (3.14159, "3.14"), (1234.56, "1,234.6")],
    )
    def test_measure(self, value: object, text: str) -> None:
        assert fmt.measure(value) == text

    def test_measure_of_other_values(self) -> None:
        assert (fmt.measure(True), fmt.measure(False), fmt.measure("abc")) == ("yes", "no", "abc")

    @pytest.mark.parametrize(
        ("ratio", "decimals", "text"),
        [(0, 0, "0%"), (0.2, 0, "20%"), (1, 0, "100%"), (0.1234, 1, "12.3%"), (12.5, 0, "1,250%")],
    )
    def test_percent_of_a_fraction(self, ratio: float, decimals: int, text: str) -> None:
        assert fmt.percent(ratio, decimals) == text

    @pytest.mark.parametrize(
        ("x", "decimals", "text"),
        [(3, 0, "+3"), (-2, 0, "-2"), (0, 0, "0"), (0.04, 0, "0"), (-0.04, 1, "0.0"),
         (1500, 0, "+1,500"), (20.5, 1, "+20.5")],
    )  # fmt: skip
    def test_signed(self, x: float, decimals: int, text: str) -> None:
        assert fmt.signed(x, decimals) == text

    def test_signed_with_a_unit_and_signed_percent(self) -> None:
        assert fmt.signed(-50, 0, "%") == "-50%"
        assert fmt.signed_percent(0.1) == "+10%" and fmt.signed_percent(-0.125, 1) == "-12.5%"

    def test_scores(self) -> None:
        assert (fmt.score(75.5), fmt.score(58.44, 1), fmt.score(0)) == ("76", "58.4", "0")
        assert fmt.score_band(58.2, "yellow") == "58 (yellow)"


class TestMoney:
    @pytest.mark.parametrize(
        ("amount", "text"),
        [(0, "$0"), (1, "$1"), (4500, "$4,500"), (4499.6, "$4,500"), (1_250_000, "$1,250,000"),
         (-120.4, "-$120"), (-0.4, "$0")],
    )  # fmt: skip
    def test_whole_dollars(self, amount: float, text: str) -> None:
        assert fmt.money(amount) == text
        assert fmt.mrr(amount) == f"{text} MRR"

    @pytest.mark.parametrize(
        ("amount", "text"), [(4500, "$4,500"), (4500.5, "$4,500.50"), (-9.99, "-$9.99")]
    )
    def test_cents_when_there_are_any(self, amount: float, text: str) -> None:
        assert fmt.money(amount, cents=True) == text

    @pytest.mark.parametrize(
        ("currency", "text"),
        [("USD", "-$4,500.50"), ("EUR", "-\u20ac4,500.50"), ("gbp", "-\u00a34,500.50"),
         ("SEK", "-4,500.50 SEK"), ("CHF", "-4,500.50 CHF")],
    )  # fmt: skip
    def test_the_configured_currency(self, currency: str, text: str) -> None:
        assert fmt.money(-4500.5, cents=True, currency=currency) == text
        assert fmt.mrr(10, currency) == f"{fmt.money(10, currency=currency)} MRR"


class TestChanges:
    @pytest.mark.parametrize(
        ("delta", "arrow", "size"),
        [(-45.3, "\u2193", "45.3 points"), (12.0, "\u2191", "12.0 points"),
         (0.0, "\u2192", "0.0 points"), (1.0, "\u2191", "1.0 point"), (-1, "\u2193", "1.0 point")],
    )  # fmt: skip
    def test_an_arrow_and_a_size_never_a_sign_too(
        self, delta: float, arrow: str, size: str
    ) -> None:
        assert fmt.arrow(delta) == arrow
        assert fmt.points(delta) == size
        assert fmt.points(delta, unit=False) == size.split()[0]

    def test_steady_within_a_margin(self) -> None:
        assert fmt.arrow(1.5, steady=2) == "\u2192" and fmt.arrow(-2.5, steady=2) == "\u2193"
        assert fmt.arrow(None) == "" and fmt.points(None) == fmt.MISSING


class TestWords:
    @pytest.mark.parametrize(
        ("n", "word", "text"),
        [(0, "day", "0 days"), (1, "day", "1 day"), (2, "day", "2 days"),
         (1200, "user", "1,200 users"), (1.5, "seat", "1.5 seats")],
    )  # fmt: skip
    def test_plural(self, n: float, word: str, text: str) -> None:
        assert fmt.plural(n, word) == text

    def test_irregular_plural(self) -> None:
        assert fmt.plural(2, "person", "people") == "2 people"
        assert fmt.plural(1, "person", "people") == "1 person"

    def test_names_become_words(self) -> None:
        assert fmt.words("login_plateau") == "login plateau"
        assert fmt.label("seat_utilization") == "Seat utilization"

    @pytest.mark.parametrize(
        ("key", "text"),
        [("mau", "Monthly active users"), ("mean_dau", "Daily active users on average"),
         ("full_at", "Full marks at"), ("zero_at", "No points at"), ("mrr", "MRR")],
    )  # fmt: skip
    def test_model_keys_read_as_plain_words(self, key: str, text: str) -> None:
        assert fmt.label(key) == text


class TestDates:
    def test_day(self) -> None:
        assert fmt.day(date(2026, 11, 9)) == "2026-11-09"
        assert fmt.day("2026-11-09T10:00:00+00:00") == "2026-11-09"
        # A datetime is shown as its day in UTC.
        east = timezone(timedelta(hours=5))
        assert fmt.day(datetime(2026, 11, 10, 2, 0, tzinfo=east)) == "2026-11-09"

    def test_short_day_and_month(self) -> None:
        assert fmt.short_day(date(2026, 11, 9)) == "Nov 9"
        assert fmt.short_day("2026-10-31") == "Oct 31"
        assert fmt.month(date(2026, 10, 17)) == "October 2026" == fmt.month("2026-10")

    def test_date_range(self) -> None:
        assert fmt.date_range(date(2026, 11, 1), date(2026, 11, 20)) == "Nov 1 to Nov 20, 2026"
        assert fmt.date_range(date(2025, 12, 1), date(2026, 1, 3)) == "Dec 1, 2025 to Jan 3, 2026"

    def test_timestamp_is_utc(self) -> None:
        assert fmt.timestamp(datetime(2026, 11, 9, 14, 3, 59, tzinfo=UTC)) == "2026-11-09 14:03 UTC"
        east = timezone(timedelta(hours=2))
        assert fmt.timestamp(datetime(2026, 11, 9, 16, 3, tzinfo=east)) == "2026-11-09 14:03 UTC"
        assert fmt.timestamp(datetime(2026, 11, 9, 14, 3)) == "2026-11-09 14:03 UTC"

    @pytest.mark.parametrize(
        ("target", "text"),
        [(date(2026, 11, 23), "today"), (date(2026, 11, 24), "in 1 day"),
         (date(2027, 1, 15), "in 53 days"), (date(2026, 11, 22), "1 day ago"),
         (date(2026, 11, 1), "22 days ago")],
    )  # fmt: skip
    def test_days_from(self, target: date, text: str) -> None:
        assert fmt.days_from(target, date(2026, 11, 23)) == text

    @pytest.mark.parametrize(
        ("renewal", "text"),
        [
            (date(2026, 11, 23), "renews 2026-11-23 (today)"),
            (date(2026, 11, 24), "renews 2026-11-24 (in 1 day)"),
            (date(2027, 1, 15), "renews 2027-01-15 (in 53 days)"),
            (date(2026, 11, 22), "renewal was 2026-11-22 (1 day ago)"),
            (date(2026, 11, 1), "renewal was 2026-11-01 (22 days ago)"),
            (None, "renewal date unknown"),
        ],
    )
    def test_renewal_counts_from_the_day_given(self, renewal: date | None, text: str) -> None:
        assert fmt.renewal(renewal, date(2026, 11, 23)) == text


class TestRelativeTime:
    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(0), "just now"),
            (timedelta(seconds=-59), "just now"),
            (timedelta(minutes=-1), "1 minute ago"),
            (timedelta(minutes=-59, seconds=-59), "59 minutes ago"),
            (timedelta(hours=-2, minutes=-30), "2 hours ago"),
            (timedelta(days=-1), "1 day ago"),
            (timedelta(days=-30), "30 days ago"),
            (timedelta(minutes=5), "in 5 minutes"),
            (timedelta(hours=3), "in 3 hours"),
            (timedelta(days=7), "in 7 days"),
        ],
    )
    def test_the_largest_whole_unit(self, delta: timedelta, text: str) -> None:
        assert fmt.relative_time(NOW + delta, NOW) == text

    def test_far_away_shows_the_day(self) -> None:
        assert fmt.relative_time(NOW - timedelta(days=40), NOW) == "2026-10-14"

    def test_naive_times_are_utc(self) -> None:
        naive = datetime(2026, 11, 23, 11, 0)
        assert fmt.relative_time(naive, NOW) == "1 hour ago"
        assert fmt.relative_time(None, NOW) == fmt.MISSING
