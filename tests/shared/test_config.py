"""The YAML file: defaults, the example in deploy/, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import ConfigError, TendConfig, load_config, parse_config
from shared.scoring_model import ScoringModel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "tend.yaml"

DOCS_SEGMENTS = """
scoring:
  segments:
    - name: enterprise
      match: {plan: [enterprise]}
      components:
        seat_utilization: {full_at: 0.60}
        stickiness: {weight: 5}
      bands: {green: 75}
    - name: renewal
      match: {lifecycle_stage: renewal}
      components:
        recency: {weight: 25}
"""


class TestDefaults:
    def test_absent_file_is_the_defaults(self) -> None:
        cfg = load_config(None)
        assert cfg == TendConfig()
        assert cfg.scoring == ScoringModel()

    def test_one_currency_for_every_amount(self) -> None:
        assert TendConfig().currency == "USD"
        assert parse_config({"currency": " eur "}).currency == "EUR"

    @pytest.mark.parametrize("data", [None, {}, {"scoring": None}, {"scoring": {}}])
    def test_empty_sections_are_the_defaults(self, data: Any) -> None:
        assert parse_config(data).scoring == ScoringModel()

    def test_issue_defaults(self) -> None:
        m = ScoringModel()
        c = m.components
        assert (c.seat_utilization.weight, c.seat_utilization.full_at) == (25, 0.80)
        assert (c.stickiness.full_at, c.feature_breadth.full_at) == (0.20, 1.0)
        assert (c.login_trend.full_at, c.login_trend.zero_at) == (0.85, 0.40)
        assert (c.recency.full_within_days, c.recency.zero_at_days) == (2, 30)
        assert (m.bands.green, m.bands.yellow) == (70, 40)
        t = m.trend
        assert (t.current_weeks, t.baseline_skip_weeks, t.lookback_weeks) == (3, 4, 12)
        assert m.onboarding.days == 30 and m.onboarding.stages == ("new",)
        o = m.onboarding.components
        assert (o.time_to_first_value.full_within_days, o.time_to_first_value.zero_at_days) == (
            7,
            30,
        )
        assert m.segments == ()


class TestExampleFile:
    def test_deploy_example_loads_and_documents_the_defaults(self) -> None:
        cfg = load_config(EXAMPLE)
        assert cfg.scoring == ScoringModel()
        assert cfg.login_events == TendConfig().login_events
        assert cfg.key_features == ("reports", "dashboards", "integrations")
        assert set(cfg.key_features) <= cfg.catalog_features()

    def test_commented_segment_example_is_valid(self) -> None:
        # The example in deploy/tend.yaml's comments (and docs/scoring.md) must stay loadable.
        text = EXAMPLE.read_text()
        lines = text[text.index("  #   segments:") :].splitlines()
        block = [ln.removeprefix("  #") for ln in lines if ln.startswith("  #")]
        data = yaml.safe_load("\n".join(block))
        cfg = parse_config({"scoring": data})
        assert [s.label for s in cfg.scoring.segments] == ["enterprise", "renewal"]

    def test_docs_segments_load(self) -> None:
        cfg = parse_config(yaml.safe_load(DOCS_SEGMENTS))
        merged, labels = cfg.scoring.for_account("enterprise", "renewal")
        assert labels == ("enterprise", "renewal")
        assert merged.components.seat_utilization.full_at == 0.60
        assert merged.components.recency.weight == 25
        assert merged.bands.green == 75


BAD: list[tuple[dict[str, Any], str]] = [
    # type and range errors: pydantic's location
    (
        {"scoring": {"components": {"recency": {"weight": "heavy"}}}},
        "scoring.components.recency.weight: Input should be a valid number",
    ),
    (
        {"scoring": {"components": {"stickiness": {"weight": -1}}}},
        "scoring.components.stickiness.weight: Input should be greater than or equal to 0",
    ),
    (
        {"scoring": {"components": {"seat_utilization": {"full_at": 1.5}}}},
        "scoring.components.seat_utilization.full_at:",
    ),
    (
        {"scoring": {"components": {"seat_utilization": {"full_at": 0}}}},
        "scoring.components.seat_utilization.full_at:",
    ),
    ({"scoring": {"components": {"loyalty": {"weight": 1}}}}, "scoring.components.loyalty:"),
    (
        {"scoring": {"components": {"recency": {"wieght": 1}}}},
        "scoring.components.recency.wieght: Extra inputs are not permitted",
    ),
    ({"scoring": {"bands": {"green": 170}}}, "scoring.bands.green:"),
    ({"scoring": {"bands": {"amber": 50}}}, "scoring.bands.amber:"),
    ({"scoring": {"trend": {"current_weeks": 0}}}, "scoring.trend.current_weeks:"),
    ({"scoring": {"trend": {"slope_weeks": 2}}}, "scoring.trend.slope_weeks:"),
    ({"scoring": {"onboarding": {"days": -1}}}, "scoring.onboarding.days:"),
    (
        {"scoring": {"onboarding": {"components": {"time_to_first_value": {"weight": "x"}}}}},
        "scoring.onboarding.components.time_to_first_value.weight:",
    ),
    ({"scoring": {"weights": {"recency": 1}}}, "scoring.weights: Extra inputs are not permitted"),
    ({"scoring": []}, "scoring:"),
    ({"scoring": {"segments": {"plan": "x"}}}, "scoring.segments:"),
    ({"scoring": {"segments": [{"bands": {"green": 80}}]}}, "scoring.segments.0.match: Field"),
    (
        {"scoring": {"segments": [{"match": {}}]}},
        "scoring.segments.0.match: Value error, give a plan or a lifecycle_stage",
    ),
    (
        {"scoring": {"segments": [{"match": {"plan": "x"}, "components": {"x": {}}}]}},
        "scoring.segments.0.components.x:",
    ),
    (
        {"scoring": {"segments": [{"match": {"tier": "x"}}]}},
        "scoring.segments.0.match.tier: Extra inputs are not permitted",
    ),
    # checks spanning fields: reported under the key they name
    (
        {"scoring": {"bands": {"green": 40, "yellow": 40}}},
        "scoring.bands.green: must be above yellow (40.0 <= 40.0)",
    ),
    (
        {"scoring": {"bands": {"yellow": 80}}},
        "scoring.bands.green: must be above yellow (70.0 <= 80.0)",
    ),
    (
        {"scoring": {"components": {"login_trend": {"zero_at": 0.9}}}},
        "scoring.components.login_trend.zero_at: must be below full_at (0.9 >= 0.85)",
    ),
    (
        {"scoring": {"components": {"seat_utilization": {"zero_at": 0.8}}}},
        "scoring.components.seat_utilization.zero_at: must be below full_at",
    ),
    (
        {"scoring": {"components": {"recency": {"zero_at_days": 2}}}},
        "scoring.components.recency.zero_at_days: must be above full_within_days (2 <= 2)",
    ),
    (
        {
            "scoring": {
                "onboarding": {"components": {"time_to_first_value": {"full_within_days": 40}}}
            }
        },
        "scoring.onboarding.components.time_to_first_value.zero_at_days: must be above",
    ),
    (
        {
            "scoring": {
                "components": {
                    n: {"weight": 0}
                    for n in (
                        "seat_utilization",
                        "stickiness",
                        "feature_breadth",
                        "login_trend",
                        "recency",
                    )
                }
            }
        },
        "scoring.components: the weights must not all be 0",
    ),
    (
        {
            "scoring": {
                "onboarding": {
                    "components": {
                        n: {"weight": 0}
                        for n in ("seats_activated", "time_to_first_value", "first_week_logins")
                    }
                }
            }
        },
        "scoring.onboarding.components: the weights must not all be 0",
    ),
    (
        {"scoring": {"trend": {"current_weeks": 5}}},
        "scoring.trend.baseline_skip_weeks: must be at least current_weeks (4 < 5)",
    ),
    (
        {"scoring": {"trend": {"lookback_weeks": 5}}},
        "scoring.trend.min_baseline_weeks: 2 baseline weeks do not fit",
    ),
    # a segment is checked after merging it over the base
    (
        {"scoring": {"segments": [{"match": {"plan": "x"}, "bands": {"green": 30}}]}},
        "scoring.segments.0.bands.green: must be above yellow (30.0 <= 40.0) "
        "(after merging segment 'plan=x' over the base)",
    ),
    (
        {
            "scoring": {
                "segments": [
                    {"match": {"plan": "a"}, "bands": {"green": 80}},
                    {
                        "name": "trendless",
                        "match": {"lifecycle_stage": "renewal"},
                        "components": {"login_trend": {"zero_at": 0.95}},
                    },
                ]
            }
        },
        "scoring.segments.1.components.login_trend.zero_at: must be below full_at "
        "(0.95 >= 0.85) (after merging segment 'trendless'",
    ),
    (
        {
            "scoring": {
                "segments": [
                    {
                        "match": {"plan": "a"},
                        "components": {
                            n: {"weight": 0}
                            for n in (
                                "seat_utilization",
                                "stickiness",
                                "feature_breadth",
                                "login_trend",
                                "recency",
                            )
                        },
                    }
                ]
            }
        },
        "scoring.segments.0.components: the weights must not all be 0",
    ),
    # the sections that were there before
    ({"login_events": ["Login", " "]}, "login_events: Value error"),
    ({"key_features": "reports"}, "key_features:"),
    ({"feature_catalog": ["x"]}, "feature_catalog:"),
    ({"alerting": {}}, "alerting: Extra inputs are not permitted"),
    ({"currency": "dollars"}, "currency: Value error, currency must be a three-letter ISO"),
    ({"currency": "U$D"}, "currency: Value error"),
]


class TestErrorsNameTheKey:
    @pytest.mark.parametrize(("data", "expected"), BAD)
    def test_bad_key_is_named(self, data: dict[str, Any], expected: str) -> None:
        with pytest.raises(ConfigError) as info:
            parse_config(data, source="tend.yaml")
        message = str(info.value)
        assert message.startswith("tend.yaml: ")
        assert expected in message

    def test_top_level_must_be_a_mapping(self) -> None:
        with pytest.raises(ConfigError, match="top level must be a mapping"):
            parse_config(["scoring"])

    def test_a_segment_may_fix_what_the_base_would_break(self) -> None:
        # A partial override is judged merged over the base, not with its own defaults.
        seg = {"match": {"plan": "x"}, "components": {"login_trend": {"full_at": 0.95}}}
        base = {"components": {"login_trend": {"zero_at": 0.5}}}
        cfg = parse_config({"scoring": {**base, "segments": [seg]}})
        merged, _ = cfg.scoring.for_account("x", None)
        assert merged.components.login_trend.full_at == 0.95
        assert merged.components.login_trend.zero_at == 0.5

    @pytest.mark.parametrize("value", [0, 1, 0.5, 2.0])
    def test_non_negative_weights_are_fine(self, value: float) -> None:
        cfg = parse_config({"scoring": {"components": {"recency": {"weight": value}}}})
        assert cfg.scoring.components.recency.weight == value


class TestFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read the config file"):
            load_config(tmp_path / "nope.yaml")

    def test_invalid_yaml(self, tmp_path: Path) -> None:
        p = tmp_path / "bad.yaml"
        p.write_text("scoring: [\n")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_config(p)

    def test_error_names_the_file_and_the_key(self, tmp_path: Path) -> None:
        p = tmp_path / "tend.yaml"
        p.write_text("scoring:\n  components:\n    recency:\n      weight: heavy\n")
        with pytest.raises(ConfigError) as info:
            load_config(p)
        assert str(info.value).startswith(f"{p}: scoring.components.recency.weight: ")

    def test_string_path(self, tmp_path: Path) -> None:
        p = tmp_path / "tend.yaml"
        p.write_text("key_features: [reports]\nscoring:\n  bands: {green: 75}\n")
        cfg = load_config(str(p))
        assert cfg.key_features == ("reports",) and cfg.scoring.bands.green == 75


class TestExistingBehaviour:
    @pytest.mark.parametrize(
        ("name", "login"), [("Signed In", True), ("Login", True), ("login", False), (None, False)]
    )
    def test_is_login(self, name: str | None, login: bool) -> None:
        assert TendConfig().is_login(name) is login

    @pytest.mark.parametrize(
        ("name", "props", "feature"),
        [
            ("Report Exported", {}, "reports"),
            ("Report Exported", {"feature": "other"}, "reports"),
            ("Clicked", {"feature": " dashboards "}, "dashboards"),
            ("Clicked", {"feature": "  "}, None),
            ("Clicked", {"feature": 3}, None),
            (None, {}, None),
        ],
    )
    def test_feature_for(
        self, name: str | None, props: dict[str, Any], feature: str | None
    ) -> None:
        cfg = TendConfig(feature_catalog={"Report Exported": "reports"})
        assert cfg.feature_for(name, props) == feature

    @pytest.mark.parametrize("stages", ["new", ["new", "trial"]])
    def test_onboarding_stages_accept_one_or_many(self, stages: Any) -> None:
        cfg = parse_config({"scoring": {"onboarding": {"stages": stages}}})
        assert cfg.scoring.onboarding.is_onboarding_stage("New")


class TestOutcomesBlock:
    """``outcomes:`` sets the lifecycle windows and the lifetime-value policy."""

    def test_defaults_when_absent_or_empty(self) -> None:
        for data in ({}, {"outcomes": None}, {"outcomes": {}}):
            o = parse_config(data).outcomes
            assert (o.new_days, o.renewal_window_days) == (30, 90)
            assert (o.gross_margin, o.max_lifetime_months) == (0.8, 60)

    def test_values_are_read(self) -> None:
        o = parse_config(
            {
                "outcomes": {
                    "new_days": 14,
                    "renewal_window_days": 60,
                    "gross_margin": 0.65,
                    "max_lifetime_months": 36,
                }
            }
        ).outcomes
        assert (o.new_days, o.renewal_window_days, o.gross_margin, o.max_lifetime_months) == (
            14,
            60,
            0.65,
            36,
        )

    def test_example_file_spells_out_the_defaults(self) -> None:
        assert load_config(EXAMPLE).outcomes == TendConfig().outcomes

    @pytest.mark.parametrize(
        ("block", "key"),
        [
            ({"gross_margin": 0}, "outcomes.gross_margin"),
            ({"gross_margin": 1.5}, "outcomes.gross_margin"),
            ({"max_lifetime_months": 0}, "outcomes.max_lifetime_months"),
            ({"new_days": -1}, "outcomes.new_days"),
            ({"renewal_window_days": "soon"}, "outcomes.renewal_window_days"),
            ({"margin": 0.8}, "outcomes.margin"),
        ],
    )
    def test_bad_value_names_the_key(self, block: dict[str, Any], key: str) -> None:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_config({"outcomes": block})
