"""The scoring repository on PostgreSQL and SQLite, against hand-built rollups."""

from __future__ import annotations

import io
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.activity import (
    AccountActivity,
    AccountProfile,
    FeatureActivity,
    UserWeeks,
)
from services.scorer.repository import ScoringRepository
from services.scorer.score_rows import ScoreRow, previous_from_row, row_from_message
from services.scorer.writer import RollupWriter
from shared.accounts_csv import (
    AccountRow,
    AccountsCsvError,
    import_accounts,
    parse_accounts_csv,
    read_accounts_csv,
)
from shared.db.models import (
    Account,
    AccountDay,
    FeatureDay,
    FeatureUserDay,
    UserAlias,
    UserDay,
)
from shared.scores import EXAMPLE_SCORE

Sessions = async_sessionmaker[AsyncSession]
AS_OF = date(2026, 11, 28)
repo = ScoringRepository()


def ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


async def seed(
    db: Sessions,
    account: str,
    user_days: list[tuple[str, date, int, int]],
    *,
    features: Sequence[tuple[str, str, date, int]] = (),
    **account_fields: Any,
) -> None:
    """An account row, its user_days (user, day, events, logins), the account_days derived
    from them, and feature(_user)_days (feature, user, day, uses)."""
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _user, day, events, logins in user_days:
        per_day[day][0] += events
        per_day[day][1] += logins
        per_day[day][2] += 1
    per_feature: dict[tuple[str, date], list[Any]] = defaultdict(lambda: [0, set()])
    for feature, user, day, uses in features:
        per_feature[(feature, day)][0] += uses
        per_feature[(feature, day)][1].add(user)
    async with db() as session, session.begin():
        session.add(Account(account_id=account, **account_fields))
        session.add_all(
            UserDay(account_id=account, user_id=u, day=d, events=e, logins=n)
            for u, d, e, n in user_days
        )
        session.add_all(
            AccountDay(account_id=account, day=d, events=e, logins=n, active_users=a)
            for d, (e, n, a) in per_day.items()
        )
        session.add_all(
            FeatureUserDay(account_id=account, feature=f, user_id=u, day=d, uses=n)
            for f, u, d, n in features
        )
        session.add_all(
            FeatureDay(account_id=account, feature=f, day=d, uses=n, users=len(users))
            for (f, d), (n, users) in per_feature.items()
        )


def user_weeks(
    user: str, weeks: dict[int, tuple[int, int]], last: date, login: date | None = None
) -> UserWeeks:
    """A user's 12 weeks from {week: (active days, events)}."""
    return UserWeeks(
        user_id=user,
        active_days=tuple(weeks.get(w, (0, 0))[0] for w in range(12)),
        events=tuple(weeks.get(w, (0, 0))[1] for w in range(12)),
        last_active=last,
        last_login=login,
    )


async def load(
    db: Sessions, ids: list[str], key_features: tuple[str, ...] = ()
) -> list[AccountActivity]:
    async with db() as session:
        return await repo.load_activity(session, ids, AS_OF, key_features)


