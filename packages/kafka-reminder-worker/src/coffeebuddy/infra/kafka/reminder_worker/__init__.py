"""ReminderWorker: on-time, once-only runner and last-call reminders (no Slack dependency)."""

from coffeebuddy.infra.kafka.reminder_worker._version import __version__

__all__ = ["__version__"]
