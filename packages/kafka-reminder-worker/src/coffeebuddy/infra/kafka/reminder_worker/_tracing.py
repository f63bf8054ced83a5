"""Optional OpenTelemetry CLIENT spans around the sender (the Slack call), linked across the delay.

A reminder is sent minutes or hours after its `reminder.scheduled` record was handled, so the
send is not a child of that trace: it starts a new trace with a span link to the scheduling
record's `traceparent` (kept on the pending entry while tracing is on). Only built when tracing
is on; the untraced worker calls its sender directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from coffeebuddy.infra.kafka.models import TRACEPARENT_HEADER, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import extract_context
from coffeebuddy.infra.kafka.reminder_worker._sender import ReminderSender, SendResult

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

__all__ = ["TracedSender"]


class TracedSender:
    """A `ReminderSender` that wraps `send` / `find_sent` in CLIENT spans, each a new trace
    linked to the scheduling record's context (found through `lookup(reminder_id)`)."""

    def __init__(
        self,
        sender: ReminderSender,
        tracer: Tracer,
        lookup: Callable[[str], Pending | None],
    ) -> None:
        self._sender = sender
        self._tracer = tracer
        self._lookup = lookup
        self._peer = type(sender).__name__

    async def send(self, reminder: ReminderScheduledData, *, claim_time: datetime) -> SendResult:
        with self._span("reminder.send", reminder) as span:
            result = await self._sender.send(reminder, claim_time=claim_time)
            _record(span, result)
            return result

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        with self._span("reminder.find_sent", reminder) as span:
            result = await self._sender.find_sent(reminder, since=since)
            if result is None:
                span.set_attribute("coffeebuddy.reminder.outcome", "not_found")
            else:
                _record(span, result)
            return result

    async def check_auth(self) -> SendResult:
        return await self._sender.check_auth()

    def _span(self, name: str, reminder: ReminderScheduledData) -> Any:
        entry = self._lookup(reminder.reminder_id)
        links: list[trace.Link] = []
        attributes: dict[str, Any] = {
            "coffeebuddy.reminder.id": reminder.reminder_id,
            "coffeebuddy.reminder.kind": str(reminder.kind),
            "coffeebuddy.run.id": reminder.run_id,
            "coffeebuddy.reminder.due_at": reminder.due_at.isoformat(),
            "coffeebuddy.sender": self._peer,
        }
        if entry is not None:
            attributes["cloudevents.event_id"] = entry.event_id
            if entry.traceparent is not None:
                scheduled = extract_context([(TRACEPARENT_HEADER, entry.traceparent)])
                span_context = trace.get_current_span(scheduled).get_span_context()
                if span_context.is_valid:
                    links.append(trace.Link(span_context, {"coffeebuddy.link": "scheduled_by"}))
        return self._tracer.start_as_current_span(
            name,
            context=otel_context.Context(),  # a new trace: the scheduling one ended long ago
            kind=trace.SpanKind.CLIENT,
            links=links,
            attributes=attributes,
        )


def _record(span: Span, result: SendResult) -> None:
    span.set_attribute("coffeebuddy.reminder.outcome", result.outcome.value)
    if result.ok:
        if result.channel:
            span.set_attribute("coffeebuddy.slack.channel", result.channel)
        if result.ts:
            span.set_attribute("coffeebuddy.slack.ts", result.ts)
        return
    span.set_attribute("error.type", result.error or result.outcome.value)
    span.set_status(trace.Status(trace.StatusCode.ERROR, result.outcome.value))
