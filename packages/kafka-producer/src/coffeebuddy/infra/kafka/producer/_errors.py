"""The producer's errors, and the aiokafka errors that break an idempotent producer for good."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    IllegalStateError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
    UnknownProducerId,
)

#: aiokafka errors after which the idempotent producer state is broken for good
#: (aiokafka#1017): the wrapper replaces the underlying producer instead of wedging.
FATAL_PRODUCER_ERRORS: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    TransactionalIdAuthorizationFailed,
    ClusterAuthorizationFailedError,
    IllegalStateError,
)


class ProducerError(Exception):
    """Root of every error the producer package raises."""


class EventNotAllowedError(ProducerError, ValueError):
    """The event's CloudEvents type is not one the topic carries."""

    def __init__(self, topic: str, event_type: str, allowed: Iterable[str]) -> None:
        self.topic = topic
        self.event_type = event_type
        self.allowed = frozenset(allowed)
        super().__init__(
            f"event type {event_type!r} is not allowed on topic {topic!r}; "
            f"allowed: {sorted(self.allowed)}"
        )


class ProducerClosedError(ProducerError, RuntimeError):
    """publish/send was called on a producer that is not started or already closed."""


class InvalidTraceparentError(ProducerError, ValueError):
    """A `traceparent` value that is not W3C Trace Context (version-traceid-parentid-flags)."""


class PublishBatchError(ProducerError, RuntimeError):
    """Some records of a `publish_many` call were not delivered (the others were)."""

    def __init__(self, total: int, failures: list[BaseException]) -> None:
        self.total = total
        self.failures = failures
        first = failures[0]
        super().__init__(
            f"{len(failures)} of {total} records were not delivered; first error: "
            f"{type(first).__name__}: {first}"
        )
