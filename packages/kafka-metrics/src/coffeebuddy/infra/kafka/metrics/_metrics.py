"""Metric names, label vocabularies and the per-registry metric bundles."""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Iterable
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# --- Kafka client metrics ---------------------------------------------------------------
MESSAGES_PRODUCED: Final = "coffeebuddy_kafka_messages_produced_total"
PRODUCE_DURATION: Final = "coffeebuddy_kafka_produce_duration_seconds"
BYTES_PRODUCED: Final = "coffeebuddy_kafka_produced_bytes_total"
MESSAGES_CONSUMED: Final = "coffeebuddy_kafka_messages_consumed_total"
HANDLER_DURATION: Final = "coffeebuddy_kafka_handler_duration_seconds"
HANDLER_ERRORS: Final = "coffeebuddy_kafka_handler_errors_total"
DEAD_LETTERED: Final = "coffeebuddy_kafka_dead_lettered_total"
CONSUMER_LAG: Final = "coffeebuddy_kafka_consumer_lag"
RECORD_AGE: Final = "coffeebuddy_kafka_record_age_seconds"
COMMITS: Final = "coffeebuddy_kafka_commits_total"
COMMIT_FAILURES: Final = "coffeebuddy_kafka_commit_failures_total"
REBALANCES: Final = "coffeebuddy_kafka_rebalances_total"
INFLIGHT: Final = "coffeebuddy_kafka_inflight_records"
INCOMPLETE: Final = "coffeebuddy_kafka_incomplete_records"
PAUSED_PARTITIONS: Final = "coffeebuddy_kafka_paused_partitions"
COMMITTED_OFFSET: Final = "coffeebuddy_kafka_committed_offset"

# --- Reminder worker and Slack metrics ----------------------------------------------------
REMINDERS_SCHEDULED: Final = "coffeebuddy_reminders_scheduled_total"
REMINDERS_SENT: Final = "coffeebuddy_reminders_sent_total"
REMINDERS_DROPPED: Final = "coffeebuddy_reminders_dropped_total"
REMINDERS_FAILED: Final = "coffeebuddy_reminders_failed_total"
REMINDERS_PENDING: Final = "coffeebuddy_reminders_pending"
REMINDER_LATENESS: Final = "coffeebuddy_reminder_delivery_lateness_seconds"
SLACK_API_DURATION: Final = "coffeebuddy_slack_api_duration_seconds"
SLACK_API_ERRORS: Final = "coffeebuddy_slack_api_errors_total"
WORKER_READY: Final = "coffeebuddy_reminder_worker_ready"
SLACK_AUTH_OK: Final = "coffeebuddy_slack_auth_ok"
REMINDER_STATE_UNFLUSHED: Final = "coffeebuddy_reminder_state_unflushed"
REMINDER_AT_CAPACITY: Final = "coffeebuddy_reminder_worker_at_capacity"

# --- Bounded label vocabularies -----------------------------------------------------------
PRODUCE_OUTCOMES: Final = frozenset({"success", "error"})
HANDLER_OUTCOMES: Final = frozenset({"success", "deferred", "retry", "dead_letter"})
DEAD_LETTER_REASONS: Final = frozenset({"decode_error", "non_retryable", "retries_exhausted"})
REBALANCE_KINDS: Final = frozenset({"assigned", "revoked", "lost"})
DROP_REASONS: Final = frozenset(
    {
        "expired",
        "cancelled",
        "run_closed",
        "run_cancelled",
        "duplicate",
        "superseded",
        "recipient_unreachable",
    }
)
ERROR_CLASSES: Final = frozenset(
    {"rate_limited", "transient", "permanent", "configuration", "ambiguous"}
)
SLACK_KNOWN_ERRORS: Final = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "user_not_found",
        "user_disabled",
        "users_not_found",
        "cannot_dm_bot",
        "restricted_action",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
        "connection_error",
    }
)
OTHER: Final = "other"

