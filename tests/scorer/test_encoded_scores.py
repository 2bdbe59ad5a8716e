"""A score is serialised once: the published bytes are ``ScoreMessage.to_bytes()`` and the
stored row's JSON parts are cut out of them (:func:`shared.scores.row_parts`); on random
scores, with ids and names made of the markers the cuts look for, the parts hold exactly the
values ``model_dump(mode="json")`` gives, and they are stored and compared as before."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.activity import AccountActivity
from services.scorer.repository import ScoringRepository
from services.scorer.score_rows import encode, row_from_message
from services.scorer.scoring import score
from services.scorer.usage import compute_metrics
from shared.scores import EXAMPLE_SCORE, PreviousScore, ScoreMessage, row_parts
from shared.scoring_model import ScoringModel
from tests.scorer.test_built_scores import KEYS, MODELS, activities, previous_scores

Sessions = async_sessionmaker[AsyncSession]
STAMP = datetime(2026, 11, 2, 23, tzinfo=UTC)
NASTY = st.sampled_from(
    [
        "plain",
        '"},{"name":"x',
        '],"left_out":[',
        '],"moved":{',
        '},"metrics":{',
        '},"name":',
        "back\\slash\\",
        '\\"',
        "ünïcödé ☃",
        "",
    ]
)


@st.composite
def messages(draw: st.DrawFn) -> ScoreMessage:
    activity: AccountActivity = draw(activities())
    profile = dataclasses.replace(
        activity.profile,
        account_id=draw(NASTY) + "acme",
        name=draw(st.one_of(st.none(), NASTY)),
        csm_email=draw(st.one_of(st.none(), NASTY)),
        csm_slack=draw(st.one_of(st.none(), NASTY)),
    )
    users = tuple(dataclasses.replace(u, user_id=draw(NASTY) + u.user_id) for u in activity.users)
    activity = dataclasses.replace(activity, profile=profile, users=users)
    keys = draw(st.sampled_from([KEYS, KEYS[:1], ()]))
    model: ScoringModel = draw(st.sampled_from(MODELS))
    previous: PreviousScore | None = draw(previous_scores)
    metrics = compute_metrics(activity, keys, model.trend)
    result = score(metrics, activity.profile, model, keys, previous)
    return result.to_message(metrics, activity.profile, STAMP, provisional=draw(st.booleans()))


def parts_of(msg: ScoreMessage) -> list[object]:
    row = row_from_message(msg)
    return [row.components, row.left_out, row.metrics, row.moved]


@pytest.mark.unit
class TestPartsCutOutOfTheMessage:
    @settings(max_examples=100, deadline=None)
    @given(msg=messages())
    def test_same_values_and_types_as_the_dump(self, msg: ScoreMessage) -> None:
        raw = msg.to_bytes()
        parts = row_parts(raw)
        assert parts is not None
        decoded = [json.loads(p) for p in parts]
        # repr tells 1 from 1.0: the values and their types are those of the dump.
        assert repr(decoded) == repr(parts_of(msg))

    @settings(max_examples=50, deadline=None)
    @given(msg=messages())
    def test_encode_publishes_the_same_bytes(self, msg: ScoreMessage) -> None:
        raw, row = encode(msg)
        assert raw == msg.to_bytes()
        assert (row.account_id, row.as_of, row.score, row.band) == (
            msg.account_id,
            msg.as_of,
            msg.score,
            msg.band,
        )
        assert (row.previous_score, row.previous_band, row.provisional) == (
            msg.previous_score,
            msg.previous_band,
            msg.provisional,
        )
        assert [json.loads(p) for p in (row.components, row.left_out, row.metrics, row.moved)] == (
            parts_of(msg)
        )

    def test_a_layout_it_does_not_know_is_refused(self) -> None:
        raw = EXAMPLE_SCORE.to_bytes()
        assert row_parts(raw) is not None
        assert row_parts(raw.replace(b'"left_out"', b'"left"')) is None
        assert row_parts(b"{}") is None


@pytest.mark.unit
class TestSameScore:
    def test_texts_of_an_older_version_compare_by_value(self) -> None:
        _, row = encode(EXAMPLE_SCORE)
        older = row_from_message(EXAMPLE_SCORE)
        # How the stored row was encoded before: json.dumps of the dumped parts.
        as_before = dataclasses.replace(
            row,
            components=json.dumps(older.components),
            left_out=json.dumps(older.left_out),
            metrics=json.dumps(older.metrics),
            moved=json.dumps(older.moved),
        )
        assert as_before.metrics != row.metrics
        assert as_before.same_score(row) and row.same_score(as_before)

    def test_a_changed_value_or_flag_is_a_change(self) -> None:
        _, row = encode(EXAMPLE_SCORE)
        metrics = json.loads(row.metrics)
        metrics["dau"] += 1
        assert not row.same_score(dataclasses.replace(row, metrics=json.dumps(metrics)))
        assert not row.same_score(dataclasses.replace(row, provisional=not row.provisional))
        assert not row.same_score(dataclasses.replace(row, score=1.0))
        assert row.same_score(dataclasses.replace(row, computed_at=datetime.now(UTC)))


@pytest.mark.parametrize("day", [date(2026, 11, 2)])
class TestStored:
    async def test_stored_as_the_dumped_parts_were(self, db: Sessions, uid: str, day: date) -> None:
        """An encoded row and the same score saved the way it was before read back the same."""
        repo = ScoringRepository()
        new = EXAMPLE_SCORE.model_copy(update={"account_id": f"{uid}-new", "as_of": day})
        old = EXAMPLE_SCORE.model_copy(update={"account_id": f"{uid}-old", "as_of": day})
        async with db() as session, session.begin():
            await repo.save_encoded(session, [encode(new)[1]])
            await repo.save_history(session, [row_from_message(old)])
        async with db() as session:
            dicts = await repo.load_scores(session, [new.account_id, old.account_id], day)
            texts = await repo.load_encoded_scores(session, [new.account_id, old.account_id], day)
        a, b = dicts[new.account_id], dicts[old.account_id]
        assert [a.components, a.left_out, a.metrics, a.moved] == parts_of(new)
        assert dataclasses.replace(a, account_id="x") == dataclasses.replace(b, account_id="x")
        assert texts[new.account_id].same_score(encode(new)[1])
        assert texts[old.account_id].same_score(encode(old)[1])

    async def test_encoded_texts_are_stored_as_they_are(
        self, db: Sessions, uid: str, day: date
    ) -> None:
        """On SQLite too: the driver binds the texts, never decoded for Core to encode them
        again (which stored ``json.dumps``'s spacing)."""
        repo = ScoringRepository()
        msg = EXAMPLE_SCORE.model_copy(update={"account_id": f"{uid}-texts", "as_of": day})
        _, row = encode(msg)
        old = row_from_message(msg.model_copy(update={"account_id": f"{uid}-dumped"}))
        async with db() as session, session.begin():
            await repo.save_encoded(session, [row])
            await repo.save_history(session, [old])
        async with db() as session:
            texts = await repo.load_encoded_scores(session, [row.account_id, old.account_id], day)
        got, dumped = texts[row.account_id], texts[old.account_id]
        assert [got.components, got.left_out, got.metrics, got.moved] == [
            row.components,
            row.left_out,
            row.metrics,
            row.moved,
        ]
        # A decoded row is stored as the engine's JSON type stored it (json.dumps).
        assert [dumped.components, dumped.left_out, dumped.metrics, dumped.moved] == [
            json.dumps(p) for p in (old.components, old.left_out, old.metrics, old.moved)
        ]
