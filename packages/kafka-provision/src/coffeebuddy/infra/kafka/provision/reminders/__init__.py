"""Operating reminders: list them, tell one's story, cancel them (`coffeebuddy-kafka reminders`).

Read straight from the reminder worker's state changelog (`list`) and its history topic
(`show`: the one partition the reminder id maps to, `partition_of`), with a group-less consumer
that commits nothing; `cancel` publishes the catalog's `reminder.cancelled` event (the Slack
app's contract) through the producer package. Records are decoded only by the models' state
codec (`decode_state`) and folded by the worker's own rule (`state_replaces`).
"""

from coffeebuddy.infra.kafka.provision.reminders._cancel import CancelReport, cancel_reminders
from coffeebuddy.infra.kafka.provision.reminders._errors import (
    NotConfirmedError,
    RemindersError,
    UnknownReminderError,
)
from coffeebuddy.infra.kafka.provision.reminders._list import (
    Listing,
    list_reminders,
    watch_reminders,
)
from coffeebuddy.infra.kafka.provision.reminders._story import ReminderStory, show_reminder
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics, partition_of
from coffeebuddy.infra.kafka.provision.reminders._view import ReminderFilter

__all__ = [
    "CancelReport",
    "Listing",
    "NotConfirmedError",
    "OperatorTopics",
    "ReminderFilter",
    "ReminderStory",
    "RemindersError",
    "UnknownReminderError",
    "cancel_reminders",
    "list_reminders",
    "partition_of",
    "show_reminder",
    "watch_reminders",
]
