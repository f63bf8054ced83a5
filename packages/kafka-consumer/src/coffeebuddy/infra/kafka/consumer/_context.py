"""What a handler sees per record (`RecordContext`, `Completion`) and small public types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._partition import Partition


class TopicPartition(NamedTuple):
    """A topic partition (equal to and hashing like aiokafka's `TopicPartition`)."""

    topic: str
    partition: int


@dataclass(frozen=True)
class HealthStatus:
    """`ready`: joined the group and owns partitions. `live`: polling and making progress."""

    ready: bool
    live: bool
    detail: str


class Completion:
    """Completes a deferred record later (`done()`), or fails it (`fail(exc)`: retry or DLQ).

    Once the partition is revoked or lost the completion is stale: the record will be
    redelivered to the partition's next owner, and `done()`/`fail()` do nothing.
    """

    __slots__ = ("_attempt", "_event", "_first_seen", "_part", "_record", "_settled")

    def __init__(
        self, part: Partition, record: Any, event: Any, attempt: int, first_seen: float
    ) -> None:
        self._part = part
        self._record = record
        self._event = event
        self._attempt = attempt
        self._first_seen = first_seen
        self._settled = False

    @property
    def is_stale(self) -> bool:
        return self._part.revoked

    @property
    def is_settled(self) -> bool:
        """True once `done()` or `fail()` was called."""
        return self._settled

    @property
    def offset(self) -> int:
        return int(self._record.offset)

    def done(self) -> None:
        """The record is handled: its offset may be committed."""
        if self._settled or self._part.revoked:
            return
        self._settled = True
        self._part.complete(self._record.offset)

    def fail(self, exc: BaseException) -> None:
        """The deferred work failed: classify, then retry with backoff or dead-letter it."""
        if self._settled or self._part.revoked:
            return
        self._settled = True
        self._part.fail(self._record, self._event, self._attempt, self._first_seen, exc)


class RecordContext:
    """Where the record came from and which attempt this is; `defer()` to complete it later."""

    __slots__ = ("_completion", "_event", "_first_seen", "_part", "_record", "attempt")

    def __init__(
        self, part: Partition, record: Any, event: Any, attempt: int, first_seen: float
    ) -> None:
        self._part = part
        self._record = record
        self._event = event
        self._first_seen = first_seen
        self._completion: Completion | None = None
        self.attempt = attempt

    @property
    def topic(self) -> str:
        return str(self._record.topic)

    @property
    def partition(self) -> int:
        return int(self._record.partition)

    @property
    def offset(self) -> int:
        return int(self._record.offset)

    @property
    def key(self) -> bytes | None:
        key: bytes | None = self._record.key
        return key

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self._record.headers or ())

    @property
    def timestamp(self) -> datetime:
        """The record's timestamp (CreateTime unless the topic says LogAppendTime), UTC."""
        return datetime.fromtimestamp(self._record.timestamp / 1000, tz=UTC)

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self._record.topic, self._record.partition)

    @property
    def is_stale(self) -> bool:
        """True once this member no longer owns the partition."""
        return self._part.revoked

    @property
    def is_deferred(self) -> bool:
        """True once the handler called `defer()`: the record completes with its completion."""
        return self._completion is not None

    def defer(self) -> Completion:
        """Keep the record incomplete after the handler returns, until the completion settles.

        The harness keeps delivering later records; commits stop at the lowest incomplete offset.
        """
        if self._completion is None:
            self._completion = Completion(
                self._part, self._record, self._event, self.attempt, self._first_seen
            )
        return self._completion
