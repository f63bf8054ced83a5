"""ReminderWorker: on-time, once-only runner and last-call reminders (no Slack dependency)."""

from coffeebuddy.infra.kafka.reminder_worker._changelog import (
    Changelog,
    ConsumerFactory,
    KafkaChangelog,
    RecordSink,
)
from coffeebuddy.infra.kafka.reminder_worker._gc import DEFAULT_GC_THRESHOLDS, tune_gc
from coffeebuddy.infra.kafka.reminder_worker._sender import (
    PreparingSender,
    ReminderSender,
    SendOutcome,
    SendResult,
)
from coffeebuddy.infra.kafka.reminder_worker._version import __version__
from coffeebuddy.infra.kafka.reminder_worker._worker import ReminderWorker, WorkerHealth

__all__ = [
    "DEFAULT_GC_THRESHOLDS",
    "Changelog",
    "ConsumerFactory",
    "KafkaChangelog",
    "PreparingSender",
    "RecordSink",
    "ReminderSender",
    "ReminderWorker",
    "SendOutcome",
    "SendResult",
    "WorkerHealth",
    "__version__",
    "tune_gc",
]
