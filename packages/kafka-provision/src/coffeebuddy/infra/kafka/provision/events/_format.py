"""How `events tail` shows a record: one readable line, or one JSON object for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from coffeebuddy.infra.kafka.models import (
    DLQ_REPLAYED,
    REMINDER_CANCELLED,
    REMINDER_SCHEDULED,
    REMINDER_STATE,
    RUN_CANCELLED,
    RUN_CLOSED,
    RUN_CREATED,
    RUN_ORDER_ADDED,
    RUN_RUNNER_ASSIGNED,
    Event,
    encode_event,
)
from coffeebuddy.infra.kafka.provision.events._samples import short_name
from coffeebuddy.infra.kafka.provision.events._tail import TailedRecord

_MAX_TEXT = 200


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", errors="replace")


def _clip(text: str, width: int = _MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _clock(moment: Any) -> str:
    if not isinstance(moment, datetime):
        return str(moment)
    return moment.astimezone(UTC).strftime("%H:%M:%S UTC")


def _with_reason(text: str, reason: Any) -> str:
    return f"{text} ({reason})" if reason else text


_SUMMARIES: Mapping[str, Callable[[Any], str]] = {
    RUN_CREATED: lambda d: (
        f"run {d.run_id} at {d.place} by {d.organizer_user_id}, closes {_clock(d.closes_at)}"
    ),
    RUN_ORDER_ADDED: lambda d: f"{d.user_id} orders {d.item}",
    RUN_RUNNER_ASSIGNED: lambda d: f"runner {d.runner_user_id}",
    RUN_CLOSED: lambda d: f"closed at {_clock(d.closed_at)}",
    RUN_CANCELLED: lambda d: _with_reason("run cancelled", d.reason),
    REMINDER_SCHEDULED: lambda d: (
        f"{d.kind} reminder {d.reminder_id} for {d.recipient_user_id}, due {_clock(d.due_at)}"
    ),
    REMINDER_CANCELLED: lambda d: _with_reason(f"cancel reminder {d.reminder_id}", d.reason),
    REMINDER_STATE: lambda d: _with_reason(f"{d.state_key}: {d.status}", d.reason),
    DLQ_REPLAYED: lambda d: (
        f"replayed {d.ref} -> {d.origin_topic}[{d.target_partition}]@{d.target_offset}"
    ),
}


def describe_event(event: Event) -> str:
    """`reminder.scheduled last_call reminder r1 for U1, due 09:00:00 UTC`, or the data JSON."""
    summary = _SUMMARIES.get(event.type)
    if summary is not None:
        text = summary(event.data)
    else:
        text = json.dumps(event.data.model_dump(mode="json", exclude_none=True))
    return f"{short_name(event.type)}  {_clip(text)}"


def record_line(record: TailedRecord) -> str:
    """One line: time, partition@offset, key, then what the record is."""
    stamp = record.timestamp.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    head = f"{stamp}  [{record.partition}]@{record.offset}  key={_text(record.key) or '-'}"
    if record.kind == "tombstone":
        return f"{head}  tombstone"
    parts: list[str] = []
    letter = record.dead_letter
    if letter is not None:
        origin = f"{letter.origin_topic}[{letter.origin_partition}]@{letter.origin_offset}"
        error = f"{letter.error_type.rsplit('.', 1)[-1]}: {letter.error_message}"
        parts.append(f"DEAD LETTER {letter.reason} from {origin}: {_clip(error)}  |")
    if record.event is not None:
        parts.append(describe_event(record.event))
        if record.mode == "binary":
            parts.append("(binary)")
    elif letter is None:
        size = len(record.value or b"")
        parts.append(f"UNDECODABLE ({size} bytes): {_clip(record.error or 'no reason given')}")
    else:
        parts.append(f"original value undecodable: {_clip(record.error or '')}")
    return f"{head}  {' '.join(parts)}"


def record_json(record: TailedRecord) -> dict[str, Any]:
    """The record for scripts: position, key, mode, and the event, error or dead-letter facts."""
    body: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp.isoformat().replace("+00:00", "Z"),
        "key": None if record.key is None else _text(record.key),
        "kind": record.kind,
        "mode": record.mode,
    }
    if record.event is not None:
        body["event"] = json.loads(encode_event(record.event))
    if record.error is not None:
        body["error"] = {"reason": record.error_reason, "message": record.error}
        body["value"] = _text(record.value)
    letter = record.dead_letter
    if letter is not None:
        body["dead_letter"] = {
            "reason": letter.reason,
            "error_type": letter.error_type,
            "error_message": letter.error_message,
            "origin_topic": letter.origin_topic,
            "origin_partition": letter.origin_partition,
            "origin_offset": letter.origin_offset,
            "attempts": letter.attempts,
        }
    return body
