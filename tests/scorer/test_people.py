"""The champion and the regular users: pure functions of the 12-week window."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer.activity import WEEKS, UserWeeks
from services.scorer.people import (
    ChampionPick,
    ChampionSource,
    champion_of,
    regular_users,
    typical_weekly_rate,
)

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 28)


def user(user_id: str, days: tuple[int, ...], events: int = 1) -> UserWeeks:
    """A user with ``days`` active days per week (12, oldest first), ``events`` per active day;
    last active on the last day of their last active week."""
    assert len(days) == WEEKS
    last_week = max((w for w, d in enumerate(days) if d), default=None)
    last = None if last_week is None else AS_OF - timedelta(days=7 * (WEEKS - 1 - last_week))
    return UserWeeks(
        user_id=user_id,
        active_days=days,
        events=tuple(d * events for d in days),
        last_active=last,
        last_login=last,
    )


def champion(*users: UserWeeks, lived: int = WEEKS, named: str | None = None) -> str | None:
    pick = champion_of(users, AS_OF, lived, named=named)
    return pick.user_id if pick else None


class TestInferredChampion:
    def test_most_weeks_active_beats_most_days(self) -> None:
        weekly = user("weekly", (1,) * 12)
        bursty = user("bursty", (5, 5, 5, 0, 0, 0, 5, 5, 0, 0, 0, 0))
        assert champion(weekly, bursty) == "weekly"

    def test_ties_go_to_active_days_then_events_then_the_smaller_id(self) -> None:
        assert champion(user("a", (1,) * 12), user("b", (2,) * 12)) == "b"
        assert champion(user("a", (1,) * 12), user("b", (1,) * 12, events=3)) == "b"
        assert champion(user("b", (1,) * 12), user("a", (1,) * 12)) == "a"

    def test_no_activity_no_champion(self) -> None:
        assert champion() is None and champion(user("idle", (0,) * 12)) is None

    def test_the_incumbent_stays_through_a_busy_month_of_someone_else_with_one_gap(
        self,
    ) -> None:
        incumbent = user("inc", (2,) * 12)
        # Leads 3 of the last 4 weeks by far, but not the 4th.
        challenger = user("new", (0,) * 8 + (5, 5, 1, 5))
        assert champion(incumbent, challenger) == "inc"

    def test_a_challenger_leading_each_of_the_last_four_weeks_by_a_margin_takes_over(
        self,
    ) -> None:
        incumbent = user("inc", (2,) * 12)
        assert champion(incumbent, user("new", (0,) * 8 + (3, 3, 3, 3))) == "new"
        # Leading every week, but by less than 25% over the four: not clearly.
        close = user("new", (0,) * 8 + (6, 6, 6, 6))
        assert champion(user("inc", (5,) * 12), close) == "inc"

    def test_a_champion_who_goes_quiet_stays_champion_until_someone_leads_four_weeks(
        self,
    ) -> None:
        other = user("other", (1,) * 12)
        for quiet in (1, 2, 3):
            champ = user("champ", (3,) * (12 - quiet) + (0,) * quiet)
            assert champion(champ, other) == "champ"
        assert champion(user("champ", (3,) * 8 + (0,) * 4), other) == "other"

    def test_a_young_account_takes_the_leader_of_its_weeks(self) -> None:
        a = user("a", (0,) * 10 + (1, 1))
        b = user("b", (0,) * 10 + (3, 0))
        assert champion(a, b, lived=2) == "a"

    def test_the_champions_regularity_is_judged_before_their_silence(self) -> None:
        champ = user("champ", (1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0))
        pick = champion_of([champ, user("x", (1, 0) * 6)], AS_OF, WEEKS)
        assert pick is not None and pick.user_id == "champ"
        assert pick.last_active == AS_OF - timedelta(days=21)
        assert (pick.weeks_active, pick.weeks_observed) == (8, 9)


class TestNamedChampion:
    def test_the_named_champion_wins_even_when_quiet(self) -> None:
        pick = champion_of([user("busy", (5,) * 12)], AS_OF, WEEKS, named="boss")
        assert pick is not None
        assert (pick.user_id, pick.source, pick.last_active) == ("boss", "named", None)
        # Never seen: no weeks before their silence to judge them on.
        assert (pick.weeks_active, pick.weeks_observed) == (0, 0)

    def test_named_and_active(self) -> None:
        pick = champion_of(
            [user("busy", (5,) * 12), user("boss", (1,) * 12)], AS_OF, WEEKS, named="boss"
        )
        assert pick is not None and (pick.source, pick.weeks_active) == ("named", 12)


class TestRegularUsers:
    @pytest.mark.parametrize(
        ("last_four", "regular"),
        [((1, 1, 1, 1), 1), ((1, 0, 1, 1), 1), ((0, 0, 1, 1), 0), ((1, 0, 0, 0), 0)],
    )
    def test_active_in_three_of_the_last_four_weeks(
        self, last_four: tuple[int, ...], regular: int
    ) -> None:
        u = user("u", (1,) * 8 + last_four)
        assert regular_users([u], WEEKS) == (regular, 4)

    def test_seen_once_in_28_days_is_not_regular(self) -> None:
        once = [
            user(f"u{i}", (0,) * 8 + tuple(int(w == i % 4) for w in range(4))) for i in range(8)
        ]
        weekly = [user(f"w{i}", (1,) * 12) for i in range(2)]
        assert regular_users(once + weekly, WEEKS) == (2, 4)

    @pytest.mark.parametrize(("lived", "weeks_needed"), [(1, 1), (2, 2), (3, 3), (4, 3)])
    def test_a_young_account_needs_the_same_share_of_its_weeks(
        self, lived: int, weeks_needed: int
    ) -> None:
        u = user("u", (0,) * (12 - weeks_needed) + (1,) * weeks_needed)
        assert regular_users([u], lived) == (1, min(lived, 4))
        short = user("s", (0,) * (13 - weeks_needed) + (1,) * (weeks_needed - 1))
        assert regular_users([short], lived) == (0, min(lived, 4))

    def test_before_a_whole_week_there_is_no_measure(self) -> None:
        assert regular_users([user("u", (1,) * 12)], 0) is None

    def test_configurable(self) -> None:
        u = user("u", (1,) * 6 + (0, 1, 0, 1, 0, 1))
        assert regular_users([u], WEEKS, regular_weeks=6, regular_min_weeks=3) == (1, 6)
        assert regular_users([u], WEEKS, regular_weeks=6, regular_min_weeks=4) == (0, 6)


class TestTypicalWeeklyRate:
    def test_median_share_of_weeks_active(self) -> None:
        users = [user("a", (1,) * 12), user("b", (1, 0) * 6), user("c", (1, 0, 0) * 4)]
        assert typical_weekly_rate(users, WEEKS) == pytest.approx(0.5)

    def test_nothing_to_judge(self) -> None:
        assert typical_weekly_rate([], WEEKS) is None
        assert typical_weekly_rate([user("a", (1,) * 12)], 0) is None


week_days = st.tuples(*[st.integers(0, 5)] * WEEKS)
accounts = st.lists(
    st.tuples(st.integers(0, 30), week_days), min_size=0, max_size=12, unique_by=lambda t: t[0]
)


class TestProperties:
    @settings(max_examples=100, deadline=None)
    @given(accounts, st.integers(1, 12), st.randoms(use_true_random=False))
    def test_pure_and_order_free(
        self, raw: list[tuple[int, tuple[int, ...]]], lived: int, rnd: random.Random
    ) -> None:
        users = [user(f"u{i}", days) for i, days in raw]
        shuffled = list(users)
        rnd.shuffle(shuffled)
        assert champion_of(users, AS_OF, lived) == champion_of(shuffled, AS_OF, lived)
        assert regular_users(users, lived) == regular_users(shuffled, lived)

    @settings(max_examples=100, deadline=None)
    @given(accounts, st.integers(1, 12))
    def test_the_champion_was_active_in_the_lived_weeks(
        self, raw: list[tuple[int, tuple[int, ...]]], lived: int
    ) -> None:
        users = [user(f"u{i}", days) for i, days in raw]
        pick = champion_of(users, AS_OF, lived)
        active = {u.user_id for u in users if any(u.active_days[WEEKS - lived :])}
        assert (pick is None) == (not active)
        assert pick is None or pick.user_id in active
        counted = regular_users(users, lived)
        assert counted is not None and 0 <= counted[0] <= len(active)


# -- the implementation before the faster one (2026-12), kept as the reference ---------------


def _reference_standing(u: UserWeeks, weeks: range) -> tuple[int, int, int]:
    days = u.active_days[weeks.start : weeks.stop]
    return (
        sum(1 for d in days if d > 0),
        sum(days),
        sum(u.events[weeks.start : weeks.stop]),
    )


def _reference_leader(users: Sequence[UserWeeks], weeks: range) -> UserWeeks | None:
    best: UserWeeks | None = None
    best_key = (0, 0, 0)
    for u in users:
        key = _reference_standing(u, weeks)
        if key[0] == 0:
            continue
        if best is None or key > best_key or (key == best_key and u.user_id < best.user_id):
            best, best_key = u, key
    return best


def _reference_inferred(
    users: Sequence[UserWeeks], lived_weeks: int, recent_weeks: int, margin: float
) -> UserWeeks | None:
    first = WEEKS - min(WEEKS, lived_weeks)
    split = WEEKS - recent_weeks
    if first >= split:
        return _reference_leader(users, range(first, WEEKS))
    incumbent = _reference_leader(users, range(first, split))
    recent = range(split, WEEKS)
    challenger = _reference_leader(users, recent)
    if incumbent is None:
        return challenger
    if challenger is None or challenger.user_id == incumbent.user_id:
        return incumbent
    leads_each_week = all(challenger.active_days[w] > incumbent.active_days[w] for w in recent)
    challenger_days = sum(challenger.active_days[w] for w in recent)
    incumbent_days = sum(incumbent.active_days[w] for w in recent)
    if leads_each_week and challenger_days >= (1 + margin) * incumbent_days:
        return challenger
    return incumbent


def reference_champion_of(
    users: Sequence[UserWeeks],
    as_of: date,
    lived_weeks: int,
    *,
    named: str | None = None,
    recent_weeks: int = 4,
    margin: float = 0.25,
) -> ChampionPick | None:
    source: ChampionSource
    if named:
        found = next((u for u in users if u.user_id == named), None)
        pick = found or UserWeeks(user_id=named)
        source = "named"
    else:
        inferred = _reference_inferred(users, lived_weeks, recent_weeks, margin)
        if inferred is None:
            return None
        pick, source = inferred, "inferred"
    lived = min(WEEKS, max(0, lived_weeks))
    quiet = (as_of - pick.last_active).days // 7 if pick.last_active is not None else lived
    observed = range(WEEKS - lived, WEEKS - min(lived, max(0, quiet)))
    return ChampionPick(
        user_id=pick.user_id,
        source=source,
        last_active=pick.last_active,
        last_login=pick.last_login,
        weeks_active=sum(1 for w in observed if pick.active_days[w] > 0),
        weeks_observed=len(observed),
    )


def reference_regular_users(
    users: Sequence[UserWeeks],
    lived_weeks: int,
    *,
    regular_weeks: int = 4,
    regular_min_weeks: int = 3,
) -> tuple[int, int] | None:
    weeks = min(regular_weeks, lived_weeks, WEEKS)
    if weeks <= 0:
        return None
    need = max(1, math.ceil(regular_min_weeks * weeks / regular_weeks))
    first = WEEKS - weeks
    count = sum(1 for u in users if sum(1 for d in u.active_days[first:WEEKS] if d > 0) >= need)
    return count, weeks


def reference_typical_weekly_rate(users: Sequence[UserWeeks], lived_weeks: int) -> float | None:
    lived = min(WEEKS, lived_weeks)
    if lived <= 0:
        return None
    first = WEEKS - lived
    rates = sorted(
        n / lived for u in users if (n := sum(1 for d in u.active_days[first:WEEKS] if d > 0)) > 0
    )
    if not rates:
        return None
    mid = len(rates) // 2
    return rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2


small_days = st.tuples(*[st.integers(0, 3)] * WEEKS)
last_days = st.one_of(st.none(), st.integers(-10, 120).map(lambda n: AS_OF - timedelta(days=n)))


@st.composite
def week_users(draw: st.DrawFn) -> list[UserWeeks]:
    """Users with few distinct counts (so ties happen), random last days (some after as_of)."""
    ids = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), unique=True, max_size=6))
    return [
        UserWeeks(
            user_id=i,
            active_days=draw(small_days),
            events=draw(st.tuples(*[st.integers(0, 4)] * WEEKS)),
            last_active=draw(last_days),
            last_login=draw(last_days),
        )
        for i in ids
    ]


class TestSameAsTheReference:
    """The people code gives exactly what its previous implementation gave."""

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(
        week_users(),
        st.integers(-2, 14),
        st.integers(0, 14),
        st.sampled_from([0.0, 0.25, 1.0]),
        st.sampled_from([None, "a", "zz"]),
    )
    def test_champion(
        self,
        users: list[UserWeeks],
        lived: int,
        recent: int,
        margin: float,
        named: str | None,
    ) -> None:
        got = champion_of(users, AS_OF, lived, named=named, recent_weeks=recent, margin=margin)
        want = reference_champion_of(
            users, AS_OF, lived, named=named, recent_weeks=recent, margin=margin
        )
        assert got == want

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(week_users(), st.integers(-2, 14), st.integers(1, 6), st.integers(0, 6))
    def test_regular_users_and_weekly_rate(
        self, users: list[UserWeeks], lived: int, weeks: int, min_weeks: int
    ) -> None:
        got = regular_users(users, lived, regular_weeks=weeks, regular_min_weeks=min_weeks)
        assert got == reference_regular_users(
            users, lived, regular_weeks=weeks, regular_min_weeks=min_weeks
        )
        rate = typical_weekly_rate(users, lived)
        want = reference_typical_weekly_rate(users, lived)
        assert repr(rate) == repr(want)
