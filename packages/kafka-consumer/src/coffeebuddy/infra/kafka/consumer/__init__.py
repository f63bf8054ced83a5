"""Graceful, at-least-once, poison-proof consumer harness for CoffeeBuddy topics."""

from coffeebuddy.infra.kafka.consumer._backoff import Backoff
from coffeebuddy.infra.kafka.consumer._context import (
    Completion,
    HealthStatus,
    RecordContext,
    TopicPartition,
)
from coffeebuddy.infra.kafka.consumer._errors import (
    ConsumerError,
    ErrorClass,
    ErrorClassifier,
    NonRetryableError,
    RetryableError,
    RetryPolicy,
    default_classifier,
)
from coffeebuddy.infra.kafka.consumer._harness import KafkaConsumerHarness
from coffeebuddy.infra.kafka.consumer._seam import ConsumerFactory, ConsumerLike
from coffeebuddy.infra.kafka.consumer._tracker import OffsetTracker
from coffeebuddy.infra.kafka.consumer._types import Handler, PartitionsCallback, RecordDecoder
from coffeebuddy.infra.kafka.consumer._version import __version__

# The dead-letter header names are the models package's contract, re-exported unchanged for
# code that imported them from here.
from coffeebuddy.infra.kafka.models import (
    DLQ_ATTEMPTS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TYPE,
    DLQ_FIRST_SEEN,
    DLQ_HEADERS,
    DLQ_ORIGIN_KEY,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REASON,
)

__all__ = [
    "DLQ_ATTEMPTS",
    "DLQ_ERROR_MESSAGE",
    "DLQ_ERROR_TYPE",
    "DLQ_FIRST_SEEN",
    "DLQ_HEADERS",
    "DLQ_ORIGIN_KEY",
    "DLQ_ORIGIN_OFFSET",
    "DLQ_ORIGIN_PARTITION",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_REASON",
    "Backoff",
    "Completion",
    "ConsumerError",
    "ConsumerFactory",
    "ConsumerLike",
    "ErrorClass",
    "ErrorClassifier",
    "Handler",
    "HealthStatus",
    "KafkaConsumerHarness",
    "NonRetryableError",
    "OffsetTracker",
    "PartitionsCallback",
    "RecordContext",
    "RecordDecoder",
    "RetryPolicy",
    "RetryableError",
    "TopicPartition",
    "__version__",
    "default_classifier",
]
