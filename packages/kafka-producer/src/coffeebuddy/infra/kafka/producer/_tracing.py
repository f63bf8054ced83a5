"""Optional OpenTelemetry glue: when tracing is on, the rule for it, and W3C headers on records.

opentelemetry-api is an optional extra (`[otel]`). Without it, or with tracing off, every client
keeps `tracer = None` and its hot path only tests that once per call. The consumer harness and
the reminder worker use the same rule (`resolve_tracer`) and header helpers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from coffeebuddy.infra.kafka.models import TRACEPARENT_HEADER, TRACESTATE_HEADER

try:
    from opentelemetry import propagate, trace
except ImportError:  # the [otel] extra is not installed: tracing stays off
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "OTEL_AVAILABLE",
    "TRACE_HEADERS",
    "extract_context",
    "inject_context",
    "producer_span",
    "record_send",
    "resolve_tracer",
]

TRACE_HEADERS: Final = frozenset({TRACEPARENT_HEADER, TRACESTATE_HEADER, "baggage"})
"""Headers a traced publish writes itself (a caller's copies are replaced)."""


def resolve_tracer(
    tracing: bool | None, tracer_provider: TracerProvider | None, instrumentation: str
) -> Tracer | None:
    """The tracer a client uses, or None: tracing off, no per-record work.

    `tracing=False`: off. `True`: on (needs opentelemetry-api, else `RuntimeError`). `None`
    (default): on when a tracer provider is given or an SDK provider is installed globally
    before the client is built, and `OTEL_SDK_DISABLED` is not `true`.
    """
    if tracing is False:
        return None
    if not OTEL_AVAILABLE:
        if tracing:
            raise RuntimeError(
                "tracing=True needs opentelemetry-api: install the package's [otel] extra, "
                "e.g. pip install 'coffeebuddy-infra-kafka-producer[otel]'"
            )
        return None
    if tracing is None:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        if tracer_provider is None and isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
        ):
            return None  # no SDK configured: spans would be no-ops anyway
    from coffeebuddy.infra.kafka.producer._version import __version__

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    return provider.get_tracer(instrumentation, __version__)


def inject_context(headers: list[tuple[str, bytes]], context: Context | None = None) -> None:
    """Append `traceparent` / `tracestate` (the global propagator's fields) for `context`
    (default: the current one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    headers.extend((name, value.encode()) for name, value in carrier.items())


def extract_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """The trace context a record carries in its W3C headers (empty context if none)."""
    carrier = {
        name: value.decode("utf-8", "replace")
        for name, value in headers or ()
        if name in TRACE_HEADERS and value is not None
    }
    return propagate.extract(carrier)


def producer_span(
    tracer: Tracer,
    topic: str,
    event: Any,
    key: bytes | None,
    parent: str | None,
) -> Span:
    """Start a `send <topic>` PRODUCER span for one event (messaging semantic conventions);
    `parent` is a caller-given traceparent that becomes the span's parent."""
    context = extract_context([(TRACEPARENT_HEADER, parent.encode())]) if parent else None
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.id": str(event.id),
        "cloudevents.event_type": str(event.type),
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
    return tracer.start_span(
        f"send {topic}", context=context, kind=trace.SpanKind.PRODUCER, attributes=attributes
    )


def record_send(span: Span, result: Any | BaseException) -> None:
    """End a producer span with where the record landed, or the error."""
    if isinstance(result, BaseException):
        span.set_attribute("error.type", type(result).__name__)
        span.record_exception(result)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(result).__name__))
    else:
        span.set_attribute("messaging.destination.partition.id", str(result.partition))
        span.set_attribute("messaging.kafka.offset", int(result.offset))
    span.end()


def traced_headers(
    base: Sequence[tuple[str, bytes]], span: Span, caller: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """CloudEvents headers, the span's trace headers, then the caller's other headers."""
    headers = list(base)
    inject_context(headers, trace.set_span_in_context(span))
    headers.extend(h for h in caller if h[0] not in TRACE_HEADERS)
    return headers
