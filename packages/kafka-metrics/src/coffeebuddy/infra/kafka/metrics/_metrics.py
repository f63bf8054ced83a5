"""The metric bundles: every collector declared once in a table, registered once per registry."""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from coffeebuddy.infra.kafka.metrics import _names as n
from coffeebuddy.infra.kafka.metrics._labels import LabelLimiter, bounded, slack_error_label

Collector = Counter | Gauge | Histogram


@dataclass(frozen=True)
class _Spec:
    """One collector: its type, name, help text, label names and (histograms) buckets."""

    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def create(self, registry: CollectorRegistry) -> Collector:
        if self.buckets is not None:
            return Histogram(
                self.name, self.doc, self.labels, buckets=self.buckets, registry=registry
            )
        return self.kind(self.name, self.doc, self.labels, registry=registry)


_TOPIC_GROUP = ("topic", "group")
_PARTITION = ("topic", "group", "partition")

#: attribute of KafkaMetrics -> its collector.
_KAFKA: Final[Mapping[str, _Spec]] = {
    "messages_produced": _Spec(
        Counter,
        n.MESSAGES_PRODUCED,
        "Records the producer finished sending, by outcome.",
        ("topic", "outcome"),
    ),
    "produce_duration": _Spec(
        Histogram,
        n.PRODUCE_DURATION,
        "Time from send to broker acknowledgement.",
        ("topic",),
        n.PRODUCE_BUCKETS,
    ),
    "bytes_produced": _Spec(
        Counter, n.BYTES_PRODUCED, "Value bytes of records acknowledged by the broker.", ("topic",)
    ),
    "messages_consumed": _Spec(
        Counter, n.MESSAGES_CONSUMED, "Records fetched and handed to decoding.", _TOPIC_GROUP
    ),
    "handler_duration": _Spec(
        Histogram,
        n.HANDLER_DURATION,
        "Handler call duration, by outcome.",
        (*_TOPIC_GROUP, "outcome"),
        n.HANDLER_BUCKETS,
    ),
    "handler_errors": _Spec(
        Counter,
        n.HANDLER_ERRORS,
        "Handler or decode failures, by exception type.",
        (*_TOPIC_GROUP, "error_type"),
    ),
    "dead_lettered": _Spec(
        Counter,
        n.DEAD_LETTERED,
        "Records written to the dead-letter topic, by reason.",
        (*_TOPIC_GROUP, "reason"),
    ),
    "consumer_lag": _Spec(
        Gauge, n.CONSUMER_LAG, "Highwater minus position per assigned partition.", _PARTITION
    ),
    "record_age": _Spec(
        Histogram,
        n.RECORD_AGE,
        "Now minus the record timestamp when the record is fetched.",
        _TOPIC_GROUP,
        n.RECORD_AGE_BUCKETS,
    ),
    "commits": _Spec(Counter, n.COMMITS, "Successful offset commits.", ("group",)),
    "commit_failures": _Spec(Counter, n.COMMIT_FAILURES, "Failed offset commits.", ("group",)),
    "rebalances": _Spec(
        Counter, n.REBALANCES, "Partition assignment changes, by kind.", ("group", "kind")
    ),
    "inflight": _Spec(Gauge, n.INFLIGHT, "Records handed out and not yet handled.", ("group",)),
    "incomplete": _Spec(
        Gauge,
        n.INCOMPLETE,
        "Records fetched and not yet completed (incl. deferred).",
        ("group",),
    ),
    "paused_partitions": _Spec(
        Gauge,
        n.PAUSED_PARTITIONS,
        "Partitions paused by backpressure or retry backoff.",
        ("group",),
    ),
    "committed_offset": _Spec(
        Gauge,
        n.COMMITTED_OFFSET,
        "Last committed offset per partition (next offset to read).",
        _PARTITION,
    ),
}

