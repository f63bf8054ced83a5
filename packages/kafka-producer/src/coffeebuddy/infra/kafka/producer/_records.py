"""What a record is made of before it is sent: topic and event checks, key, value, headers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    ContentMode,
    check_partitionkey,
    encode_event,
    encode_record,
)
from coffeebuddy.infra.kafka.producer._errors import EventNotAllowedError, InvalidTraceparentError
from coffeebuddy.infra.kafka.topics import TopicConfig

Headers = Mapping[str, str | bytes] | Sequence[tuple[str, bytes]]

CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class RecordMetadata(NamedTuple):
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int


def validate_traceparent(value: str) -> str:
    """Return ``value`` if it is a valid W3C ``traceparent``, else raise naming the rule broken."""
    match = _TRACEPARENT.match(value)
    if match is None:
        raise InvalidTraceparentError(
            f"traceparent {value!r} is not '<2 hex version>-<32 hex trace-id>-<16 hex parent-id>-"
            "<2 hex flags>' in lower case"
        )
    version, trace_id, parent_id, _ = match.groups()
    if version == "ff":
        raise InvalidTraceparentError("traceparent version 'ff' is invalid")
    if trace_id == "0" * 32:
        raise InvalidTraceparentError("traceparent trace-id must not be all zeros")
    if parent_id == "0" * 16:
        raise InvalidTraceparentError("traceparent parent-id must not be all zeros")
    return value


def require_topic(topic: object) -> TopicConfig:
    if not isinstance(topic, TopicConfig):
        raise TypeError(
            f"topic must be a TopicConfig from coffeebuddy.infra.kafka.topics (e.g. "
            f"REMINDER_EVENTS_TOPIC), not {type(topic).__name__} {topic!r}: raw topic names "
            "bypass the event-type and key rules"
        )
    return topic


def header_list(headers: Headers | None) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, bytes]] = []
    for name, value in items:
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, got {type(name).__name__}")
        out.append((name, value.encode() if isinstance(value, str) else bytes(value)))
    return out


def encode_for_topic(
    topic: TopicConfig, event: Any, mode: ContentMode
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and CloudEvents headers of ``event`` on ``topic``, after the topic's type and key
    rules."""
    event_type = getattr(event, "type", None)
    if not topic.allows(str(event_type)):
        raise EventNotAllowedError(topic.name, str(event_type), topic.event_types)
    try:
        key_value = getattr(event.data, topic.key_field)
    except AttributeError:
        raise ValueError(
            f"event {event_type!r} has no data.{topic.key_field}, the key field of topic "
            f"{topic.name!r}"
        ) from None
    key = str(key_value).encode()
    if getattr(event, "__pydantic_extra__", None):
        check_partitionkey(event, key)
    if mode == "structured":
        return key, encode_event(event), [CONTENT_TYPE_HEADER]
    value, ce_headers = encode_record(event, mode)
    return key, value, ce_headers
