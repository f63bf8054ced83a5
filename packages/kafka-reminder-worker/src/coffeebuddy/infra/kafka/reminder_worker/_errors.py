"""The reminder worker's errors."""

from __future__ import annotations

__all__ = ["CopartitioningError", "ReminderWorkerError"]


class ReminderWorkerError(Exception):
    """Root of every error the reminder worker raises."""


class CopartitioningError(ReminderWorkerError):
    """The reminder events, run events and changelog topics differ in partition count: a run's
    reminders, its run events and their state would not share one partition number."""
