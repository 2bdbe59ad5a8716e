"""The scoring code builds its pydantic results without re-validating them (the values are
computed from validated input); on random accounts, every model it returns equals the same
model validated from its own fields, value for value and type for type (an int where a float
is declared would serialise differently), so the messages are those validation would give."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from services.scorer.activity import (
    DAILY_DAYS,
    WEEKS,
    AccountActivity,
    AccountProfile,
    FeatureActivity,
    UserWeeks,
)
from services.scorer.scoring import score
from services.scorer.usage import compute_metrics
from shared.scores import PreviousScore
from shared.scoring_model import ScoringModel

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 2)
KEYS = ("reports", "dashboards", "exports")
MODELS = (
    ScoringModel(),
    ScoringModel.model_validate(
        {
            "segments": [
                {
                    "name": "enterprise",
                    "match": {"plan": "enterprise"},
                    "components": {"stickiness": {"weight": 0}},
                },
                {
                    "match": {"lifecycle_stage": "renewal"},
                    "components": {"recency": {"weight": 45}},
                },
            ]
        }
    ),
)

days = st.one_of(st.none(), st.integers(0, 500).map(lambda n: AS_OF - timedelta(days=n)))
counts = st.tuples(*[st.integers(0, 7)] * WEEKS)


@st.composite
def activities(draw: st.DrawFn) -> AccountActivity:
    profile = AccountProfile(
        account_id="acme",
        plan=draw(st.sampled_from([None, "team", "enterprise"])),
        seats=draw(st.one_of(st.none(), st.integers(0, 40))),
        mrr=draw(st.one_of(st.none(), st.floats(0, 1e5))),
        renewal_date=draw(days),
        lifecycle_stage=draw(st.sampled_from([None, "new", "growing", "renewal"])),
        created_at=draw(days),
        champion=draw(st.sampled_from([None, "u0", "named"])),
    )
    users = tuple(
        UserWeeks(
            user_id=f"u{i}",
            active_days=draw(counts),
            events=draw(counts),
            last_active=draw(days),
            last_login=draw(days),
        )
        for i in range(draw(st.integers(0, 5)))
    )
    features = tuple(
        FeatureActivity(
            feature=k,
            first_used=draw(days),
            last_used=draw(days),
            uses_28d=draw(st.integers(0, 30)),
            users_28d=draw(st.integers(0, 5)),
        )
        for k in KEYS[: draw(st.integers(0, len(KEYS)))]
    )
    return AccountActivity(
        profile=profile,
        as_of=AS_OF,
        first_seen=draw(days),
        last_active=draw(days),
        last_login=draw(days),
        daily_active_users=tuple(draw(st.lists(st.integers(0, 6), max_size=DAILY_DAYS))),
        wau=draw(st.integers(0, 6)),
        mau=draw(st.integers(0, 8)),
        weekly_active_users=draw(counts),
        weekly_logins=draw(counts),
        features=features,
        activated_users=draw(st.integers(0, 8)),
        first_week_logins=draw(st.integers(0, 12)),
        users=users,
    )


previous_scores = st.one_of(
    st.none(),
    st.builds(
        PreviousScore,
        score=st.one_of(st.none(), st.floats(0, 100).map(lambda x: round(x, 1))),
        band=st.sampled_from(["green", "yellow", "red", "new", "unknown"]),
        scorecard=st.sampled_from(["health", "onboarding"]),
        components=st.dictionaries(
            st.sampled_from(["recency", "stickiness", "seats_activated", "gone"]),
            st.floats(0, 100).map(lambda x: round(x, 1)),
        ),
    ),
)


def assert_as_validated(model: BaseModel) -> None:
    """``model`` equals its own fields validated, with the same types (repr tells 1 from 1.0
    and a date from its ISO text) and the same JSON."""
    again = type(model).model_validate(model.model_dump())
    assert again == model
    assert repr(again.model_dump()) == repr(model.model_dump())
    assert again.model_dump_json() == model.model_dump_json()


class TestBuiltEqualsValidated:
    @settings(max_examples=100, deadline=None)
    @given(
        activity=activities(),
        keys=st.sampled_from([KEYS, KEYS[:1], ()]),
        model=st.sampled_from(MODELS),
        previous=previous_scores,
        provisional=st.booleans(),
    )
    def test_metrics_score_message_and_previous(
        self,
        activity: AccountActivity,
        keys: tuple[str, ...],
        model: ScoringModel,
        previous: PreviousScore | None,
        provisional: bool,
    ) -> None:
        metrics = compute_metrics(activity, keys, model.trend)
        result = score(metrics, activity.profile, model, keys, previous)
        stamp = datetime(2026, 11, 2, 23, tzinfo=UTC)
        message = result.to_message(metrics, activity.profile, stamp, provisional=provisional)
        for built in (metrics, result, message, result.as_previous()):
            assert_as_validated(built)
        assert message.provisional is provisional
        fields: dict[str, Any] = {**result.model_dump(), "metrics": metrics.model_dump()}
        assert message.model_dump(include=set(fields)) == fields | {"as_of": AS_OF}
