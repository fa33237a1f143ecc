"""The agent's Prometheus series, as a scrape sees them."""

from __future__ import annotations

from prometheus_client import generate_latest

from pulling_agent.metrics import BATCH_OUTCOMES, DOCUMENT_OUTCOMES, Metrics


def scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_outcome_counters_exist_at_zero_from_the_start() -> None:
    """An agent that never finished a batch still exports its counters (at 0):
    the stall alert's increase() needs the series, and rate() the first step."""
    text = scrape(Metrics())
    for outcome in BATCH_OUTCOMES:
        assert f'pulling_agent_batches_total{{outcome="{outcome}"}} 0.0' in text
    for outcome in DOCUMENT_OUTCOMES:
        assert f'pulling_agent_documents_total{{outcome="{outcome}"}} 0.0' in text


def test_batch_counts_each_outcome() -> None:
    metrics = Metrics()
    metrics.batch("interrupted", 0.2, done=3, failed=1, retried=2, released=4)
    text = scrape(metrics)
    assert 'pulling_agent_batches_total{outcome="interrupted"} 1.0' in text
    assert 'pulling_agent_batches_total{outcome="complete"} 0.0' in text
    for outcome, count in (("done", 3), ("failed", 1), ("retried", 2), ("released", 4)):
        assert f'pulling_agent_documents_total{{outcome="{outcome}"}} {count}.0' in text
    assert "pulling_agent_batch_duration_seconds_count 1.0" in text
