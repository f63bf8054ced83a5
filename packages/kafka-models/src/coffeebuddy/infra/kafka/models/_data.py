"""The `data` payload of every event type (tolerant: unknown fields are ignored)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from coffeebuddy.infra.kafka.models._fields import (
    MAX_ORDERS,
    NO_WHITESPACE_PATTERN,
    ChannelId,
    Item,
    LedgerRef,
    Offset,
    Operator,
    Place,
    Reason,
    ReminderId,
    RunId,
    SlackTs,
    TeamId,
    Timestamp,
    TopicName,
    UserId,
)
from coffeebuddy.infra.kafka.models._state import ReminderStatus


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Payload(_Data):
    """Base of every event payload; names the CloudEvents `subject` its envelope must carry."""

    SUBJECT_RULE: ClassVar[str] = "must equal data.run_id"

    def event_subject(self) -> str:
        """The `subject` of an event carrying this data."""
        raise NotImplementedError


class EventData(_Payload):
    """Base of every run payload: each belongs to one coffee run (the record key and subject)."""

    run_id: RunId

    def event_subject(self) -> str:
        return self.run_id


class RunCreatedData(EventData):
    """A coffee run was opened in a channel."""

    team_id: TeamId
    channel_id: ChannelId
    organizer_user_id: UserId
    place: Place
    closes_at: Timestamp


class OrderAddedData(EventData):
    """Someone added an order to a run."""

    user_id: UserId
    item: Item


class RunnerAssignedData(EventData):
    """A runner (who fetches the coffee) was chosen."""

    runner_user_id: UserId


class RunClosedData(EventData):
    """The run stopped taking orders."""

    closed_at: Timestamp


class RunCancelledData(EventData):
    """The run was called off."""

    reason: Reason | None = None


class OrderLine(_Data):
    """One order as shown in a runner reminder."""

    user_id: UserId
    item: Item


ReminderKind = Literal["runner", "last_call"]


class ReminderScheduledData(EventData):
    """A DM to send to `recipient_user_id` at `due_at` (not after `expires_at`)."""

    reminder_id: ReminderId
    kind: ReminderKind
    team_id: TeamId
    channel_id: ChannelId
    recipient_user_id: UserId
    due_at: Timestamp
    expires_at: Timestamp | None = None
    place: Place
    closes_at: Timestamp | None = None
    order_count: int | None = Field(default=None, ge=0)
    orders: list[OrderLine] | None = Field(default=None, max_length=MAX_ORDERS)

    @model_validator(mode="after")
    def _expires_after_due(self) -> ReminderScheduledData:
        if self.expires_at is not None and self.expires_at <= self.due_at:
            raise PydanticCustomError(
                "expires_before_due",
                "must be after due_at",
                {"field": "expires_at"},
            )
        return self


class ReminderCancelledData(EventData):
    """A scheduled reminder must not be sent."""

    reminder_id: ReminderId
    reason: Reason | None = None


MAX_STATE_KEY = 300
StateKey = Annotated[
    str, StringConstraints(pattern=NO_WHITESPACE_PATTERN, min_length=1, max_length=MAX_STATE_KEY)
]


class ReminderStateData(EventData):
    """One record of the reminder worker's state (its changelog, compacted by `state_key`: the
    reminder id, or `run:<run_id>` for a run's mark; its history topic keeps every record).

    Each record is the key's full snapshot: the last record per key restores exactly what the
    whole history restored. Written to the changelog partition with the number of the input
    partition it came from. `keep_until` ends the key's own lifetime (due / expiry + late grace
    + margin): after it a tombstone may replace the record, decided by that time, never uptime.
    The worker's fast codec for the same record is `encode_state` / `decode_state`.
    """

    state_key: StateKey
    status: ReminderStatus
    reminder_id: ReminderId | None = None
    reminder: ReminderScheduledData | None = None
    event_id: str | None = Field(default=None, max_length=256)
    event_time: Timestamp | None = None
    event_source: str | None = Field(default=None, max_length=1024)
    origin_topic: TopicName | None = None
    origin_partition: Offset | None = None
    origin_offset: Offset | None = None
    traceparent: str | None = Field(default=None, max_length=256)
    reason: Reason | None = None
    cause_event_id: str | None = Field(default=None, max_length=256)
    owner: str | None = Field(default=None, max_length=200)
    epoch: Offset | None = None
    claimed_at: Timestamp | None = None
    deadline: Timestamp | None = None
    slack_channel: ChannelId | None = None
    slack_ts: SlackTs | None = None
    dlq_topic: TopicName | None = None
    dlq_partition: Offset | None = None
    dlq_offset: Offset | None = None
    run_closed: bool | None = None
    run_cancelled: bool | None = None
    keep_until: Timestamp
    recorded_at: Timestamp

    @model_validator(mode="after")
    def _reminder_id_defaults_to_the_key(self) -> ReminderStateData:
        """A reminder's record leaves `reminder_id` out when it equals `state_key` (the codec's
        rule; `decode_state` fills it the same way)."""
        if self.reminder_id is None and not self.status.is_run:
            object.__setattr__(self, "reminder_id", self.state_key)  # frozen: set while validating
        return self


class DeadLetterReplayedData(_Payload):
    """One dead letter re-published to its origin topic by `coffeebuddy-kafka dlq replay`.

    Keyed by `ref` (`<dlq topic>/<partition>/<offset>@<record timestamp ms>`; the timestamp keeps
    a recreated DLQ topic's reused offsets apart). `run_id` is set when the dead letter belongs
    to a run (its key or `data.run_id`); the event's subject is then the run id, else `ref`.
    """

    SUBJECT_RULE: ClassVar[str] = "must equal data.run_id, or data.ref when there is no run_id"

    ref: LedgerRef
    dlq_topic: TopicName
    dlq_partition: Offset
    dlq_offset: Offset
    origin_topic: TopicName
    origin_partition: Offset | None = None
    origin_offset: Offset | None = None
    target_partition: Offset
    target_offset: Offset
    replayed_at: Timestamp
    replayed_by: Operator | None = None
    run_id: RunId | None = None

    @model_validator(mode="after")
    def _ref_names_the_dead_letter(self) -> DeadLetterReplayedData:
        if not self.ref.startswith(f"{self.dlq_topic}/{self.dlq_partition}/{self.dlq_offset}@"):
            raise PydanticCustomError(
                "ref_mismatch",
                "must start with <dlq_topic>/<dlq_partition>/<dlq_offset>@",
                {"field": "ref"},
            )
        return self

    def event_subject(self) -> str:
        return self.run_id if self.run_id is not None else self.ref
