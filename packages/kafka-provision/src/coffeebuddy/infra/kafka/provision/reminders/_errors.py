"""Errors of the reminder operator commands: each says what was wrong and where it looked."""

from __future__ import annotations

from collections.abc import Sequence

from coffeebuddy.infra.kafka.provision._errors import ProvisionError


class RemindersError(ProvisionError, ValueError):
    """Bad input or an unusable cluster answer (unknown id, refused permission): says which."""


class UnknownReminderError(RemindersError):
    """No record of a reminder (or of a run's reminders) where its key maps to."""

    def __init__(self, message: str, *, ids: Sequence[str], searched: Sequence[str]) -> None:
        super().__init__(message)
        self.ids = tuple(ids)
        self.searched = tuple(searched)
        """The partitions read, as `topic[partition]`."""


class NotConfirmedError(RemindersError):
    """Cancelling more than one reminder was not confirmed: nothing was published."""
