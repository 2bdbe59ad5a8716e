"""The pure processor: what each kind of event changes, and how batches merge."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer.processor import (
    AccountDelta,
    Counts,
    EventDeltas,
    UserDelta,
    merge,
    process,
    process_batch,
)
from shared.account_fields import account_fields
from shared.events import EventStruct
from tests.support.events import create_event

DAY = date(2026, 11, 2)
AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


class TestActivity:
    @pytest.mark.parametrize(
        ("kwargs", "events", "logins", "feature_uses"),
        [
            pytest.param({}, 1, 0, 0, id="track"),
            pytest.param({"is_login": True, "name": "Signed In"}, 1, 1, 0, id="login"),
            pytest.param({"feature": "reports"}, 1, 0, 1, id="feature"),
            pytest.param({"type": "page", "name": "Home"}, 1, 0, 0, id="page"),
            pytest.param({"type": "page", "is_login": True}, 1, 0, 0, id="page-never-login"),
        ],
    )
    def test_counts(
        self, kwargs: dict[str, Any], events: int, logins: int, feature_uses: int
    ) -> None:
        d = process(create_event("e1", **kwargs))
        assert d.events == 1
        assert d.account_days == {("acme", DAY): Counts(events, logins)}
        assert d.user_days == {("acme", "u1", DAY): Counts(events, logins)}
        if feature_uses:
            assert d.feature_days == {("acme", "reports", DAY): 1}
            assert d.feature_user_days == {("acme", "reports", "u1", DAY): 1}
        else:
            assert d.feature_days == {} and d.feature_user_days == {}
        assert d.users == {("acme", "u1"): UserDelta(AT, AT, {})}
        assert d.accounts == {"acme": AccountDelta(DAY, {}, {})}
        assert d.user_accounts == {}

    def test_day_is_the_utc_date_of_occurred_at(self) -> None:
        d = process(create_event("e1", at="2026-11-02T23:30:00-05:00"))
        assert list(d.account_days) == [("acme", date(2026, 11, 3))]
        assert d.users[("acme", "u1")].first_seen.tzinfo is not None

    def test_anonymous_event_counts_for_the_account_only(self) -> None:
        d = process(create_event("e1", user_id=None, is_login=True, feature="reports"))
        assert d.account_days == {("acme", DAY): Counts(1, 1)}
        assert d.feature_days == {("acme", "reports", DAY): 1}
        assert d.user_days == {} and d.feature_user_days == {} and d.users == {}

    def test_event_without_account_changes_nothing(self) -> None:
        d = process(create_event("e1", type="identify", account_id=None, traits={"a": 1}))
        assert d == EventDeltas(events=1)


class TestTraits:
    def test_identify_sets_user_traits_not_counters(self) -> None:
        d = process(create_event("e1", type="identify", traits={"email": "a@b.co"}))
        assert d.account_days == {} and d.user_days == {}
        assert d.users[("acme", "u1")].traits == {"email": "a@b.co"}
        assert d.accounts["acme"].traits == {}

    def test_group_sets_account_traits_and_mapping(self) -> None:
        traits = {
            "name": " Acme Inc ",
            "plan": "Enterprise",
            "seats": "120",
            "mrr": "4,500",
            "renewalDate": "2027-03-01",
            "lifecycle_stage": "Growing",
            "created_at": "2026-01-15T08:00:00Z",
            "csm_email": "kim@vendor.io",
            "csmSlack": "@kim",
            "industry": "retail",
        }
        d = process(create_event("e1", type="group", traits=traits), routing_from_traits=True)
        assert d.account_days == {}
        assert d.user_accounts == {"u1": "acme"}
        acc = d.accounts["acme"]
        assert acc.traits == traits
        assert acc.fields == {
            "name": "Acme Inc",
            "plan": "Enterprise",
            "seats": 120,
            "mrr": 4500.0,
            "renewal_date": date(2027, 3, 1),
            "lifecycle_stage": "growing",
            "created_at": date(2026, 1, 15),
            "csm_email": "kim@vendor.io",
            "csm_slack": "@kim",
        }

    @pytest.mark.parametrize(
        ("traits", "fields"),
        [
            ({"seats": 120.0, "mrr": 4500}, {"seats": 120, "mrr": 4500.0}),
            ({"seats": "1,200", "mrr": "$4,500.50"}, {"seats": 1200, "mrr": 4500.5}),
            ({"seats": "many"}, {}),
            ({"seats": 12.5}, {}),
            ({"seats": -3}, {}),
            ({"seats": True}, {}),
            ({"mrr": "lots"}, {}),
            ({"mrr": float("nan")}, {}),
            ({"mrr": {"amount": 5}}, {}),
            ({"renewal_date": "next spring"}, {}),
            ({"renewal_date": "2027-02-30"}, {}),
            ({"renewal_date": 20270301}, {}),
            ({"csm_email": "not-an-email"}, {}),
            ({"name": "   "}, {}),
            ({"name": None, "plan": ["a"]}, {}),
            ({"name": "x" * 301}, {}),
            ({"seats": "oops", "plan": "Pro"}, {"plan": "Pro"}),
            # Past what a double or a date holds: dropped, not a crash of the scorer.
            ({"seats": 10**400, "mrr": -(10**400)}, {}),
            ({"renewal_date": "0001-01-01T00:00:00+01:00"}, {}),
            ({"created_at": "9999-12-31T23:59:59-01:00"}, {}),
        ],
    )
    def test_bad_values_are_dropped(self, traits: dict[str, Any], fields: dict[str, Any]) -> None:
        assert account_fields(traits) == fields
        d = process(create_event("e1", type="group", traits=traits), routing_from_traits=True)
        assert d.accounts["acme"].fields == fields
        assert d.accounts["acme"].traits == traits


@pytest.mark.unit
class TestRoutingTraits:
    """A write key may describe an account, not decide where its alerts go."""

    TRAITS: dict[str, Any] = {
        "name": "Acme",
        "seats": 12,
        "csm_name": "Kim",
        "csm_email": "attacker@evil.example",
        "csmSlack": "http://127.0.0.1:9/services/internal",
        "CSM Email": "other@evil.example",
        "csm-slack": "https://hooks.slack.com/services/T/B/x",
    }

    def test_by_default_routing_traits_are_dropped_from_columns_and_kept_traits(self) -> None:
        d = process(create_event("e1", type="group", traits=self.TRAITS))
        acc = d.accounts["acme"]
        assert acc.fields == {"name": "Acme", "seats": 12}
        assert acc.traits == {"name": "Acme", "seats": 12, "csm_name": "Kim"}

    def test_a_batch_drops_them_too(self) -> None:
        batch = [create_event(f"e{i}", type="group", traits=self.TRAITS) for i in range(2)]
        acc = process_batch(batch).accounts["acme"]
        assert "csm_email" not in acc.fields and "csm_slack" not in acc.fields

    def test_when_enabled_group_traits_set_the_csm(self) -> None:
        d = process(create_event("e1", type="group", traits=self.TRAITS), routing_from_traits=True)
        acc = d.accounts["acme"]
        assert acc.fields["csm_email"] in ("attacker@evil.example", "other@evil.example")
        assert acc.fields["csm_slack"].startswith("http")
        assert acc.traits == self.TRAITS


class TestMerge:
    def test_counters_add_and_later_traits_win(self) -> None:
        batch = [
            create_event("e1", is_login=True, at="2026-11-02T09:00:00+00:00"),
            create_event("e2", feature="reports", at="2026-11-02T11:00:00+00:00"),
            create_event("e3", user_id="u2", feature="reports"),
            create_event("e4", at="2026-11-01T08:00:00+00:00"),
            create_event("g1", type="group", traits={"plan": "Pro", "seats": 5}),
            create_event("g2", type="group", traits={"plan": "Team"}, at="2026-10-30T00:00:00Z"),
            create_event("i1", type="identify", traits={"a": 1, "b": 1}),
            create_event("i2", type="identify", traits={"b": 2}),
        ]
        d = process_batch(batch)
        assert d.events == 8
        assert d.account_days == {
            ("acme", DAY): Counts(3, 1),
            ("acme", date(2026, 11, 1)): Counts(1, 0),
        }
        assert d.user_days[("acme", "u1", DAY)] == Counts(2, 1)
        assert d.feature_days == {("acme", "reports", DAY): 2}
        assert d.feature_user_days == {
            ("acme", "reports", "u1", DAY): 1,
            ("acme", "reports", "u2", DAY): 1,
        }
        u1 = d.users[("acme", "u1")]
        assert u1.first_seen == datetime(2026, 10, 30, tzinfo=UTC)
        assert u1.last_seen == datetime(2026, 11, 2, 11, tzinfo=UTC)
        assert u1.traits == {"a": 1, "b": 2}
        acc = d.accounts["acme"]
        assert acc.first_seen == date(2026, 10, 30)
        assert acc.fields == {"plan": "Team", "seats": 5}

    def test_merge_does_not_modify_its_inputs(self) -> None:
        a = process(create_event("e1", type="identify", traits={"a": 1}))
        b = process(create_event("e2", type="identify", traits={"a": 2}))
        merge([a, b])
        assert a.users[("acme", "u1")].traits == {"a": 1}

    @pytest.mark.parametrize("n", [0, 1, 1000])
    def test_sizes(self, n: int) -> None:
        d = process_batch(create_event(f"e{i}", user_id=f"u{i % 7}") for i in range(n))
        assert d.events == n
        assert sum(c.events for c in d.account_days.values()) == n
        assert len(d.user_days) == min(n, 7)

    def test_merge_is_associative(self) -> None:
        events = [create_event(f"e{i}", user_id=f"u{i % 3}", feature="f") for i in range(9)]
        parts = [process(e) for e in events]
        assert merge([merge(parts[:4]), merge(parts[4:])]) == merge(parts)


class TestOnePassFold:
    """``process_batch`` folds a batch in one pass; it must equal ``merge`` of ``process``."""

    @settings(max_examples=100, derandomize=True, deadline=None, database=None)
    @given(
        st.lists(
            st.builds(
                create_event,
                st.sampled_from(["e1", "e2", "e3"]),
                type=st.sampled_from(["track", "identify", "group", "page", "screen", "alias"]),
                account_id=st.sampled_from(["acme", "globex", None, ""]),
                user_id=st.sampled_from(["u1", "u2", None, ""]),
                at=st.datetimes(
                    min_value=datetime(2026, 10, 30),
                    max_value=datetime(2026, 11, 3),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-8))]),
                ),
                feature=st.sampled_from(["reports", None, ""]),
                is_login=st.booleans(),
                traits=st.dictionaries(
                    st.sampled_from(["plan", "seats", "a", "csm_email"]),
                    st.sampled_from(["Pro", "12", 1]),
                    max_size=2,
                ),
                previous_id=st.sampled_from(["u1", "anon", None]),
            ),
            max_size=30,
        ),
        st.booleans(),
    )
    def test_equals_merge_of_process(self, batch: list[Any], routing: bool) -> None:
        assert process_batch(batch, routing_from_traits=routing) == merge(
            process(e, routing_from_traits=routing) for e in batch
        )

    def test_takes_the_struct_the_consumer_decodes(self) -> None:
        batch = [create_event("e1", feature="reports"), create_event("e2", type="group")]
        structs = [EventStruct.from_model(e) for e in batch]
        assert process_batch(structs) == process_batch(batch)
