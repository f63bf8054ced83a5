"""Optional OpenTelemetry CONSUMER spans: `process <topic>` around each handler call.

Only built when tracing is on (`resolve_tracer` from the producer package decides): the
harness then wraps its handler once, so an untraced harness runs exactly the old path.
The span continues the trace of the record's W3C `traceparent` header and is current while the
handler runs, so spans the handler starts (and records it publishes) join the same trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from coffeebuddy.infra.kafka.producer import extract_context

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from coffeebuddy.infra.kafka.consumer._context import RecordContext
    from coffeebuddy.infra.kafka.consumer._types import Handler
    from coffeebuddy.infra.kafka.models import Event

__all__ = ["decode_failed", "traced_handler"]


def _attributes(group: str, topic: str, partition: int, offset: int, key: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
        "messaging.consumer.group.name": group,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = bytes(key).decode("utf-8", "replace")
    return attributes


def traced_handler(handler: Handler, tracer: Tracer, group: str) -> Handler:
    """`handler` inside a CONSUMER span per call (each retry attempt is its own span)."""

    async def handle(event: Event, ctx: RecordContext) -> None:
        attributes = _attributes(group, ctx.topic, ctx.partition, ctx.offset, ctx.key)
        attributes["messaging.message.id"] = event.id
        attributes["cloudevents.event_type"] = event.type
        attributes["coffeebuddy.attempt"] = ctx.attempt
        span = tracer.start_span(
            f"process {ctx.topic}",
            context=extract_context(ctx.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        # attach/detach by hand: the same as start_as_current_span, a few µs cheaper per record
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await handler(event, ctx)
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        else:
            if ctx.is_deferred:
                span.set_attribute("coffeebuddy.deferred", True)
        finally:
            otel_context.detach(token)
            span.end()

    return handle


def decode_failed(tracer: Tracer, group: str, record: Any, error: Any) -> None:
    """A finished error span for a record that could not be decoded (it goes to the DLQ)."""
    attributes = _attributes(group, record.topic, record.partition, record.offset, record.key)
    attributes["error.type"] = type(error).__name__
    attributes["coffeebuddy.decode.reason"] = str(getattr(error, "reason", ""))
    span = tracer.start_span(
        f"process {record.topic}",
        context=extract_context(record.headers),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    )
    span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
    span.end()
