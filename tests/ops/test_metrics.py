"""Every service's /metrics after real traffic: promtool accepts it, names follow Prometheus
conventions, labels are bounded, and the ingest workers' counters add up across processes."""

from __future__ import annotations

import re
import subprocess

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ops import REPO, Stack, tool

pytestmark = pytest.mark.e2e

REQUIRED = {
    "ingest": {
        "tend_ingest_requests": "counter",
        "tend_ingest_request_seconds": "histogram",
        "tend_ingest_events_accepted": "counter",
        "tend_ingest_events_rejected": "counter",
        "tend_ingest_payload_bytes": "histogram",
        "tend_ingest_produce_seconds": "histogram",
        "tend_ingest_produce_failures": "counter",
        "tend_ingest_clock_skew_corrections": "counter",
    },
    "scorer": {
        "tend_consumer_lag_records": "gauge",
        "tend_consumer_records": "counter",
        "tend_consumer_batch_records": "histogram",
        "tend_consumer_flush_duration_seconds": "histogram",
        "tend_consumer_flush_retries": "counter",
        "tend_consumer_dlq_records": "counter",
        "tend_consumer_duplicates": "counter",
        "tend_scorer_event_age_seconds": "histogram",
        "tend_scorer_rescore_duration_seconds": "histogram",
        "tend_scorer_accounts_scored": "counter",
        "tend_scorer_accounts": "gauge",
        "process_cpu_seconds": "counter",
        "process_resident_memory_bytes": "gauge",
    },
    "alerts": {
        "tend_consumer_lag_records": "gauge",
        "tend_consumer_flush_duration_seconds": "histogram",
        "tend_alerts_transitions": "counter",
        "tend_alerts_dispatch": "counter",
        "tend_alerts_outbox_pending": "gauge",
        "tend_alerts_outbox_oldest_pending_age_seconds": "gauge",
        "process_cpu_seconds": "counter",
    },
}
# Labels that would make one series per customer or person: unbounded, and personal data.
FORBIDDEN_LABELS = re.compile(r"account|user|email|event_id|message", re.IGNORECASE)
# Units tend measures in; Prometheus wants base units (seconds, bytes), never ms or kb.
NON_BASE_UNITS = re.compile(r"_(milli|micro|nano)?(ms|us|millis|milliseconds|kb|mb|minutes|hours)$")
MAX_SERIES_PER_FAMILY = 60
SERVICES = list(REQUIRED)


def families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def exposition(stack: Stack) -> dict[str, str]:
    return {name: service.metrics() for name, service in stack.services.items()}


class TestPromtool:
    @pytest.mark.parametrize("service", SERVICES)
    def test_check_metrics_passes(self, exposition: dict[str, str], service: str) -> None:
        result = subprocess.run(
            [tool("promtool"), "check", "metrics"],
            input=exposition[service],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # promtool prints lint findings (e.g. "counter metrics should have _total suffix")
        # and still exits 0 for some of them: there must be none.
        assert result.stdout.strip() == "", result.stdout


class TestConventions:
    @pytest.mark.parametrize("service", SERVICES)
    def test_the_issue_metrics_are_exposed(self, exposition: dict[str, str], service: str) -> None:
        found = families(exposition[service])
        missing = {
            name: kind
            for name, kind in REQUIRED[service].items()
            if name not in found or found[name].type != kind
        }
        assert not missing, f"{service} lacks (or has the wrong type for) {missing}"

    @pytest.mark.parametrize("service", SERVICES)
    def test_names_units_and_labels(self, exposition: dict[str, str], service: str) -> None:
        for family in families(exposition[service]).values():
            if not family.name.startswith("tend_"):
                continue
            assert not NON_BASE_UNITS.search(family.name), family.name
            assert family.documentation, f"{family.name} has no help text"
            for sample in family.samples:
                if family.type == "counter":
                    assert sample.name.endswith(("_total", "_created")), sample.name
                bad = [k for k in sample.labels if FORBIDDEN_LABELS.search(k)]
                assert not bad, f"{sample.name} has per-entity labels {bad}"
            # Histogram buckets ("le") are bounded by definition; the other labels must be too.
            series = {
                tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                for s in family.samples
            }
            assert len(series) <= MAX_SERIES_PER_FAMILY, family.name

    def test_durations_are_seconds_and_sizes_bytes(self, exposition: dict[str, str]) -> None:
        for text in exposition.values():
            for family in families(text).values():
                if family.type != "histogram" or not family.name.startswith("tend_"):
                    continue
                assert family.name.endswith(("_seconds", "_bytes", "_records")), family.name


class TestMultiprocess:
    """``tend ingest --workers 2``: each scrape reaches one worker, and answers for all."""

    def requests_counted(self, text: str) -> float:
        total = 0.0
        for sample in families(text)["tend_ingest_requests"].samples:
            if sample.name == "tend_ingest_requests_total" and sample.labels["route"] in (
                "/v1/batch",
                "/v1/track",
            ):
                total += sample.value
        return total

    def test_every_scrape_counts_every_workers_requests(self, stack: Stack) -> None:
        ingest = stack.services["ingest"]
        # Scrapes are spread over the workers by the kernel; all must agree with what was sent.
        seen = {self.requests_counted(ingest.metrics()) for _ in range(10)}
        assert seen == {float(stack.ingest_requests)}

    def test_accepted_events_add_up(self, stack: Stack) -> None:
        accepted = sum(
            s.value
            for s in families(stack.services["ingest"].metrics())[
                "tend_ingest_events_accepted"
            ].samples
            if s.name == "tend_ingest_events_accepted_total"
        )
        assert accepted == stack.events_accepted

    def test_process_metrics_only_in_single_process_mode(self, exposition: dict[str, str]) -> None:
        # prometheus-client cannot sum process_* over workers; docs/operations.md says so.
        assert "process_cpu_seconds_total" not in exposition["ingest"]
        assert "process_cpu_seconds_total" in exposition["scorer"]


def test_operations_doc_lists_every_tend_metric(exposition: dict[str, str]) -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    for text in exposition.values():
        for family in families(text).values():
            if family.name.startswith("tend_") and not family.name.endswith("_created"):
                name = family.name + ("_total" if family.type == "counter" else "")
                assert f"`{name}`" in doc, f"{name} is missing from docs/operations.md"
