"""Metric names, bounded label vocabularies and histogram buckets: the metrics contract."""

from __future__ import annotations

from typing import Final

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
