"""Metrics-aware CloudEvents producer for CoffeeBuddy topics."""

from coffeebuddy.infra.kafka.producer._errors import (
    EventNotAllowedError,
    InvalidTraceparentError,
    ProducerClosedError,
    ProducerError,
    PublishBatchError,
)
from coffeebuddy.infra.kafka.producer._producer import KafkaEventProducer
from coffeebuddy.infra.kafka.producer._records import RecordMetadata
from coffeebuddy.infra.kafka.producer._tracing import extract_context, resolve_tracer
from coffeebuddy.infra.kafka.producer._version import __version__

__all__ = [
    "EventNotAllowedError",
    "InvalidTraceparentError",
    "KafkaEventProducer",
    "ProducerClosedError",
    "ProducerError",
    "PublishBatchError",
    "RecordMetadata",
    "__version__",
    "extract_context",
    "resolve_tracer",
]
