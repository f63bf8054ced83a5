"""CloudEvents 1.0 envelope and the concrete event types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, Self, TypeVar
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from coffeebuddy.infra.kafka.models._data import (
    DeadLetterReplayedData,
    OrderAddedData,
    ReminderCancelledData,
    ReminderScheduledData,
    ReminderStateData,
    RunCancelledData,
    RunClosedData,
    RunCreatedData,
    RunnerAssignedData,
    _Payload,
)
from coffeebuddy.infra.kafka.models._fields import (
    MAX_LEDGER_REF,
    NO_WHITESPACE_PATTERN,
    DataContentType,
    RunId,
    Timestamp,
)
from coffeebuddy.infra.kafka.models._state import REMINDER_STATE_TYPE

RUN_CREATED: Final = "coffeebuddy.run.created.v1"
RUN_ORDER_ADDED: Final = "coffeebuddy.run.order_added.v1"
RUN_RUNNER_ASSIGNED: Final = "coffeebuddy.run.runner_assigned.v1"
RUN_CLOSED: Final = "coffeebuddy.run.closed.v1"
RUN_CANCELLED: Final = "coffeebuddy.run.cancelled.v1"
REMINDER_SCHEDULED: Final = "coffeebuddy.reminder.scheduled.v1"
REMINDER_CANCELLED: Final = "coffeebuddy.reminder.cancelled.v1"
REMINDER_STATE: Final = REMINDER_STATE_TYPE
DLQ_REPLAYED: Final = "coffeebuddy.dlq.replayed.v1"

SLACK_APP_SOURCE = "/coffeebuddy/slack-app"
REMINDER_WORKER_SOURCE = "/coffeebuddy/reminder-worker"
DLQ_REPLAYER_SOURCE = "/coffeebuddy/dlq-replayer"

DataT = TypeVar("DataT", bound=_Payload)

CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
    | {"dataschema", "data_base64"}
)
"""CloudEvents attribute names that are not extensions (data_base64: JSON format's binary data)."""
_EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")


def check_extensions(extensions: Mapping[str, Any]) -> dict[str, str | int | bool]:
    """Validated copy of extension attributes: lower-case a-z0-9 names, not a core attribute,
    values str / int / bool (binary mode writes each as a UTF-8 header string)."""
    out: dict[str, str | int | bool] = {}
    for name, value in extensions.items():
        if not isinstance(name, str) or not _EXTENSION_NAME.match(name):
            raise ValueError(
                f"extension attribute name {name!r} must be lower-case letters or digits only"
            )
        if name in CORE_ATTRIBUTES:
            raise ValueError(f"{name!r} is a core CloudEvents attribute, not an extension")
        if not isinstance(value, str | int | bool):
            raise ValueError(
                f"extension attribute {name!r} must be a string, integer or boolean, "
                f"not {type(value).__name__}"
            )
        out[name] = value
    return out


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 envelope; `subject` is the run id (= `data.run_id`).

    (The one exception, `DeadLetterReplayed`, has no run when its dead letter had none: its
    subject is then the ledger `ref`; `data.event_subject()` says which.) Attributes the model
    does not name are extension attributes: kept (`extensions`) and written back on encode.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    EVENT_TYPE: ClassVar[str] = ""
    DEFAULT_SOURCE: ClassVar[str] = SLACK_APP_SOURCE

    specversion: Literal["1.0"] = "1.0"
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    source: Annotated[
        str, StringConstraints(pattern=NO_WHITESPACE_PATTERN, min_length=1, max_length=1024)
    ] = Field(description="URI-reference of the producing service, e.g. /coffeebuddy/slack-app")
    type: str
    subject: RunId = Field(description="The run id; always equal to data.run_id")
    time: Timestamp
    datacontenttype: DataContentType = "application/json"
    data: DataT

    @model_validator(mode="after")
    def _subject_is_run_id(self) -> Self:
        if self.subject != self.data.event_subject():
            raise PydanticCustomError(
                "subject_mismatch", self.data.SUBJECT_RULE, {"field": "subject"}
            )
        return self

    @property
    def extensions(self) -> dict[str, Any]:
        """Extension attributes (e.g. `partitionkey`, `traceparent`) by name; empty if none."""
        return dict(self.__pydantic_extra__ or {})

    @classmethod
    def create(
        cls,
        *,
        data: DataT,
        source: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        extensions: Mapping[str, str | int | bool] | None = None,
    ) -> Self:
        """A new event: id uuid4, time now (UTC), subject data.run_id, source the default;
        `extensions` are validated by `check_extensions`."""
        return cls(
            id=id if id is not None else str(uuid4()),
            source=source if source is not None else cls.DEFAULT_SOURCE,
            type=cls.EVENT_TYPE,
            subject=data.event_subject(),
            time=time if time is not None else datetime.now(UTC),
            data=data,
            **(check_extensions(extensions) if extensions else {}),  # type: ignore[arg-type]
        )


class RunCreated(CloudEvent[RunCreatedData]):
    """`coffeebuddy.run.created.v1`: a run was opened."""

    EVENT_TYPE: ClassVar[str] = RUN_CREATED
    type: Literal["coffeebuddy.run.created.v1"] = RUN_CREATED


class OrderAdded(CloudEvent[OrderAddedData]):
    """`coffeebuddy.run.order_added.v1`: an order was added to a run."""

    EVENT_TYPE: ClassVar[str] = RUN_ORDER_ADDED
    type: Literal["coffeebuddy.run.order_added.v1"] = RUN_ORDER_ADDED


class RunnerAssigned(CloudEvent[RunnerAssignedData]):
    """`coffeebuddy.run.runner_assigned.v1`: a runner was chosen."""

    EVENT_TYPE: ClassVar[str] = RUN_RUNNER_ASSIGNED
    type: Literal["coffeebuddy.run.runner_assigned.v1"] = RUN_RUNNER_ASSIGNED


class RunClosed(CloudEvent[RunClosedData]):
    """`coffeebuddy.run.closed.v1`: the run stopped taking orders."""

    EVENT_TYPE: ClassVar[str] = RUN_CLOSED
    type: Literal["coffeebuddy.run.closed.v1"] = RUN_CLOSED


class RunCancelled(CloudEvent[RunCancelledData]):
    """`coffeebuddy.run.cancelled.v1`: the run was called off."""

    EVENT_TYPE: ClassVar[str] = RUN_CANCELLED
    type: Literal["coffeebuddy.run.cancelled.v1"] = RUN_CANCELLED


class ReminderScheduled(CloudEvent[ReminderScheduledData]):
    """`coffeebuddy.reminder.scheduled.v1`: a DM to send at `data.due_at`."""

    EVENT_TYPE: ClassVar[str] = REMINDER_SCHEDULED
    type: Literal["coffeebuddy.reminder.scheduled.v1"] = REMINDER_SCHEDULED


class ReminderCancelled(CloudEvent[ReminderCancelledData]):
    """`coffeebuddy.reminder.cancelled.v1`: a scheduled reminder must not be sent."""

    EVENT_TYPE: ClassVar[str] = REMINDER_CANCELLED
    type: Literal["coffeebuddy.reminder.cancelled.v1"] = REMINDER_CANCELLED


class ReminderState(CloudEvent[ReminderStateData]):
    """A change of the reminder worker's schedule state (its compacted changelog)."""

    EVENT_TYPE: ClassVar[str] = REMINDER_STATE
    DEFAULT_SOURCE: ClassVar[str] = REMINDER_WORKER_SOURCE
    type: Literal["coffeebuddy.reminder.state.v1"] = REMINDER_STATE


class DeadLetterReplayed(CloudEvent[DeadLetterReplayedData]):
    """`coffeebuddy.dlq.replayed.v1`: a dead letter was re-published to its origin topic.

    The DLQ replay ledger's record (compacted by `data.ref`); subject = `data.run_id`, or
    `data.ref` when the dead letter belongs to no run.
    """

    EVENT_TYPE: ClassVar[str] = DLQ_REPLAYED
    DEFAULT_SOURCE: ClassVar[str] = DLQ_REPLAYER_SOURCE
    type: Literal["coffeebuddy.dlq.replayed.v1"] = DLQ_REPLAYED
    subject: Annotated[
        str,
        StringConstraints(pattern=NO_WHITESPACE_PATTERN, min_length=1, max_length=MAX_LEDGER_REF),
    ] = Field(description="data.run_id when set, else data.ref")


Event = Annotated[
    RunCreated
    | OrderAdded
    | RunnerAssigned
    | RunClosed
    | RunCancelled
    | ReminderScheduled
    | ReminderCancelled
    | ReminderState
    | DeadLetterReplayed,
    Field(discriminator="type"),
]
"""Any CoffeeBuddy event, discriminated by its CloudEvents `type`."""

EVENT_TYPES: Mapping[str, type[CloudEvent[Any]]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        RunCreated,
        OrderAdded,
        RunnerAssigned,
        RunClosed,
        RunCancelled,
        ReminderScheduled,
        ReminderCancelled,
        ReminderState,
        DeadLetterReplayed,
    )
}
"""CloudEvents `type` -> event class."""
