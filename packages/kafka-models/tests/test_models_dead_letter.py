"""The dead-letter header contract: what the harness writes is what the replay tool reads."""

from __future__ import annotations

from datetime import UTC, datetime

from coffeebuddy.infra.kafka.models import (
    DLQ_HEADER_PREFIX,
    DLQ_HEADERS,
    DLQ_ORIGIN_OFFSET,
    DLQ_REPLAYED_FROM,
    dead_letter_headers,
    parse_dead_letter_headers,
    replay_headers,
)
from coffeebuddy.infra.kafka.models._dead_letter import DLQ_ERROR_MESSAGE, DLQ_MAX_ERROR_MESSAGE

FIRST_SEEN = datetime(2026, 12, 1, 8, 30, 0, 250000, tzinfo=UTC)


def _build(**overrides: object) -> list[tuple[str, bytes]]:
    fields: dict[str, object] = {
        "topic": "coffeebuddy.run.events",
        "partition": 3,
        "offset": 41,
        "key": b"run-1",
        "error": ValueError("data.run_id: field required"),
        "reason": "invalid_event",
        "attempts": 2,
        "first_seen": FIRST_SEEN.timestamp(),
        "original_headers": [("content-type", b"application/cloudevents+json")],
    }
    fields.update(overrides)
    return dead_letter_headers(**fields)  # type: ignore[arg-type]


def test_round_trip_reads_back_every_field_and_keeps_original_headers() -> None:
    parsed = parse_dead_letter_headers(_build())
    assert parsed.origin_topic == "coffeebuddy.run.events"
    assert (parsed.origin_partition, parsed.origin_offset) == (3, 41)
    assert parsed.origin_key == b"run-1"
    assert parsed.error_type == "ValueError"
    assert parsed.error_message == "data.run_id: field required"
    assert parsed.reason == "invalid_event"
    assert parsed.attempts == 2
    assert parsed.first_seen == FIRST_SEEN
    assert parsed.replayed_from is None
    assert parsed.original == (("content-type", b"application/cloudevents+json"),)


def test_headers_are_written_in_contract_order_before_the_original_ones() -> None:
    names = [name for name, _ in _build()]
    assert names[: len(DLQ_HEADERS)] == list(DLQ_HEADERS)
    assert names[len(DLQ_HEADERS) :] == ["content-type"]


def test_a_dead_letter_of_a_dead_letter_carries_only_the_newest_cause() -> None:
    first = _build()
    second = _build(offset=99, original_headers=first)
    assert [n for n, _ in second].count(DLQ_ORIGIN_OFFSET) == 1
    assert parse_dead_letter_headers(second).origin_offset == 99


def test_long_error_messages_are_cut() -> None:
    headers = dict(_build(error=RuntimeError("x" * (DLQ_MAX_ERROR_MESSAGE + 500))))
    assert len(headers[DLQ_ERROR_MESSAGE]) == DLQ_MAX_ERROR_MESSAGE + 3


def test_foreign_or_damaged_headers_read_as_absent_not_as_errors() -> None:
    parsed = parse_dead_letter_headers(
        [
            (DLQ_HEADER_PREFIX + "origin.partition", b"three"),
            (DLQ_HEADER_PREFIX + "first_seen", b"yesterday"),
            ("traceparent", b"00-abc"),
        ]
    )
    assert parsed.origin_partition is None
    assert parsed.first_seen is None
    assert parsed.origin_topic is None
    assert parsed.error_type == ""
    assert parsed.original == (("traceparent", b"00-abc"),)


def test_replay_headers_drop_the_cause_and_name_the_dead_letter() -> None:
    replayed = replay_headers(_build(), "coffeebuddy.run.events.dlq/0/7")
    assert [n for n, _ in replayed] == ["content-type", DLQ_REPLAYED_FROM]
    assert dict(replayed)[DLQ_REPLAYED_FROM] == b"coffeebuddy.run.events.dlq/0/7"
