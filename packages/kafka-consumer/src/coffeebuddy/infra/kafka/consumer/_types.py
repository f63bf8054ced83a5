"""The callables a harness is given: the handler, partition callbacks, the record decoder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from coffeebuddy.infra.kafka.consumer._context import RecordContext, TopicPartition
from coffeebuddy.infra.kafka.models import Event

#: Turns a record's value and headers into an event, raising `EventDecodeError` on bad input
#: (the CoffeeBuddy default: `decode_record`, both CloudEvents content modes).
RecordDecoder = Callable[[bytes | None, Any], Event]

Handler = Callable[[Event, RecordContext], Awaitable[None]]
PartitionsCallback = Callable[[list[TopicPartition]], Awaitable[None]]
