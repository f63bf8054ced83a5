"""Every documented metric exists under its documented name, type and labels, per registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import coffeebuddy.infra.kafka.metrics as m
from coffeebuddy.infra.kafka.metrics._labels import LabelLimiter, bounded, slack_error_label
from coffeebuddy.infra.kafka.metrics._names import HANDLER_OUTCOMES

KAFKA_TABLE = {
    m.MESSAGES_PRODUCED: ("counter", ("topic", "outcome")),
    m.PRODUCE_DURATION: ("histogram", ("topic",)),
    m.BYTES_PRODUCED: ("counter", ("topic",)),
    m.MESSAGES_CONSUMED: ("counter", ("topic", "group")),
    m.HANDLER_DURATION: ("histogram", ("topic", "group", "outcome")),
    m.HANDLER_ERRORS: ("counter", ("topic", "group", "error_type")),
    m.DEAD_LETTERED: ("counter", ("topic", "group", "reason")),
    m.CONSUMER_LAG: ("gauge", ("topic", "group", "partition")),
    m.RECORD_AGE: ("histogram", ("topic", "group")),
    m.COMMITS: ("counter", ("group",)),
    m.COMMIT_FAILURES: ("counter", ("group",)),
    m.REBALANCES: ("counter", ("group", "kind")),
    m.INFLIGHT: ("gauge", ("group",)),
    m.INCOMPLETE: ("gauge", ("group",)),
    m.PAUSED_PARTITIONS: ("gauge", ("group",)),
    m.COMMITTED_OFFSET: ("gauge", ("topic", "group", "partition")),
}
REMINDER_TABLE = {
    m.REMINDERS_SCHEDULED: ("counter", ("kind",)),
    m.REMINDERS_SENT: ("counter", ("kind",)),
    m.REMINDERS_DROPPED: ("counter", ("kind", "reason")),
    m.REMINDERS_FAILED: ("counter", ("kind", "error_class")),
    m.REMINDERS_PENDING: ("gauge", ()),
    m.REMINDER_LATENESS: ("histogram", ("kind",)),
    m.SLACK_API_DURATION: ("histogram", ("method", "outcome")),
    m.SLACK_API_ERRORS: ("counter", ("method", "error")),
    m.WORKER_READY: ("gauge", ()),
    m.SLACK_AUTH_OK: ("gauge", ()),
}


def _collector_for(registry: CollectorRegistry, name: str) -> tuple[str, tuple[str, ...]]:
    base = name.removesuffix("_total")
    for metric in registry.collect():
        if metric.name == base:
            labels: tuple[str, ...] = ()
            for sample in metric.samples:
                labels = tuple(k for k in sample.labels if k != "le")
                break
            return metric.type, labels
    raise AssertionError(f"{name} not registered")


def _touch_all(km: m.KafkaMetrics, rm: m.ReminderMetrics) -> None:
    km.messages_produced.labels("t", "success").inc()
    km.produce_duration.labels("t").observe(0.01)
    km.bytes_produced.labels("t").inc(10)
    km.messages_consumed.labels("t", "g").inc()
    km.handler_duration.labels("t", "g", "success").observe(0.01)
    km.handler_errors.labels("t", "g", "ValueError").inc()
    km.dead_lettered.labels("t", "g", "decode_error").inc()
    km.consumer_lag.labels("t", "g", "0").set(1)
    km.record_age.labels("t", "g").observe(1)
    km.commits.labels("g").inc()
    km.commit_failures.labels("g").inc()
    km.rebalances.labels("g", "assigned").inc()
    km.inflight.labels("g").set(1)
    km.incomplete.labels("g").set(1)
    km.paused_partitions.labels("g").set(1)
    km.committed_offset.labels("t", "g", "0").set(5)
    rm.reminders_scheduled.labels("k").inc()
    rm.reminders_sent.labels("k").inc()
    rm.dropped("k", "expired")
    rm.failed("k", "transient")
    rm.reminders_pending.set(3)
    rm.reminder_lateness.labels("k").observe(0.5)
    rm.slack_api_duration.labels("chat.postMessage", "ok").observe(0.1)
    rm.slack_error("chat.postMessage", "ratelimited")
    rm.worker_ready.set(1)
    rm.slack_auth_ok.set(1)


@pytest.mark.parametrize("name", sorted({**KAFKA_TABLE, **REMINDER_TABLE}))
def test_documented_metric_has_type_and_labels(name: str) -> None:
    registry = CollectorRegistry()
    km, rm = m.KafkaMetrics(registry), m.ReminderMetrics(registry)
    _touch_all(km, rm)
    expected_type, expected_labels = {**KAFKA_TABLE, **REMINDER_TABLE}[name]
    kind, labels = _collector_for(registry, name)
    assert kind == expected_type
    assert labels == expected_labels


def test_same_registry_shares_collectors_and_registries_are_isolated() -> None:
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    a, b, c = m.KafkaMetrics(r1), m.KafkaMetrics(r1), m.KafkaMetrics(r2)
    assert a.commits is b.commits
    a.commits.labels("g").inc()
    assert r1.get_sample_value("coffeebuddy_kafka_commits_total", {"group": "g"}) == 1.0
    assert r2.get_sample_value("coffeebuddy_kafka_commits_total", {"group": "g"}) is None
    assert c.commits is not a.commits
    assert m.ReminderMetrics(r1).worker_ready is m.ReminderMetrics(r1).worker_ready


def test_remove_partition_drops_lag_and_committed_series_only_for_that_partition() -> None:
    registry = CollectorRegistry()
    km = m.KafkaMetrics(registry)
    for p in ("0", "1"):
        km.consumer_lag.labels("t", "g", p).set(4)
        km.committed_offset.labels("t", "g", p).set(9)
    km.remove_partition("t", "g", 0)
    km.remove_partition("t", "g", 7)  # never had series: no error
    labels0 = {"topic": "t", "group": "g", "partition": "0"}
    labels1 = {**labels0, "partition": "1"}
    assert registry.get_sample_value(m.CONSUMER_LAG, labels0) is None
    assert registry.get_sample_value(m.COMMITTED_OFFSET, labels0) is None
    assert registry.get_sample_value(m.CONSUMER_LAG, labels1) == 4
    assert registry.get_sample_value(m.COMMITTED_OFFSET, labels1) == 9


def test_labels_stay_bounded() -> None:
    registry = CollectorRegistry()
    rm = m.ReminderMetrics(registry)
    rm.dropped("k", "made-up")
    rm.failed("k", "weird")
    rm.slack_error("chat.postMessage", "some_new_code")
    rm.slack_error("chat.postMessage", None)
    assert registry.get_sample_value(m.REMINDERS_DROPPED, {"kind": "k", "reason": "other"}) == 1
    assert registry.get_sample_value(m.REMINDERS_FAILED, {"kind": "k", "error_class": "other"}) == 1
    assert (
        registry.get_sample_value(
            m.SLACK_API_ERRORS, {"method": "chat.postMessage", "error": "other"}
        )
        == 2
    )
    limiter = LabelLimiter(limit=2)
    assert [limiter(v) for v in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]
    assert bounded("retry", HANDLER_OUTCOMES) == "retry"
    assert slack_error_label("channel_not_found") == "channel_not_found"


def test_default_registry_is_used_when_none_given() -> None:
    from prometheus_client import REGISTRY

    assert m.KafkaMetrics().registry is REGISTRY
    assert m.KafkaMetrics().commits is m.KafkaMetrics(REGISTRY).commits


def test_observe_many_matches_repeated_observe() -> None:
    values = [0.0, 0.0004, 0.001, 0.0011, 0.3, 7.0, 59.0, 61.0, 1e9, 0.01, 0.01]
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    one = m.KafkaMetrics(r1).handler_duration.labels("t", "g", "success")
    many = m.KafkaMetrics(r2).handler_duration.labels("t", "g", "success")
    for v in values:
        one.observe(v)
    m.observe_many(many, values)
    m.observe_many(many, [])
    samples1 = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in r1.collect()
        for s in s.samples
        if "created" not in s.name
    }
    samples2 = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in r2.collect()
        for s in s.samples
        if "created" not in s.name
    }
    assert samples1 == samples2
    assert r2.get_sample_value(
        m.HANDLER_DURATION + "_count", {"topic": "t", "group": "g", "outcome": "success"}
    ) == len(values)


def test_observe_many_falls_back_to_observe_without_known_internals() -> None:
    """A histogram-like object without prometheus_client's internals gets plain observe calls."""

    class Recording:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    recording = Recording()
    m.observe_many(recording, [0.5, 2.0, 0.5])  # type: ignore[arg-type]
    assert recording.seen == [0.5, 2.0, 0.5]


def test_every_declared_bundle_attribute_is_a_collector() -> None:
    """Each collector a bundle declares is set (the table and the declarations agree)."""
    registry = CollectorRegistry()
    for bundle in (m.KafkaMetrics(registry), m.ReminderMetrics(registry)):
        declared = [name for name in type(bundle).__annotations__ if not name.startswith("_")]
        assert len(declared) >= 12
        for name in declared:
            assert isinstance(getattr(bundle, name), Counter | Gauge | Histogram), name
