"""Kit: the metrics package's public API (names, per-registry objects, bounded labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.metrics import (
    CONSUMER_LAG,
    MESSAGES_PRODUCED,
    REMINDERS_DROPPED,
    KafkaMetrics,
    ReminderMetrics,
)


def test_kit_metrics_registry_injection_and_partition_cleanup() -> None:
    registry = CollectorRegistry()
    metrics = KafkaMetrics(registry)
    metrics.messages_produced.labels("t", "success").inc(3)
    metrics.consumer_lag.labels("t", "g", "0").set(7)
    assert registry.get_sample_value(MESSAGES_PRODUCED, {"topic": "t", "outcome": "success"}) == 3
    metrics.remove_partition("t", "g", 0)
    assert (
        registry.get_sample_value(CONSUMER_LAG, {"topic": "t", "group": "g", "partition": "0"})
        is None
    )
    assert KafkaMetrics(registry).messages_produced is metrics.messages_produced


def test_kit_reminder_metrics_bound_unknown_labels() -> None:
    registry = CollectorRegistry()
    reminders = ReminderMetrics(registry)
    reminders.dropped("runner", "not-a-reason")
    reminders.dropped("runner", "expired")
    assert registry.get_sample_value(REMINDERS_DROPPED, {"kind": "runner", "reason": "other"}) == 1
    assert (
        registry.get_sample_value(REMINDERS_DROPPED, {"kind": "runner", "reason": "expired"}) == 1
    )
