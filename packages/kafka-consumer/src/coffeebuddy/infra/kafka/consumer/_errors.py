"""Error classification and retry policy for handler failures."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from coffeebuddy.infra.kafka.models import EventDecodeError


class RetryableError(Exception):
    """Raise from a handler for a transient failure: the record is retried with backoff."""


class NonRetryableError(Exception):
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
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy backoffs must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        if self.jitter:
            base *= random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 - not crypto
        return max(0.0, min(base, self.max_backoff * (1 + self.jitter)))

    def should_retry(self, attempt: int) -> bool:
        return attempt < self.max_attempts
