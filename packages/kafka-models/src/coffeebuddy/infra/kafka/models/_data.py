"""The `data` payload of every event type (tolerant: unknown fields are ignored)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from coffeebuddy.infra.kafka.models._fields import (
    MAX_ORDERS,
    ChannelId,
    Item,
    Place,
    Reason,
    ReminderId,
    RunId,
    SlackTs,
    TeamId,
    Timestamp,
    UserId,
)


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EventData(_Data):
    """Base of every event payload: each belongs to one coffee run (the record key and subject)."""

    run_id: RunId


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


DeliveryStatus = Literal["claimed", "sent", "dropped"]


class ReminderDeliveryData(EventData):
    """The reminder worker's delivery-log record for one reminder (compacted by reminder_id)."""

    reminder_id: ReminderId
    status: DeliveryStatus
    reason: Reason | None = None
    due_at: Timestamp
    recorded_at: Timestamp
    slack_channel: ChannelId | None = None
    slack_ts: SlackTs | None = None
    claimed_at: Timestamp | None = None
