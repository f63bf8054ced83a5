"""Delivery's spans: CLIENT spans in a new trace, linked to the scheduling record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from coffeebuddy.infra.kafka.models import ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker import SendResult
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._tracing import DeliveryTracer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
DUE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _reminder(rid: str) -> ReminderScheduledData:
    return ReminderScheduledData(
        reminder_id=rid,
        kind="last_call",
        run_id="run-1",
        team_id="T1",
        channel_id="C1",
        recipient_user_id="U1",
        due_at=DUE,
        place="Cafe",
    )


def _entry(rid: str, traceparent: bytes | None) -> Pending:
    entry = Pending(rid, "run-1", "last_call", 0.0, 1.0, 2.0, b"{}", "evt-1", 0.0, 0)
    entry.traceparent = traceparent
    return entry


async def test_sends_are_client_spans_linked_to_the_scheduling_record() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = DeliveryTracer(provider.get_tracer("t"), "Scripted")
    calls = [
        (
            "reminder.send",
            _entry("r-1", f"00-{TRACE_ID}-{SPAN_ID}-01".encode()),
            SendResult.sent("D1", "1.000100"),
        ),
        ("reminder.send", _entry("r-2", None), SendResult.rate_limited(3.0)),
        ("reminder.find_sent", _entry("r-3", b"garbage"), None),
    ]
    current: list[Any] = []
    outer = provider.get_tracer("t").start_span("unrelated current work")
    with trace.use_span(outer, end_on_exit=True):  # must not become the parent
        for name, entry, result in calls:
            with tracer.span(name, entry, _reminder(entry.reminder_id)) as span:
                current.append(trace.get_current_span().get_span_context())
                tracer.record(span, result)
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("reminder.")]
    sent, limited, found = spans
    for span in spans:
        assert span.kind is trace.SpanKind.CLIENT
        assert span.parent is None  # a new trace each time
    assert [f"{link.context.trace_id:032x}" for link in sent.links] == [TRACE_ID]
    assert f"{sent.links[0].context.span_id:016x}" == SPAN_ID
    assert current[0].span_id == sent.context.span_id  # current while the sender runs
    assert sent.attributes["coffeebuddy.slack.ts"] == "1.000100"
    assert sent.attributes["cloudevents.event_id"] == "evt-1"
    assert sent.attributes["coffeebuddy.reminder.kind"] == "last_call"
    assert sent.attributes["coffeebuddy.sender"] == "Scripted"
    assert limited.links == ()
    assert limited.status.status_code is trace.StatusCode.ERROR
    assert limited.attributes["coffeebuddy.reminder.outcome"] == "rate_limited"
    assert found.name == "reminder.find_sent"
    assert found.links == ()  # an unparsable traceparent gives no link, no error
    assert found.attributes["coffeebuddy.reminder.outcome"] == "not_found"


async def test_a_traced_worker_links_the_send_to_its_scheduling_record(kit: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    h = await kit.Harness(tracing=True, tracer_provider=provider).start()
    traceparent = f"00-{TRACE_ID}-{SPAN_ID}-01".encode()
    await h.feed(kit.scheduled(due_in=0), headers=[("traceparent", traceparent)])
    await h.run()
    assert [rid for rid, _ in h.sender.sent] == ["rem-1"]
    [span] = [s for s in exporter.get_finished_spans() if s.name == "reminder.send"]
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [TRACE_ID]
    assert span.attributes is not None
    assert span.attributes["coffeebuddy.reminder.id"] == "rem-1"
    assert span.attributes["coffeebuddy.reminder.outcome"] == "sent"
