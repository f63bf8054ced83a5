"""Metrics-aware CloudEvents producer for CoffeeBuddy topics."""

from coffeebuddy.infra.kafka.producer._errors import (
    FATAL_PRODUCER_ERRORS,
    EventNotAllowedError,
    InvalidTraceparentError,
    ProducerClosedError,
    PublishBatchError,
)
from coffeebuddy.infra.kafka.producer._producer import CloseReport, KafkaEventProducer
from coffeebuddy.infra.kafka.producer._records import Headers, RecordMetadata, validate_traceparent
from coffeebuddy.infra.kafka.producer._seam import ProducerFactory, ProducerLike
from coffeebuddy.infra.kafka.producer._tracing import (
    OTEL_AVAILABLE,
    TRACE_HEADERS,
    extract_context,
    inject_context,
    resolve_tracer,
)
from coffeebuddy.infra.kafka.producer._version import __version__

__all__ = [
    "FATAL_PRODUCER_ERRORS",
    "OTEL_AVAILABLE",
    "TRACE_HEADERS",
    "CloseReport",
    "EventNotAllowedError",
    "Headers",
    "InvalidTraceparentError",
    "KafkaEventProducer",
    "ProducerClosedError",
    "ProducerFactory",
    "ProducerLike",
    "PublishBatchError",
    "RecordMetadata",
    "__version__",
    "extract_context",
    "inject_context",
    "resolve_tracer",
    "validate_traceparent",
]
