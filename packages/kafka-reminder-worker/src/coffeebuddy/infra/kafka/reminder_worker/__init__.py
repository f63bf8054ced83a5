"""ReminderWorker: on-time, once-only runner and last-call reminders (no Slack dependency)."""

from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog, KafkaChangelog
from coffeebuddy.infra.kafka.reminder_worker._errors import CopartitioningError, ReminderWorkerError
from coffeebuddy.infra.kafka.reminder_worker._gc import tune_gc
from coffeebuddy.infra.kafka.reminder_worker._sender import (
    Fence,
    PreparingSender,
    ReminderSender,
    SendOutcome,
    SendResult,
)
from coffeebuddy.infra.kafka.reminder_worker._settings import ReminderSettings
from coffeebuddy.infra.kafka.reminder_worker._topics import WorkerTopics
from coffeebuddy.infra.kafka.reminder_worker._version import __version__
from coffeebuddy.infra.kafka.reminder_worker._worker import ReminderWorker, WorkerHealth

__all__ = [
    "Changelog",
    "CopartitioningError",
    "Fence",
    "KafkaChangelog",
    "PreparingSender",
    "ReminderSender",
    "ReminderSettings",
    "ReminderWorker",
    "ReminderWorkerError",
    "SendOutcome",
    "SendResult",
    "WorkerHealth",
    "WorkerTopics",
    "__version__",
    "tune_gc",
]
