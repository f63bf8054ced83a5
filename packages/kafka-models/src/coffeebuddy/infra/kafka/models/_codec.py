"""Structured-mode JSON wire format: one validate_json call per record, field-level errors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from coffeebuddy.infra.kafka.models._errors import ModelError
from coffeebuddy.infra.kafka.models._events import EVENT_TYPES, CloudEvent, Event
from coffeebuddy.infra.kafka.models._fields import PATTERN_MESSAGES

CONTENT_TYPE: Final = "application/cloudevents+json; charset=utf-8"
"""Kafka `content-type` header value for structured-mode CloudEvents."""

DecodeReason = Literal[
    "invalid_utf8", "invalid_json", "not_an_object", "unknown_type", "validation"
]
DECODE_REASONS: Final[tuple[DecodeReason, ...]] = (
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "unknown_type",
    "validation",
)

_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event)
_MAX_LISTED = 5


@dataclass(frozen=True)
class FieldError:
    """One problem: dotted field path (`data.due_at`; empty: whole payload), rule, text."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class EventDecodeError(ModelError, ValueError):
    """The bytes are not a valid CoffeeBuddy event; `.reason` is a bounded label for metrics."""

    def __init__(
        self, reason: DecodeReason, errors: list[FieldError], event_type: str | None = None
    ) -> None:
        self.reason: DecodeReason = reason
        self.errors: list[FieldError] = errors
        self.event_type = event_type
        shown = "; ".join(str(e) for e in errors[:_MAX_LISTED])
        more = len(errors) - _MAX_LISTED
        suffix = f" (and {more} more)" if more > 0 else ""
        prefix = f"{event_type}: " if event_type else ""
        super().__init__(f"{prefix}{shown}{suffix}")


def decode_event(raw: bytes | bytearray) -> Event:
    """Parse and validate one record value; raises `EventDecodeError` naming field and rule."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _decode_error(exc, raw) from None


def decode_events(raws: Iterable[bytes | bytearray]) -> list[Event | EventDecodeError]:
    """Decode a batch; a bad record yields its `EventDecodeError` in place instead of raising."""
    out: list[Event | EventDecodeError] = []
    validate = _ADAPTER.validate_json
    for raw in raws:
        try:
            out.append(validate(raw))
        except ValidationError as exc:
            out.append(_decode_error(exc, raw))
    return out


def encode_event(event: CloudEvent[Any]) -> bytes:
    """Compact UTF-8 JSON of `event` (unset optional fields omitted)."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def _decode_error(exc: ValidationError, raw: bytes | bytearray) -> EventDecodeError:
    details = exc.errors(include_url=False, include_input=False)
    first = details[0]
    kind = first["type"]
    if kind == "json_invalid":
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"payload is not valid UTF-8 (byte {err.start})"
            return EventDecodeError("invalid_utf8", [FieldError("", "utf8", message)])
        ctx = first.get("ctx") or {}
        message = f"payload is not valid JSON ({ctx.get('error', 'parse error')})"
        return EventDecodeError("invalid_json", [FieldError("", "json", message)])
    if not first["loc"] and kind in {"model_attributes_type", "model_type", "dict_type"}:
        message = "payload must be a JSON object"
        return EventDecodeError("not_an_object", [FieldError("", "object", message)])
    if kind == "union_tag_invalid":
        ctx = first.get("ctx") or {}
        message = f"unknown event type {ctx.get('tag')!r} (expected one of {sorted(EVENT_TYPES)})"
        return EventDecodeError("unknown_type", [FieldError("type", "unknown_type", message)])
    event_type = None
    errors: list[FieldError] = []
    for detail in details:
        loc = list(detail["loc"])
        if loc and loc[0] in EVENT_TYPES:
            event_type = str(loc.pop(0))
        ctx = detail.get("ctx") or {}
        if "field" in ctx:
            loc.append(ctx["field"])
        field = ".".join(str(p) for p in loc)
        if detail["type"] == "union_tag_not_found":
            field = "type"
        errors.append(FieldError(field, detail["type"], _message(detail)))
    return EventDecodeError("validation", errors, event_type)


def _message(detail: ErrorDetails) -> str:
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if kind in {"missing", "union_tag_not_found"}:
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return PATTERN_MESSAGES.get(pattern, f"must match {pattern}")
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in {"datetime_type", "datetime_parsing", "datetime_from_date_parsing"}:
        return "must be an RFC 3339 timestamp string, e.g. 2026-01-05T09:30:00Z"
    if kind == "timezone_aware":
        return "must be timezone-aware (RFC 3339 with an offset, e.g. 2026-01-05T09:30:00Z)"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    if kind == "extra_forbidden":
        return "unknown field"
    msg = detail["msg"]
    return msg[:1].lower() + msg[1:]