class TestWindows:
    async def test_day_week_and_month_edges(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        await seed(
            db,
            acme,
            [
                ("u1", ago(27), 1, 0),  # first day of the 28 (week 8)
                ("u2", ago(28), 1, 0),  # just outside the 28 days (week 7)
                ("u3", ago(6), 2, 1),  # first day of the 7 (week 11)
                ("u3", AS_OF, 1, 1),  # as_of itself
                ("u4", ago(7), 1, 0),  # just outside the 7 days (week 10)
                ("u5", ago(83), 1, 2),  # first day of the 12 weeks (week 0)
                ("u6", ago(84), 1, 4),  # just outside the 12 weeks
                ("u7", AS_OF + timedelta(days=1), 9, 9),  # after as_of: invisible
            ],
            first_seen=ago(84),
        )
        [a] = await load(db, [acme])
        dau = [0] * 35  # the daily series covers 35 days (u2's ago(28) is inside)
        dau[6] = dau[7] = dau[27] = dau[28] = dau[34] = 1
        assert a == AccountActivity(
            profile=AccountProfile(account_id=acme),
            as_of=AS_OF,
            first_seen=ago(84),
            last_active=AS_OF,
            last_login=AS_OF,
            daily_active_users=tuple(dau),
            wau=1,
            mau=3,
            weekly_active_users=(1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1),
            weekly_logins=(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
            features=(),
            activated_users=6,
            first_week_logins=6,  # u6 and u5, the first two days
            users=(
                user_weeks("u1", {8: (1, 1)}, ago(27)),
                user_weeks("u2", {7: (1, 1)}, ago(28)),
                user_weeks("u3", {11: (2, 3)}, AS_OF, AS_OF),
                user_weeks("u4", {10: (1, 1)}, ago(7)),
                user_weeks("u5", {0: (1, 1)}, ago(83), ago(83)),
            ),
        )

    async def test_young_account_gets_a_shorter_daily_series(self, db: Sessions, uid: str) -> None:
        young = f"{uid}-young"
        await seed(db, young, [("u1", ago(3), 1, 1), ("u2", ago(1), 1, 0)], first_seen=ago(3))
        [a] = await load(db, [young])
        assert a.daily_active_users == (1, 0, 1, 0)
        assert a.first_week_logins == 1
        # A contract start before the first event counts from the contract start.
        signed = f"{uid}-signed"
        await seed(db, signed, [("u1", ago(1), 1, 0)], first_seen=ago(1), created_at=ago(4))
        [b] = await load(db, [signed])
        assert b.daily_active_users == (0, 0, 0, 1, 0)

    async def test_last_login_older_than_twelve_weeks(self, db: Sessions, uid: str) -> None:
        old = f"{uid}-old"
        await seed(db, old, [("u1", ago(200), 3, 1), ("u1", ago(10), 1, 0)], first_seen=ago(200))
        [a] = await load(db, [old])
        assert (a.last_login, a.last_active) == (ago(200), ago(10))
        assert a.weekly_logins == (0,) * 12

    async def test_first_week_is_seven_days_from_the_start(self, db: Sessions, uid: str) -> None:
        start = ago(60)
        by_contract = f"{uid}-contract"
        days = [
            ("u1", start - timedelta(days=1), 1, 8),
            ("u1", start, 1, 1),
            ("u1", start + timedelta(days=6), 1, 2),
            ("u1", start + timedelta(days=7), 1, 4),
        ]
        await seed(db, by_contract, days, first_seen=start - timedelta(days=1), created_at=start)
        by_first_seen = f"{uid}-seen"
        await seed(db, by_first_seen, days[1:], first_seen=start)
        a, b = await load(db, [by_contract, by_first_seen])
        assert a.first_week_logins == 3
        assert b.first_week_logins == 3

    async def test_unknown_and_empty_accounts(self, db: Sessions, uid: str) -> None:
        empty = f"{uid}-empty"
        await seed(db, empty, [], name="Empty", seats=5)
        missing = f"{uid}-missing"
        a, b = await load(db, [empty, missing], ("reports",))
        assert a == AccountActivity(
            profile=AccountProfile(account_id=empty, name="Empty", seats=5),
            as_of=AS_OF,
            weekly_active_users=(0,) * 12,
            weekly_logins=(0,) * 12,
            features=(FeatureActivity("reports"),),
        )
        assert b.profile == AccountProfile(account_id=missing)
        assert await load(db, []) == []


class TestFeaturesAndUsers:
    async def test_key_features_including_unused_ones(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        await seed(
            db,
            acme,
            [("u1", ago(27), 3, 0), ("u2", ago(27), 1, 0)],
            features=[
                ("reports", "u1", ago(100), 1),
                ("reports", "u1", ago(28), 5),
                ("reports", "u1", ago(27), 2),
                ("reports", "u2", ago(27), 1),
                ("reports", "u2", ago(3), 1),
                ("export", "u1", AS_OF + timedelta(days=1), 4),
                ("other", "u1", ago(1), 7),
            ],
            first_seen=ago(100),
        )
        [a] = await load(db, [acme], ("reports", "export", "never"))
        assert a.features == (
            FeatureActivity("reports", ago(100), ago(3), uses_28d=4, users_28d=2),
            FeatureActivity("export"),
            FeatureActivity("never"),
        )

    async def test_users_per_week_for_the_champion_and_regular_users(
        self, db: Sessions, uid: str
    ) -> None:
        acme = f"{uid}-acme"
        await seed(
            db,
            acme,
            [
                ("weekly", ago(0), 1, 0),
                ("weekly", ago(7), 2, 1),
                ("weekly", ago(8), 3, 0),
                ("weekly", ago(77), 1, 1),
                ("daily", ago(1), 5, 1),
                ("daily", ago(2), 5, 0),
                ("gone", ago(84), 9, 1),  # before the 12 weeks: not a user of the window
            ],
            first_seen=ago(200),
        )
        [a] = await load(db, [acme])
        assert a.users == (
            user_weeks("daily", {11: (2, 10)}, ago(1), ago(1)),
            user_weeks("weekly", {0: (1, 1), 10: (2, 5), 11: (1, 1)}, AS_OF, ago(7)),
        )

    async def test_a_named_champion_quiet_for_longer_than_the_window(
        self, db: Sessions, uid: str
    ) -> None:
        acme = f"{uid}-acme"
        await seed(
            db,
            acme,
            [("boss", ago(120), 3, 1), ("boss", ago(100), 1, 0), ("u1", ago(1), 1, 1)],
            first_seen=ago(200),
            champion="boss",
        )
        [a] = await load(db, [acme])
        assert a.profile.champion == "boss"
        assert a.users[0] == UserWeeks(user_id="boss", last_active=ago(100), last_login=ago(120))
        assert [u.user_id for u in a.users] == ["boss", "u1"]

    async def test_query_count_does_not_grow_with_the_chunk(self, db: Sessions, uid: str) -> None:
        ids = [f"{uid}-{i:02d}" for i in range(30)]
        for account in ids:
            await seed(
                db,
                account,
                [("u1", ago(3), 1, 1), ("u2", ago(20), 1, 0)],
                features=[("reports", "u1", ago(3), 1)],
                first_seen=ago(20),
            )

        async def count(chunk: list[str]) -> int:
            statements: list[str] = []
            async with db() as session:
                bind = session.get_bind()

                def on_execute(*args: Any) -> None:
                    statements.append(args[2])

                event.listen(bind, "before_cursor_execute", on_execute)
                try:
                    got = await repo.load_activity(session, chunk, AS_OF, ("reports",))
                finally:
                    event.remove(bind, "before_cursor_execute", on_execute)
            assert [len(g.users) for g in got] == [2] * len(chunk)
            return len(statements)

        assert await count(ids[:1]) == await count(ids) <= 10


class TestScoresAndWorkLists:
    async def test_previous_scores_as_previous_from_row_makes_them(
        self, db: Sessions, uid: str
    ) -> None:
        """load_previous_scores reads only what PreviousScore takes: the same as
        previous_from_row of load_previous's rows, for health and onboarding scores, a score
        of nothing and components stored by an older version (numbers, not objects)."""
        ids = [f"{uid}-{n}" for n in range(4)]
        for a in ids:
            await seed(db, a, [], dirty=True)
        onboarding = EXAMPLE_SCORE.model_copy(update={"band": "new", "score": None})
        rows = [
            row_from_message(
                EXAMPLE_SCORE.model_copy(update={"account_id": ids[0], "as_of": ago(3)})
            ),
            row_from_message(onboarding.model_copy(update={"account_id": ids[0], "as_of": ago(1)})),
            row_from_message(
                EXAMPLE_SCORE.model_copy(update={"account_id": ids[1], "as_of": ago(2)})
            ),
            ScoreRow(ids[2], ago(2), 80.0, "green", {"recency": 90.0}, ["stickiness"]),
        ]
        async with db() as session, session.begin():
            await repo.save_scores(session, rows)
        for before in (ago(3), ago(2), ago(1), AS_OF):
            async with db() as session:
                got = await repo.load_previous_scores(session, ids, before)
                reference = await repo.load_previous(session, ids, before)
            assert got == {a: previous_from_row(r) for a, r in reference.items()}
        assert got[ids[0]].scorecard == "onboarding" and got[ids[1]].components
        assert set(got) == set(ids[:3])

    async def test_save_and_load_previous(self, db: Sessions, uid: str) -> None:
        acme = f"{uid}-acme"
        await seed(db, acme, [], dirty=True)
        d1, d2 = ago(2), ago(1)
        first = ScoreRow(acme, d1, 80.0, "green", {"recency": 90.0}, ["stickiness"], {"mau": 3})
        async with db() as session, session.begin():
            await repo.save_scores(session, [first])
        second = ScoreRow(acme, d2, 35.5, "red", moved={"recency": -50}, previous_score=80.0)
        async with db() as session, session.begin():
            await repo.save_scores(session, [second])
            # Re-scoring an older day keeps the history but not the current score.
            await repo.save_scores(session, [ScoreRow(acme, d1, 79.0, "green")])
            await repo.save_scores(
                session, [ScoreRow(acme, ago(9), None, "new", left_out=[{"name": "x"}])]
            )
        async with db() as session:
            prev = await repo.load_previous(session, [acme, f"{uid}-none"], d2)
            latest = await repo.load_previous(session, [acme], AS_OF)
            account = await session.get(Account, acme)
        assert set(prev) == {acme}
        async with db() as session:
            oldest = await repo.load_previous(session, [acme], ago(8))
        assert (oldest[acme].score, oldest[acme].left_out) == (None, [{"name": "x"}])
        assert (prev[acme].as_of, prev[acme].score, prev[acme].band) == (d1, 79.0, "green")
        assert latest[acme].moved == {"recency": -50} and latest[acme].previous_score == 80.0
        assert latest[acme].computed_at is not None
        assert account is not None
        # The re-score marks are not the history's business (see advance_marks).
        assert (account.score, account.band, account.scored_as_of, account.dirty) == (
            35.5,
            "red",
            d2,
            True,
        )

    async def test_marks_move_only_when_no_events_came_after_they_were_read(
        self, db: Sessions, uid: str
    ) -> None:
        from tests.support.events import create_event

        acme, quiet = f"{uid}-acme", f"{uid}-quiet"
        await seed(db, quiet, [])
        late = f"{AS_OF - timedelta(days=5)}T10:00:00+00:00"
        async with db() as session, session.begin():
            await RollupWriter().flush(
                session, "g", [create_event(f"{uid}-1", account_id=acme, at=late)], {}
            )
        async with db() as session:
            dirty = await repo.dirty_accounts(session, 100_000)
            marks = await repo.load_marks(session, [acme])
        assert acme in dirty and quiet not in dirty
        assert marks[acme].rescore_from == ago(5)
        # Events after the marks were read: moving the mark now would lose them.
        async with db() as session, session.begin():
            await RollupWriter().flush(
                session, "g", [create_event(f"{uid}-2", account_id=acme, at=late)], {}
            )
        async with db() as session, session.begin():
            await repo.advance_marks(session, {acme: (marks[acme], None)})
        async with db() as session:
            assert acme in await repo.dirty_accounts(session, 100_000)
            fresh = await repo.load_marks(session, [acme])
        assert fresh[acme].rescore_from == ago(5)
        async with db() as session, session.begin():
            await repo.advance_marks(session, {acme: (fresh[acme], ago(4))})
        async with db() as session:
            assert (await repo.load_marks(session, [acme]))[acme].rescore_from == ago(4)
            assert acme in await repo.dirty_accounts(session, 100_000)
            moved = await repo.load_marks(session, [acme])
        async with db() as session, session.begin():
            await repo.advance_marks(session, {acme: (moved[acme], None)})
        async with db() as session:
            assert acme not in await repo.dirty_accounts(session, 100_000)
            assert (await repo.load_marks(session, [acme]))[acme].rescore_from is None

    async def test_all_account_ids_pages_by_key(self, db: Sessions, uid: str) -> None:
        ids = [f"{uid}-{c}" for c in "abcde"]
        for account in reversed(ids):
            await seed(db, account, [])
        pages: list[list[str]] = []
        after = f"{uid}-"
        async with db() as session:
            while True:
                page = await repo.all_account_ids(session, after, 2)
                page = [p for p in page if p.startswith(uid)]
                if not page:
                    break
                pages.append(page)
                after = page[-1]
        assert pages == [ids[0:2], ids[2:4], ids[4:5]]

    async def test_get_offsets(self, db: Sessions, uid: str) -> None:
        topic = f"{uid}-t"
        async with db() as session, session.begin():
            await RollupWriter.store_offsets(session, "g", {(topic, 0): 7, (topic, 2): 9})
        async with db() as session:
            got = await repo.get_offsets(session, "g", [(topic, 0), (topic, 1), (topic, 2)])
            assert await repo.get_offsets(session, "g", []) == {}
            assert await repo.get_offsets(session, "other", [(topic, 0)]) == {}
        assert got == {(topic, 0): 7, (topic, 2): 9}


class TestAccountsCsv:
    def test_parses_typed_values_and_skips_blank_cells(self) -> None:
        text = (
            "\ufeffaccount_id,name,plan,seats,mrr,renewal_date,lifecycle_stage,created_at,"
            "csm_email,csm_slack\n"
            'acme,"Acme, Inc.",Pro,120,"4,500",2027-03-01,Growing,2026-01-15,kim@v.io,@kim\n'
            "\n"
            "beta,,,,,,,,,\n"
        )
        rows = parse_accounts_csv(io.StringIO(text))
        assert rows == [
            AccountRow(
                "acme",
                {
                    "name": "Acme, Inc.",
                    "plan": "Pro",
                    "seats": 120,
                    "mrr": 4500.0,
                    "renewal_date": date(2027, 3, 1),
                    "lifecycle_stage": "growing",
                    "created_at": date(2026, 1, 15),
                    "csm_email": "kim@v.io",
                    "csm_slack": "@kim",
                },
                line=2,
            ),
            AccountRow("beta", {}, line=4),
        ]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", ["line 1: the file is empty"]),
            ("name,seats\nAcme,3\n", ["line 1, column account_id: required column is missing"]),
            ("account_id,sets\na,1\n", ["line 1, column sets: unknown column"]),
            ("account_id,seats,seats\na,1,1\n", ["line 1, column seats: column appears"]),
            (
                "account_id,seats,mrr\na,ten,5\nb,3,lots\n,1,1\n",
                [
                    "line 2, column seats: 'ten' is not a number",
                    "line 3, column mrr: 'lots' is not a number",
                    "line 4, column account_id: is required",
                ],
            ),
            (
                "account_id,renewal_date,csm_email\na,2027-13-01,x\n",
                [
                    "line 2, column renewal_date: '2027-13-01' is not an ISO date",
                    "line 2, column csm_email: 'x' is not an email address",
                ],
            ),
            ("account_id,seats\na,1\na,2\n", ["line 3, column account_id: 'a' already on line 2"]),
            (
                f"account_id,champion\na,{'x' * 201}\n",
                ["line 2, column champion: is longer than 200 characters"],
            ),
            ("account_id,seats\na,1,2\n", ["line 2: has 3 cells, the header 2"]),
            ('account_id,name\n"a,\n', ["line 2"]),
        ],
    )
    def test_errors_name_line_and_column(self, text: str, expected: list[str]) -> None:
        with pytest.raises(AccountsCsvError) as info:
            parse_accounts_csv(io.StringIO(text))
        problems = [str(p) for p in info.value.problems]
        assert len(problems) == len(expected), problems
        for got, want in zip(problems, expected, strict=True):
            assert got.startswith(want), problems
        assert expected[0] in str(info.value)

    async def test_import_upserts_only_given_columns(
        self, db: Sessions, uid: str, tmp_path: Any
    ) -> None:
        acme, beta = f"{uid}-acme", f"{uid}-beta"
        await seed(db, acme, [], name="Old name", seats=5, first_seen=ago(3))
        path = tmp_path / "accounts.csv"
        path.write_text(
            f"account_id,seats,plan,renewal_date\n{acme},50,,2027-01-01\n{beta},,Team,\n",
            encoding="utf-8",
        )
        rows = read_accounts_csv(path)
        async with db() as session, session.begin():
            assert await import_accounts(session, rows) == 2
        async with db() as session:
            a = await session.get(Account, acme)
            b = await session.get(Account, beta)
        assert a is not None and b is not None
        assert (a.name, a.seats, a.plan, a.renewal_date, a.first_seen, a.dirty) == (
            "Old name",
            50,
            None,
            date(2027, 1, 1),
            ago(3),
            True,
        )
        assert (b.plan, b.seats, b.traits, b.dirty) == ("Team", None, {}, True)

    async def test_champion_column_names_the_champion(
        self, db: Sessions, uid: str, tmp_path: Any
    ) -> None:
        acme = f"{uid}-acme"
        await seed(db, acme, [("u1", ago(1), 1, 1)], seats=5, first_seen=ago(30))
        path = tmp_path / "accounts.csv"
        path.write_text(f"account_id,champion\n{acme}, dana@acme \n", encoding="utf-8")
        rows = read_accounts_csv(path)
        assert rows == [AccountRow(acme, {"champion": "dana@acme"}, line=2)]
        async with db() as session, session.begin():
            await import_accounts(session, rows)
        [a] = await load(db, [acme])
        assert (a.profile.champion, a.profile.seats) == ("dana@acme", 5)


def random_rollups(rng: random.Random, prefix: str, n: int) -> list[Any]:
    """``n`` accounts of random rollups around ``AS_OF``: days up to 120 back and some after it,
    named champions (active, quiet for long, never seen), aliases, non-key features, missing
    starts, accounts without any rows."""
    rows: list[Any] = []
    for i in range(n):
        account = f"{prefix}-{i:03d}"
        users = [f"u{j}" for j in range(rng.randint(0, 5))]
        rows.append(
            Account(
                account_id=account,
                seats=rng.choice([None, 0, 3, 10]),
                mrr=rng.choice([None, 99.5]),
                plan=rng.choice([None, "pro"]),
                created_at=rng.choice([None, ago(rng.randint(-3, 150))]),
                first_seen=rng.choice([None, ago(rng.randint(-3, 150))]),
                champion=rng.choice([None, None, "u0", "u4", "ghost"]),
            )
        )
        per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
        per_feature: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
        for user in users:
            for day in rng.sample(range(-5, 120), rng.randint(0, 40)):
                events, logins = rng.randint(1, 5), rng.choice([0, 0, 1, 2])
                rows.append(
                    UserDay(
                        account_id=account, user_id=user, day=ago(day), events=events, logins=logins
                    )
                )
                totals = per_day[ago(day)]
                totals[0] += events
                totals[1] += logins
                totals[2] += 1
                if rng.random() < 0.4:
                    feature = rng.choice(["reports", "dashboards", "exports", "search"])
                    uses = rng.randint(1, 4)
                    rows.append(
                        FeatureUserDay(
                            account_id=account,
                            feature=feature,
                            user_id=user,
                            day=ago(day),
                            uses=uses,
                        )
                    )
                    per_feature[(feature, ago(day))][0] += uses
                    per_feature[(feature, ago(day))][1] += 1
        rows.extend(
            AccountDay(account_id=account, day=d, events=e, logins=n_, active_users=a)
            for d, (e, n_, a) in per_day.items()
        )
        rows.extend(
            FeatureDay(account_id=account, feature=f, day=d, uses=u, users=n_)
            for (f, d), (u, n_) in per_feature.items()
        )
        if len(users) >= 2 and rng.random() < 0.3:
            rows.append(
                UserAlias(
                    account_id=account,
                    previous_id=users[0],
                    user_id=users[1],
                    day=ago(rng.randint(-3, 60)),
                )
            )
    return rows


class TestArrayReads:
    """On PostgreSQL ``load_activity`` reads a chunk with one statement returning arrays; it
    must build exactly the activities of the portable reads (SQLite's)."""

    @pytest.mark.integration
    @pytest.mark.parametrize("seed_", [1, 2, 3])
    async def test_same_activities_as_the_portable_reads(
        self, pg_sessions: Sessions, uid: str, seed_: int
    ) -> None:
        rng = random.Random(seed_)
        async with pg_sessions() as session, session.begin():
            session.add_all(random_rollups(rng, uid, 60))
        ids = [f"{uid}-{i:03d}" for i in range(60)] + [f"{uid}-unknown"]
        rng.shuffle(ids)
        for as_of in (AS_OF, ago(1), ago(30), AS_OF + timedelta(days=3)):
            for keys in (["reports", "dashboards", "exports"], ["search"], []):
                async with pg_sessions() as session:
                    arrays = await repo.load_activity(session, ids, as_of, keys)
                    portable = await repo.load_activity_portable(session, ids, as_of, keys)
                assert [a.profile.account_id for a in arrays] == ids
                assert arrays == portable
