"""Optional OpenTelemetry CLIENT spans around the sender's calls (built only when tracing is on).

A reminder is sent long after its `reminder.scheduled` record was handled, so each send starts a
new trace, linked to the scheduling record's `traceparent` (kept on the pending entry)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from coffeebuddy.infra.kafka.models import TRACEPARENT_HEADER, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import extract_context
from coffeebuddy.infra.kafka.reminder_worker._sender import SendResult

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

__all__ = ["DeliveryTracer"]


class DeliveryTracer:
    """Spans `reminder.send` / `reminder.find_sent` for Delivery, which holds the entry."""

    def __init__(self, tracer: Tracer, sender_name: str) -> None:
        self._tracer = tracer
        self._peer = sender_name

    @contextmanager
    def span(self, name: str, entry: Pending, reminder: ReminderScheduledData) -> Iterator[Span]:
        links: list[trace.Link] = []
        attributes: dict[str, Any] = {
            "coffeebuddy.reminder.id": reminder.reminder_id,
            "coffeebuddy.reminder.kind": str(reminder.kind),
            "coffeebuddy.run.id": reminder.run_id,
            "coffeebuddy.reminder.due_at": reminder.due_at.isoformat(),
            "coffeebuddy.sender": self._peer,
            "cloudevents.event_id": entry.event_id,
        }
        if entry.traceparent is not None:
            scheduled = extract_context([(TRACEPARENT_HEADER, entry.traceparent)])
            span_context = trace.get_current_span(scheduled).get_span_context()
            if span_context.is_valid:
                links.append(trace.Link(span_context, {"coffeebuddy.link": "scheduled_by"}))
        with self._tracer.start_as_current_span(
            name,
            context=otel_context.Context(),  # a new trace: the scheduling one ended long ago
            kind=trace.SpanKind.CLIENT,
            links=links,
            attributes=attributes,
        ) as span:
            yield span

    @staticmethod
    def record(span: Span, result: SendResult | None) -> None:
        if result is None:
            span.set_attribute("coffeebuddy.reminder.outcome", "not_found")
            return
        span.set_attribute("coffeebuddy.reminder.outcome", result.outcome.value)
        if result.ok:
            if result.channel:
                span.set_attribute("coffeebuddy.slack.channel", result.channel)
            if result.ts:
                span.set_attribute("coffeebuddy.slack.ts", result.ts)
            return
        span.set_attribute("error.type", result.error or result.outcome.value)
        span.set_status(trace.Status(trace.StatusCode.ERROR, result.outcome.value))
