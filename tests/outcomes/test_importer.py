"""The operator's outcomes file (CSV or JSON): documented columns, every error names its row
and field, nothing returned until the whole file is clean."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.outcomes.importer import (
    COLUMNS,
    ImportProblem,
    OutcomeImportError,
    parse_outcomes_csv,
    parse_outcomes_json,
    read_outcomes,
)
from shared.outcomes.model import CustomerOutcome

pytestmark = pytest.mark.unit

D = date
GOOD = """account_id,kind,effective_on,reason,mrr_lost,new_mrr,new_term_end,mrr_delta
acme,cancellation,2026-03-05,budget cut,800,,,
globex,renewal,2026-03-01,,,"1,250.50",2027-03-01,
initech,expansion,2026-02-10,10 more seats,,,,500
initech,contraction,2026-04-01,,,,,-120.5
"""


def problems_of(text: str) -> list[tuple[int, str | None]]:
    with pytest.raises(OutcomeImportError) as err:
        parse_outcomes_csv(io.StringIO(text))
    return [(p.row, p.field) for p in err.value.problems]


class TestCsv:
    def test_every_kind(self) -> None:
        rows = parse_outcomes_csv(io.StringIO(GOOD))
        assert [r.row for r in rows] == [2, 3, 4, 5]
        assert [r.outcome for r in rows] == [
            CustomerOutcome(
                "acme", "cancellation", D(2026, 3, 5), reason="budget cut", mrr_lost=800
            ),
            CustomerOutcome(
                "globex", "renewal", D(2026, 3, 1), new_mrr=1250.5, new_term_end=D(2027, 3, 1)
            ),
            CustomerOutcome(
                "initech", "expansion", D(2026, 2, 10), reason="10 more seats", mrr_delta=500
            ),
            CustomerOutcome("initech", "contraction", D(2026, 4, 1), mrr_delta=-120.5),
        ]

    def test_a_bom_any_case_any_order_and_only_the_columns_needed(self) -> None:
        text = "\ufeffEffective_On, KIND ,account_id,mrr_delta\n2026-02-10,Expansion,a,5\n\n"
        (row,) = parse_outcomes_csv(io.StringIO(text))
        assert row.outcome == CustomerOutcome("a", "expansion", D(2026, 2, 10), mrr_delta=5)

    def test_the_source_is_kept(self) -> None:
        (row,) = parse_outcomes_csv(
            io.StringIO("account_id,kind,effective_on,mrr_delta\na,expansion,2026-01-01,1\n"),
            source="api",
        )
        assert row.outcome.source == "api"

    @pytest.mark.parametrize(
        ("line", "field"),
        [
            ("a,churned,2026-01-01,,,,,", "kind"),
            ("a,expansion,2026-1-1,,,,,5", "effective_on"),
            ("a,expansion,2026-02-30,,,,,5", "effective_on"),
            ("a,expansion,2026-W01-1,,,,,5", "effective_on"),
            (",expansion,2026-01-01,,,,,5", "account_id"),
            ("a,expansion,2026-01-01,,,,,", "mrr_delta"),  # required
            ("a,expansion,2026-01-01,,,,,-5", "mrr_delta"),  # wrong sign
            ("a,contraction,2026-01-01,,,,,5", "mrr_delta"),
            ("a,expansion,2026-01-01,,,,,$5", "mrr_delta"),
            ('a,expansion,2026-01-01,,,,,"1,5"', "mrr_delta"),  # a decimal comma, not 15
            ('a,expansion,2026-01-01,,,,,"12,50,0"', "mrr_delta"),
            ("a,expansion,2026-01-01,,,,,nan", "mrr_delta"),
            ("a,expansion,2026-01-01,,,,,1e13", "mrr_delta"),
            ("a,expansion,2026-01-01,,,100,,5", "new_mrr"),  # not used by an expansion
            ("a,cancellation,2026-01-01,,,,,", "reason"),  # required
            ("a,cancellation,2026-01-01,why,-1,,,", "mrr_lost"),
            ("a,renewal,2026-01-01,,,100,,", "new_term_end"),
            ("a,renewal,2026-01-01,,,100,2026-01-01,", "new_term_end"),  # not after
            ("a,renewal,2026-01-01,,,,2027-01-01,", "new_mrr"),
            ("a,renewal,2026-01-01,nul\x00,,100,2027-01-01,", "reason"),
            ("x" * 201 + ",expansion,2026-01-01,,,,,5", "account_id"),
            ("a,cancellation,2026-01-01," + "r" * 1001 + ",,,,", "reason"),
        ],
    )
    def test_each_problem_names_the_line_and_field(self, line: str, field: str) -> None:
        header = ",".join(COLUMNS)
        good = "ok,expansion,2026-01-01,,,,,5"
        assert problems_of(f"{header}\n{good}\n{line}\n") == [(3, field)]

    def test_every_problem_of_the_file_at_once(self) -> None:
        text = (
            "account_id,kind,effective_on,mrr_delta\n"
            "a,expansion,2026-01-01,x\n"
            "b,bogus,2026-13-01,5\n"
            "c,expansion,2026-01-01\n"
        )
        assert problems_of(text) == [(2, "mrr_delta"), (3, "kind"), (3, "effective_on"), (4, None)]

    def test_a_refused_value_and_the_kinds_rules_together(self) -> None:
        text = "account_id,kind,effective_on,mrr_lost,new_mrr\na,cancellation,2026-01-01,x,5\n"
        assert problems_of(text) == [(2, "mrr_lost"), (2, "reason"), (2, "new_mrr")]

    def test_a_natural_key_twice_names_both_lines(self) -> None:
        text = (
            "account_id,kind,effective_on,mrr_delta\n"
            "a,expansion,2026-01-01,5\n"
            "a,expansion,2026-01-01,6\n"
        )
        with pytest.raises(OutcomeImportError) as err:
            parse_outcomes_csv(io.StringIO(text))
        (problem,) = err.value.problems
        assert (problem.row, problem.field) == (3, "effective_on")
        assert "already on line 2" in str(problem)

    @pytest.mark.parametrize(
        ("header", "field"),
        [
            ("account_id,kind,effective_on,mrr", "mrr"),
            ("account_id,kind,mrr_delta", "effective_on"),
            ("account_id,kind,effective_on,kind", "kind"),
        ],
    )
    def test_header_problems(self, header: str, field: str) -> None:
        assert problems_of(header + "\n") == [(1, field)]

    def test_an_empty_file(self) -> None:
        with pytest.raises(OutcomeImportError, match="the file: is empty"):
            parse_outcomes_csv(io.StringIO(""))

    def test_the_message_names_row_and_field(self) -> None:
        problem = ImportProblem(7, "mrr_delta", "'x' is not a number")
        assert str(problem) == "line 7, field mrr_delta: 'x' is not a number"


class TestJson:
    def test_a_list_or_an_outcomes_object(self) -> None:
        items = [
            {
                "account_id": "a",
                "kind": "renewal",
                "effective_on": "2026-03-01",
                "new_mrr": 900,
                "new_term_end": "2027-03-01",
                "reason": None,
            },
            {
                "account_id": "b",
                "kind": "contraction",
                "effective_on": "2026-03-02",
                "mrr_delta": "-5",
            },
        ]
        for data in (json.dumps(items), {"outcomes": items}):
            rows = parse_outcomes_json(data)
            assert [r.outcome.key for r in rows] == [
                ("a", "renewal", D(2026, 3, 1)),
                ("b", "contraction", D(2026, 3, 2)),
            ]
            assert rows[0].outcome.new_mrr == 900 and rows[1].outcome.mrr_delta == -5

    def test_problems_name_the_item_and_field(self) -> None:
        items = [
            {"account_id": "a", "kind": "expansion", "effective_on": "2026-03-01", "mrr_delta": 5},
            {"account_id": 7, "kind": "expansion", "effective_on": 20260301, "mrr_delta": True},
            "not an object",
            {"account_id": "a", "kind": "expansion", "effective_on": "2026-03-01", "extra": 1},
        ]
        with pytest.raises(OutcomeImportError) as err:
            parse_outcomes_json(items)
        assert [str(p) for p in err.value.problems] == [
            "item 2, field account_id: 7 is not text",
            "item 2, field effective_on: 20260301 is not a date written YYYY-MM-DD",
            "item 2, field mrr_delta: True is not a number",
            "item 3: must be an object",
            "item 4, field extra: unknown field; the fields are " + ", ".join(COLUMNS),
        ]

    @pytest.mark.parametrize("data", ["{", '{"a": 1}', "3"])
    def test_not_a_list(self, data: str) -> None:
        with pytest.raises(OutcomeImportError, match="the file"):
            parse_outcomes_json(data)


class TestFiles:
    def test_by_suffix(self, tmp_path: Path) -> None:
        (tmp_path / "o.csv").write_text("\ufeff" + GOOD, encoding="utf-8")
        items = [
            {"account_id": "a", "kind": "expansion", "effective_on": "2026-01-01", "mrr_delta": 1}
        ]
        (tmp_path / "o.JSON").write_text(json.dumps(items), encoding="utf-8")
        assert len(read_outcomes(tmp_path / "o.csv")) == 4
        assert read_outcomes(tmp_path / "o.JSON")[0].outcome.mrr_delta == 1

    def test_not_utf8(self, tmp_path: Path) -> None:
        (tmp_path / "o.csv").write_bytes(b"account_id,kind,effective_on,reason\nm\xfcller,x,y,z\n")
        with pytest.raises(OutcomeImportError, match=r"the file: is not UTF-8 text \(byte 37\)"):
            read_outcomes(tmp_path / "o.csv")

    def test_crlf_and_a_quoted_line_break(self, tmp_path: Path) -> None:
        text = 'account_id,kind,effective_on,reason\r\na,cancellation,2026-01-01,"too\r\ndear"\r\n'
        (tmp_path / "o.csv").write_bytes(text.encode())
        (row,) = read_outcomes(tmp_path / "o.csv")
        assert row.outcome.reason == "too\r\ndear"


@st.composite
def outcomes(draw: st.DrawFn) -> CustomerOutcome:
    account = draw(
        st.text(
            st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20
        ).filter(lambda t: t.strip() == t and t.strip())
    )
    day = D(2024, 1, 1) + timedelta(days=draw(st.integers(0, 1000)))
    money = st.integers(1, 10**7).map(lambda c: c / 100)
    kind = draw(st.sampled_from(["cancellation", "renewal", "expansion", "contraction"]))
    if kind == "cancellation":
        return CustomerOutcome(
            account, "cancellation", day, reason="r", mrr_lost=draw(st.none() | money)
        )
    if kind == "renewal":
        end = day + timedelta(days=draw(st.integers(1, 800)))
        return CustomerOutcome(account, "renewal", day, new_mrr=draw(money), new_term_end=end)
    if kind == "expansion":
        return CustomerOutcome(account, "expansion", day, mrr_delta=draw(money))
    return CustomerOutcome(account, "contraction", day, mrr_delta=-draw(money))


class TestRoundTrip:
    @settings(max_examples=40, deadline=None)
    @given(st.lists(outcomes(), max_size=8, unique_by=lambda o: o.key))
    def test_what_is_written_is_read(self, written: list[CustomerOutcome]) -> None:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(COLUMNS)
        for o in written:
            w.writerow(["" if getattr(o, c) is None else str(getattr(o, c)) for c in COLUMNS])
        out.seek(0)
        assert [r.outcome for r in parse_outcomes_csv(out)] == written
