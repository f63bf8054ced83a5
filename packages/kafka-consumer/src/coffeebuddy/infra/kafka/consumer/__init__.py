"""Graceful, at-least-once, poison-proof consumer harness for CoffeeBuddy topics."""

from coffeebuddy.infra.kafka.consumer._backoff import Backoff
from coffeebuddy.infra.kafka.consumer._context import RecordContext, TopicPartition
from coffeebuddy.infra.kafka.consumer._errors import (
    ConsumerError,
    ErrorClass,
    NonRetryableError,
    RetryableError,
    RetryPolicy,
)
from coffeebuddy.infra.kafka.consumer._harness import KafkaConsumerHarness
from coffeebuddy.infra.kafka.consumer._version import __version__

__all__ = [
    "Backoff",
    "ConsumerError",
    "ErrorClass",
    "KafkaConsumerHarness",
    "NonRetryableError",
    "RecordContext",
    "RetryPolicy",
    "RetryableError",
    "TopicPartition",
    "__version__",
]
