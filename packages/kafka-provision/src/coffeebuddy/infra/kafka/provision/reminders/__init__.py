"""Operating reminders: list them, tell one's story, cancel them (`coffeebuddy-kafka reminders`).

Read straight from the reminder worker's state changelog (`list`) and its history topic
(`show`: the one partition the reminder id maps to), with a group-less consumer that commits
nothing; `cancel` publishes the catalog's `reminder.cancelled` event (the Slack app's
contract) through the producer package. Records are decoded only by the models' state codec
(`decode_state`) and folded by the worker's own rule (`state_replaces`).
"""

from coffeebuddy.infra.kafka.provision.reminders._cancel import (
    OPERATOR_SOURCE,
    CancelReport,
    CancelTarget,
    cancel_reminders,
)
from coffeebuddy.infra.kafka.provision.reminders._cli import add_reminders_parser, parse_time
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
from coffeebuddy.infra.kafka.provision.reminders._read import OperatorReader, principal_of
from coffeebuddy.infra.kafka.provision.reminders._story import ReminderStory, Step, show_reminder
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics, partition_of
from coffeebuddy.infra.kafka.provision.reminders._view import (
    Change,
    ChangelogState,
    ReminderFilter,
    ReminderView,
    Unreadable,
    parse_statuses,
)

__all__ = [
    "OPERATOR_SOURCE",
    "CancelReport",
    "CancelTarget",
    "Change",
    "ChangelogState",
    "Listing",
    "NotConfirmedError",
    "OperatorReader",
    "OperatorTopics",
    "ReminderFilter",
    "ReminderStory",
    "ReminderView",
    "RemindersError",
    "Step",
    "UnknownReminderError",
    "Unreadable",
    "add_reminders_parser",
    "cancel_reminders",
    "list_reminders",
    "parse_statuses",
    "parse_time",
    "partition_of",
    "principal_of",
    "show_reminder",
    "watch_reminders",
]
