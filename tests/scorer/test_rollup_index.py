"""The backtest's rollup memory answers every day the same whether it reads its rolling counts
(indexed, the fast way) or counts the rows (the reference, itself checked against the scorer's
queries in tests/backtest): random accounts with gaps, days without logins, rows without
events, features used by nobody or by users without a uses row, named champions present or
never seen, created before or after the first row."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from services.scorer.activity import AccountProfile
from services.scorer.rollups import RollupMemory, _Account, _Feature, _Series, _User, finish

KEYS = ("reports", "dashboards", "exports")
START = date(2025, 1, 1)


def _days(rng: random.Random, first: date, last: date, share: float) -> list[date]:
    n = (last - first).days + 1
    return [first + timedelta(days=i) for i in range(n) if rng.random() < share]


def create_account(rng: random.Random, n: int, last: date) -> _Account:
    first = START + timedelta(days=rng.randint(0, 60))
    stop = last - timedelta(days=rng.choice([0, 0, 30, 120]))  # some go quiet before the end
    user_ids = [f"u{k}" for k in range(rng.randint(0, 9))]
    champion = rng.choice([None, None, "u0", "ghost"])
    created = rng.choice([None, first - timedelta(days=20), first + timedelta(days=3)])
    profile = AccountProfile(
        account_id=f"a{n}", seats=rng.randint(1, 12), created_at=created, champion=champion
    )
    acc = _Account(profile, first, created if created is not None else first)
    for user_id in user_ids:
        active = _days(rng, first, stop, rng.choice([0.05, 0.3, 0.8]))
        events = {d: rng.choice([0, 1, 4]) for d in active}
        logins = sorted(d for d in active if rng.random() < 0.5)
        acc.users[user_id] = _User(_Series.of(events), logins)
        for d in active:
            logins_then, users_then = acc.days.get(d, (0, 0))
            acc.days[d] = (logins_then + (d in logins), users_then + 1)
    for d in _days(rng, first, stop, 0.05):  # account rows without users
        acc.days.setdefault(d, (rng.randint(0, 2), 0))
    for key in KEYS[: rng.randint(0, 3)]:
        uses = {d: rng.randint(0, 3) for d in _days(rng, first, stop, rng.choice([0.0, 0.1]))}
        users = [_days(rng, first, stop, 0.1) for _ in range(rng.randint(0, 3))]
        acc.features[key] = _Feature(_Series.of(uses), [d for d in users if d])
    finish(acc, KEYS, last)
    return acc


@pytest.mark.parametrize("seed", [1, 2])
def test_indexed_equals_counted_on_every_day(seed: int) -> None:
    rng = random.Random(seed)
    last = START + timedelta(days=300)
    accounts = {a.profile.account_id: a for a in (create_account(rng, n, last) for n in range(8))}
    memory = RollupMemory(accounts, KEYS)
    indexed = 0
    for acc in accounts.values():
        dense = acc.dense
        day = START - timedelta(days=100)
        while day <= last + timedelta(days=3):
            counted = memory._counted(acc, day)
            assert memory.activity([acc.profile.account_id], day) == [counted], (acc, day)
            if dense is not None and dense.covers(day):
                assert memory._indexed(acc, dense, day) == counted, (acc.profile, day)
                indexed += 1
            day += timedelta(days=1)
    # Most days of the accounts with rows were read from the rolling counts.
    assert indexed > 5 * 300