#: attribute of ReminderMetrics -> its collector.
_REMINDER: Final[Mapping[str, _Spec]] = {
    "reminders_scheduled": _Spec(
        Counter, n.REMINDERS_SCHEDULED, "Reminders accepted for delivery, by kind.", ("kind",)
    ),
    "reminders_sent": _Spec(Counter, n.REMINDERS_SENT, "Reminders delivered to Slack.", ("kind",)),
    "reminders_dropped": _Spec(
        Counter,
        n.REMINDERS_DROPPED,
        "Reminders deliberately not sent, by reason.",
        ("kind", "reason"),
    ),
    "reminders_failed": _Spec(
        Counter,
        n.REMINDERS_FAILED,
        "Reminder delivery attempts that failed, by error class.",
        ("kind", "error_class"),
    ),
    "reminders_pending": _Spec(Gauge, n.REMINDERS_PENDING, "Reminders waiting for their due time."),
    "reminder_lateness": _Spec(
        Histogram,
        n.REMINDER_LATENESS,
        "Delivery time minus due time.",
        ("kind",),
        n.LATENESS_BUCKETS,
    ),
    "slack_api_duration": _Spec(
        Histogram,
        n.SLACK_API_DURATION,
        "Slack Web API call duration, by method and outcome.",
        ("method", "outcome"),
        n.SLACK_BUCKETS,
    ),
    "slack_api_errors": _Spec(
        Counter,
        n.SLACK_API_ERRORS,
        "Slack Web API errors, by method and (bounded) Slack error code.",
        ("method", "error"),
    ),
    "worker_ready": _Spec(Gauge, n.WORKER_READY, "1 when the reminder worker is ready."),
    "slack_auth_ok": _Spec(Gauge, n.SLACK_AUTH_OK, "1 when the last Slack auth.test succeeded."),
    "state_unflushed": _Spec(
        Gauge,
        n.REMINDER_STATE_UNFLUSHED,
        "Schedule state changes written but not yet acknowledged by the changelog topic.",
    ),
    "at_capacity": _Spec(
        Gauge,
        n.REMINDER_AT_CAPACITY,
        "1 while the worker holds max_pending reminders (intake paused, nothing dropped).",
    ),
}

_BUNDLE_LOCK = threading.Lock()
_BUNDLES: dict[tuple[CollectorRegistry, str], dict[str, Collector]] = {}


class _Bundle:
    """Sets one attribute per entry of ``_TABLE``; the collectors are made once per registry,
    so a second bundle on the same registry reuses them instead of failing as a duplicate."""

    _TABLE: Mapping[str, _Spec]

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        key = (reg, type(self).__name__)
        with _BUNDLE_LOCK:
            collectors = _BUNDLES.get(key)
            if collectors is None:
                collectors = {attr: spec.create(reg) for attr, spec in self._TABLE.items()}
                _BUNDLES[key] = collectors
        self.registry: CollectorRegistry = reg
        for attr, collector in collectors.items():
            setattr(self, attr, collector)


class KafkaMetrics(_Bundle):
    """Producer and consumer metrics, registered once per registry (default: the global one)."""

    _TABLE = _KAFKA
    messages_produced: Counter
    produce_duration: Histogram
    bytes_produced: Counter
    messages_consumed: Counter
    handler_duration: Histogram
    handler_errors: Counter
    dead_lettered: Counter
    consumer_lag: Gauge
    record_age: Histogram
    commits: Counter
    commit_failures: Counter
    rebalances: Counter
    inflight: Gauge
    incomplete: Gauge
    paused_partitions: Gauge
    committed_offset: Gauge

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.error_type_label = LabelLimiter(limit=50)

    def remove_partition(self, topic: str, group: str, partition: int) -> None:
        """Drop the lag and committed-offset series of a partition this member no longer owns."""
        labels = (topic, group, str(partition))
        for gauge in (self.consumer_lag, self.committed_offset):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)


class ReminderMetrics(_Bundle):
    """Reminder-worker and Slack metrics, registered once per registry (default: the global one)."""

    _TABLE = _REMINDER
    reminders_scheduled: Counter
    reminders_sent: Counter
    reminders_dropped: Counter
    reminders_failed: Counter
    reminders_pending: Gauge
    reminder_lateness: Histogram
    slack_api_duration: Histogram
    slack_api_errors: Counter
    worker_ready: Gauge
    slack_auth_ok: Gauge
    state_unflushed: Gauge
    at_capacity: Gauge

    def dropped(self, kind: str, reason: str) -> None:
        """Count a dropped reminder; an unknown reason is counted as ``other``."""
        self.reminders_dropped.labels(kind, bounded(reason, n.DROP_REASONS)).inc()

    def failed(self, kind: str, error_class: str) -> None:
        """Count a failed delivery attempt; an unknown class is counted as ``other``."""
        self.reminders_failed.labels(kind, bounded(error_class, n.ERROR_CLASSES)).inc()

    def slack_error(self, method: str, code: str | None) -> None:
        """Count a Slack API error with a bounded ``error`` label."""
        self.slack_api_errors.labels(method, slack_error_label(code)).inc()


def observe_many(histogram: Histogram, values: list[float]) -> None:
    """Observe every value of ``values`` on a histogram (a labelled child), exactly as repeated
    ``observe`` calls would, but with one lock round per bucket instead of per value.

    Hot paths collect durations in a plain list and flush them per batch.
    """
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:  # unknown prometheus_client internals: the public, slower way
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    total.inc(sum(values))
