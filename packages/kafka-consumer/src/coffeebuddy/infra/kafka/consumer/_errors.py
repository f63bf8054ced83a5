"""Error classification and retry policy for handler failures."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from coffeebuddy.infra.kafka.consumer._backoff import Backoff
from coffeebuddy.infra.kafka.models import EventDecodeError


class ConsumerError(Exception):
    """Root of the consumer package's errors (and of the two a handler raises on purpose)."""


class RetryableError(ConsumerError):
    """Raise from a handler for a transient failure: the record is retried with backoff."""


class NonRetryableError(ConsumerError):
    """Raise from a handler for a permanent failure: the record goes to the dead-letter topic."""


class ErrorClass(enum.Enum):
    """What the harness does with a handler failure."""

    RETRYABLE = "retryable"
    NON_RETRYABLE = "non_retryable"


ErrorClassifier = Callable[[BaseException], ErrorClass]


def default_classifier(exc: BaseException) -> ErrorClass:
    """`RetryableError`, timeouts, connection errors and retriable Kafka errors are retried;
    everything else (including decode/validation errors) is dead-lettered."""
    if isinstance(exc, RetryableError):
        return ErrorClass.RETRYABLE
    if isinstance(exc, NonRetryableError | EventDecodeError | ValidationError):
        return ErrorClass.NON_RETRYABLE
    if isinstance(exc, TimeoutError | ConnectionError):
        return ErrorClass.RETRYABLE
    if isinstance(exc, KafkaError) and getattr(exc, "retriable", False):
        return ErrorClass.RETRYABLE
    return ErrorClass.NON_RETRYABLE


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; `max_attempts` counts the first try."""

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    """Each delay is shortened by a random share of up to `jitter` (see `Backoff`)."""
    _backoff: Backoff = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy backoffs must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")
        backoff = Backoff(self.initial_backoff, self.max_backoff, self.multiplier, self.jitter)
        object.__setattr__(self, "_backoff", backoff)

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed."""
        return self._backoff.delay(attempt)

    def should_retry(self, attempt: int) -> bool:
        return attempt < self.max_attempts