PRODUCE_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
HANDLER_BUCKETS: Final = (
    0.0005,
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
RECORD_AGE_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
LATENESS_BUCKETS: Final = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SLACK_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def bounded(value: str, allowed: Iterable[str], other: str = OTHER) -> str:
    """Return ``value`` when it is in ``allowed``, else ``other``: keeps label cardinality fixed."""
    return value if value in allowed else other


def slack_error_label(code: str | None) -> str:
    """The Slack ``error`` label value: the code when known, else ``other``."""
    return code if code is not None and code in SLACK_KNOWN_ERRORS else OTHER


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


class LabelLimiter:
    """Lets through at most ``limit`` distinct values (first come), then maps the rest to ``other``.

    For labels whose values come from code rather than a fixed list (exception type names).
    """

    def __init__(self, limit: int = 50, other: str = OTHER) -> None:
        self._limit = limit
        self._other = other
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return self._other


_BUNDLE_LOCK = threading.Lock()
_KAFKA_BUNDLES: dict[CollectorRegistry, _KafkaCollectors] = {}
_REMINDER_BUNDLES: dict[CollectorRegistry, _ReminderCollectors] = {}


class _KafkaCollectors:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.messages_produced = Counter(
            MESSAGES_PRODUCED,
            "Records the producer finished sending, by outcome.",
            ["topic", "outcome"],
            registry=r,
        )
        self.produce_duration = Histogram(
            PRODUCE_DURATION,
            "Time from send to broker acknowledgement.",
            ["topic"],
            buckets=PRODUCE_BUCKETS,
            registry=r,
        )
        self.bytes_produced = Counter(
            BYTES_PRODUCED,
            "Value bytes of records acknowledged by the broker.",
            ["topic"],
            registry=r,
        )
        self.messages_consumed = Counter(
            MESSAGES_CONSUMED,
            "Records fetched and handed to decoding.",
            ["topic", "group"],
            registry=r,
        )
        self.handler_duration = Histogram(
            HANDLER_DURATION,
            "Handler call duration, by outcome.",
            ["topic", "group", "outcome"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.handler_errors = Counter(
            HANDLER_ERRORS,
            "Handler or decode failures, by exception type.",
            ["topic", "group", "error_type"],
            registry=r,
        )
        self.dead_lettered = Counter(
            DEAD_LETTERED,
            "Records written to the dead-letter topic, by reason.",
            ["topic", "group", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            CONSUMER_LAG,
            "Highwater minus position per assigned partition.",
            ["topic", "group", "partition"],
            registry=r,
        )
        self.record_age = Histogram(
            RECORD_AGE,
            "Now minus the record timestamp when the record is fetched.",
            ["topic", "group"],
            buckets=RECORD_AGE_BUCKETS,
            registry=r,
        )
        self.commits = Counter(COMMITS, "Successful offset commits.", ["group"], registry=r)
        self.commit_failures = Counter(
            COMMIT_FAILURES, "Failed offset commits.", ["group"], registry=r
        )
        self.rebalances = Counter(
            REBALANCES,
            "Partition assignment changes, by kind.",
            ["group", "kind"],
            registry=r,
        )
        self.inflight = Gauge(
            INFLIGHT, "Records handed out and not yet handled.", ["group"], registry=r
        )
        self.incomplete = Gauge(
            INCOMPLETE,
            "Records fetched and not yet completed (incl. deferred).",
            ["group"],
            registry=r,
        )
        self.paused_partitions = Gauge(
            PAUSED_PARTITIONS,
            "Partitions paused by backpressure or retry backoff.",
            ["group"],
            registry=r,
        )
        self.committed_offset = Gauge(
            COMMITTED_OFFSET,
            "Last committed offset per partition (next offset to read).",
            ["topic", "group", "partition"],
            registry=r,
        )


class KafkaMetrics:
    """Producer and consumer metrics, registered once per registry (default: the global one).

    Creating a second ``KafkaMetrics`` for the same registry reuses the same collectors
    instead of failing with a duplicate registration.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        with _BUNDLE_LOCK:
            c = _KAFKA_BUNDLES.get(reg)
            if c is None:
                c = _KAFKA_BUNDLES[reg] = _KafkaCollectors(reg)
        self.registry: CollectorRegistry = reg
        self.messages_produced: Counter = c.messages_produced
        self.produce_duration: Histogram = c.produce_duration
        self.bytes_produced: Counter = c.bytes_produced
        self.messages_consumed: Counter = c.messages_consumed
        self.handler_duration: Histogram = c.handler_duration
        self.handler_errors: Counter = c.handler_errors
        self.dead_lettered: Counter = c.dead_lettered
        self.consumer_lag: Gauge = c.consumer_lag
        self.record_age: Histogram = c.record_age
        self.commits: Counter = c.commits
        self.commit_failures: Counter = c.commit_failures
        self.rebalances: Counter = c.rebalances
        self.inflight: Gauge = c.inflight
        self.incomplete: Gauge = c.incomplete
        self.paused_partitions: Gauge = c.paused_partitions
        self.committed_offset: Gauge = c.committed_offset
        self.error_type_label = LabelLimiter(limit=50)

    def remove_partition(self, topic: str, group: str, partition: int) -> None:
        """Drop the lag and committed-offset series of a partition this member no longer owns."""
        labels = (topic, group, str(partition))
        for gauge in (self.consumer_lag, self.committed_offset):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)


class _ReminderCollectors:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.reminders_scheduled = Counter(
            REMINDERS_SCHEDULED,
            "Reminders accepted for delivery, by kind.",
            ["kind"],
            registry=r,
        )
        self.reminders_sent = Counter(
            REMINDERS_SENT, "Reminders delivered to Slack.", ["kind"], registry=r
        )
        self.reminders_dropped = Counter(
            REMINDERS_DROPPED,
            "Reminders deliberately not sent, by reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.reminders_failed = Counter(
            REMINDERS_FAILED,
            "Reminder delivery attempts that failed, by error class.",
            ["kind", "error_class"],
            registry=r,
        )
        self.reminders_pending = Gauge(
            REMINDERS_PENDING, "Reminders waiting for their due time.", registry=r
        )
        self.reminder_lateness = Histogram(
            REMINDER_LATENESS,
            "Delivery time minus due time.",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.slack_api_duration = Histogram(
            SLACK_API_DURATION,
            "Slack Web API call duration, by method and outcome.",
            ["method", "outcome"],
            buckets=SLACK_BUCKETS,
            registry=r,
        )
        self.slack_api_errors = Counter(
            SLACK_API_ERRORS,
            "Slack Web API errors, by method and (bounded) Slack error code.",
            ["method", "error"],
            registry=r,
        )
        self.worker_ready = Gauge(WORKER_READY, "1 when the reminder worker is ready.", registry=r)
        self.slack_auth_ok = Gauge(
            SLACK_AUTH_OK, "1 when the last Slack auth.test succeeded.", registry=r
        )
        self.state_unflushed = Gauge(
            REMINDER_STATE_UNFLUSHED,
            "Schedule state changes written but not yet acknowledged by the changelog topic.",
            registry=r,
        )
        self.at_capacity = Gauge(
            REMINDER_AT_CAPACITY,
            "1 while the worker holds max_pending reminders (intake paused, nothing dropped).",
            registry=r,
        )


class ReminderMetrics:
    """Reminder-worker and Slack metrics, registered once per registry (default: the global one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        with _BUNDLE_LOCK:
            c = _REMINDER_BUNDLES.get(reg)
            if c is None:
                c = _REMINDER_BUNDLES[reg] = _ReminderCollectors(reg)
        self.registry: CollectorRegistry = reg
        self.reminders_scheduled: Counter = c.reminders_scheduled
        self.reminders_sent: Counter = c.reminders_sent
        self.reminders_dropped: Counter = c.reminders_dropped
        self.reminders_failed: Counter = c.reminders_failed
        self.reminders_pending: Gauge = c.reminders_pending
        self.reminder_lateness: Histogram = c.reminder_lateness
        self.slack_api_duration: Histogram = c.slack_api_duration
        self.slack_api_errors: Counter = c.slack_api_errors
        self.worker_ready: Gauge = c.worker_ready
        self.slack_auth_ok: Gauge = c.slack_auth_ok
        self.state_unflushed: Gauge = c.state_unflushed
        self.at_capacity: Gauge = c.at_capacity

    def dropped(self, kind: str, reason: str) -> None:
        """Count a dropped reminder; an unknown reason is counted as ``other``."""
        self.reminders_dropped.labels(kind, bounded(reason, DROP_REASONS)).inc()

    def failed(self, kind: str, error_class: str) -> None:
        """Count a failed delivery attempt; an unknown class is counted as ``other``."""
        self.reminders_failed.labels(kind, bounded(error_class, ERROR_CLASSES)).inc()

    def slack_error(self, method: str, code: str | None) -> None:
        """Count a Slack API error with a bounded ``error`` label."""
        self.slack_api_errors.labels(method, slack_error_label(code)).inc()
