"""CloudEvents Kafka protocol binding: structured and binary content mode, chosen per record.

Structured: the whole event is JSON in the value, `content-type: application/cloudevents+json`.
Binary: each attribute is a `ce_<name>` header (UTF-8), `content-type` is the data's media type
and the value is the data itself. Both end in the same validation (`_codec`), so a record gets
the same field rules and the same `EventDecodeError` in either mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final, Literal

from pydantic import ValidationError
from pydantic_core import from_json

from coffeebuddy.infra.kafka.models._codec import (
    _ADAPTER,
    CONTENT_TYPE,
    EventDecodeError,
    FieldError,
    _decode_error,
    encode_event,
)
from coffeebuddy.infra.kafka.models._events import (
    _EXTENSION_NAME,
    CORE_ATTRIBUTES,
    CloudEvent,
    Event,
    check_extensions,
)

ContentMode = Literal["structured", "binary"]
CONTENT_MODES: Final[tuple[ContentMode, ...]] = ("structured", "binary")

CONTENT_TYPE_HEADER: Final = "content-type"
"""Kafka header naming the media type: of the event (structured) or of its data (binary)."""
CE_HEADER_PREFIX: Final = "ce_"
"""Binary mode: attribute `id` travels in header `ce_id`, extension `partitionkey` in
`ce_partitionkey`."""
TRACEPARENT_HEADER: Final = "traceparent"
"""W3C Trace Context header carrying the trace of a record (both modes; not an attribute)."""
TRACESTATE_HEADER: Final = "tracestate"
"""W3C Trace Context vendor state, next to `traceparent`."""
PARTITIONKEY: Final = "partitionkey"
"""The Partitioning extension: an attribute equal to the record key when present."""
DATA_CONTENT_TYPE: Final = "application/json"
"""The media type of every CoffeeBuddy event's data (binary mode `content-type`)."""

Headers = Iterable[tuple[str, bytes | None]]

_STRUCTURED_PREFIX = b"application/cloudevents"
_STRUCTURED_VALUE = CONTENT_TYPE.encode()
_STRUCTURED_HEADERS: Final = ((CONTENT_TYPE_HEADER, CONTENT_TYPE.encode()),)
_HEADER_ATTRIBUTES: Final = ("specversion", "id", "source", "type", "subject", "time")
_NOT_HEADERS: Final = frozenset({"data", "data_base64", "datacontenttype"})


def content_mode(headers: Headers | None) -> ContentMode:
    """The record's content mode from its headers, as the binding says: a `content-type`
    starting with `application/cloudevents` (any case) is structured; otherwise `ce_*`
    headers mean binary; a record with neither is read as structured (our older records)."""
    return "binary" if headers and _is_binary(headers) else "structured"


def _is_binary(headers: Headers) -> bool:
    # Per record on the consumer's hot path: exact matches first, case folding only if needed.
    binary = False
    for name, value in headers:
        if name == CONTENT_TYPE_HEADER or (len(name) == 12 and name.lower() == CONTENT_TYPE_HEADER):
            if value is not None and (
                value == _STRUCTURED_VALUE or value[:23].lower() == _STRUCTURED_PREFIX
            ):
                return False
        elif name[:3].lower() == CE_HEADER_PREFIX:
            binary = True
    return binary


def decode_record(
    value: bytes | bytearray | None,
    headers: Headers | None = None,
    *,
    key: bytes | None = None,
) -> Event:
    """Decode one Kafka record in whichever content mode its headers name; raises
    `EventDecodeError` (binary-mode attribute errors name the header, e.g. `ce_id`).

    `key=` opts into the binding's receive-side key mapping: the record key becomes the
    `partitionkey` extension of an event that carries none (as the CloudEvents SDKs do).
    """
    if headers and _is_binary(headers):
        event = _decode_binary(value, headers)
    else:
        raw = value if value is not None else b""
        try:  # decode_event, inlined: this is the consumer's per-record path
            event = _ADAPTER.validate_json(raw)
        except ValidationError as exc:
            raise _decode_error(exc, raw) from None
    if key is not None and PARTITIONKEY not in (event.__pydantic_extra__ or {}):
        return event.model_copy(update={PARTITIONKEY: bytes(key).decode("utf-8", "replace")})
    return event


def check_partitionkey(event: CloudEvent[Any], key: bytes | None) -> None:
    """Refuse an event whose `partitionkey` extension differs from the record key it is sent
    with: the binding keeps the attribute and the key in step, and our key is the topic's
    key field (`ValueError` naming both)."""
    extra = event.__pydantic_extra__
    if extra and PARTITIONKEY in extra:
        wanted = str(extra[PARTITIONKEY])
        if key is None or wanted.encode() != key:
            shown = key.decode("utf-8", "replace") if key is not None else None
            raise ValueError(
                f"event {event.id!r}: partitionkey extension {wanted!r} differs from the record "
                f"key {shown!r} (the topic's key field); drop the extension or make them equal"
            )


def encode_record(
    event: CloudEvent[Any], mode: ContentMode = "structured"
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Record value and CloudEvents headers of `event` in `mode` (structured: the JSON event
    and `content-type: CONTENT_TYPE`; binary: the data JSON, `content-type:
    application/json` and one `ce_<name>` header per attribute and extension)."""
    if mode == "structured":
        return encode_event(event), list(_STRUCTURED_HEADERS)
    if mode != "binary":
        raise ValueError(f"content mode must be one of {CONTENT_MODES}, got {mode!r}")
    attrs = event.model_dump(mode="json", exclude_none=True, exclude={"data", "datacontenttype"})
    headers = [(CONTENT_TYPE_HEADER, event.datacontenttype.encode())]
    for name in _HEADER_ATTRIBUTES:
        attr = attrs.pop(name, None)
        if attr is not None:
            headers.append((CE_HEADER_PREFIX + name, str(attr).encode()))
    schema = attrs.pop("dataschema", None)  # optional core attribute, kept as an extra
    if isinstance(schema, str):
        headers.append((CE_HEADER_PREFIX + "dataschema", schema.encode()))
    for name, ext in check_extensions(attrs).items():
        text = ("true" if ext else "false") if isinstance(ext, bool) else str(ext)
        headers.append((CE_HEADER_PREFIX + name, text.encode()))
    data = event.data
    return data.__pydantic_serializer__.to_json(data, exclude_none=True), headers


def _decode_binary(value: bytes | bytearray | None, headers: Headers) -> Event:
    attrs: dict[str, str] = {}
    problems: list[FieldError] = []
    content_type: str | None = None
    for name, raw in headers:
        lname = name.lower()
        is_ct = lname == CONTENT_TYPE_HEADER
        if not is_ct and not lname.startswith(CE_HEADER_PREFIX):
            continue  # traceparent, coffeebuddy.dlq.*, ...: not CloudEvents attributes
        try:
            text = bytes(raw or b"").decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"header value is not valid UTF-8 (byte {err.start})"
            raise EventDecodeError("invalid_utf8", [FieldError(name, "utf8", message)]) from None
        if is_ct:
            content_type = text
            continue
        attr = lname[len(CE_HEADER_PREFIX) :]
        if attr in attrs:
            problems.append(FieldError(name, "duplicate", "header appears more than once"))
        elif attr in _NOT_HEADERS:
            message = "not a binary-mode header (data is the value, its type is content-type)"
            problems.append(FieldError(name, "attribute_name", message))
        elif not _EXTENSION_NAME.match(attr) and attr not in CORE_ATTRIBUTES:
            message = "attribute names are lower-case letters or digits only"
            problems.append(FieldError(name, "attribute_name", message))
        else:
            attrs[attr] = text
    if problems:
        raise EventDecodeError("validation", problems, attrs.get("type"))
    if content_type is not None:
        attrs["datacontenttype"] = content_type
    doc = json.dumps(attrs, ensure_ascii=False, separators=(",", ":")).encode()
    if value is not None:
        _check_json(value)
        doc = b"".join((doc[:-1], b',"data":' if attrs else b'"data":', bytes(value), b"}"))
    try:
        return _ADAPTER.validate_json(doc)
    except ValidationError as exc:
        error = _decode_error(exc, doc)
    raise EventDecodeError(
        error.reason, [_as_header(e) for e in error.errors], error.event_type
    ) from None


def _check_json(value: bytes | bytearray) -> None:
    """The value must be one JSON document before it is placed into the envelope."""
    try:
        from_json(value)
    except ValueError:
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"record value is not valid UTF-8 (byte {err.start})"
            raise EventDecodeError("invalid_utf8", [FieldError("data", "utf8", message)]) from None
        message = "record value is not valid JSON (content-type application/json)"
        raise EventDecodeError("invalid_json", [FieldError("data", "json", message)]) from None


def _as_header(error: FieldError) -> FieldError:
    field = error.field
    top = field.split(".", 1)[0]
    if not field or top == "data":
        return error
    header = CONTENT_TYPE_HEADER if top == "datacontenttype" else CE_HEADER_PREFIX + field
    return FieldError(header, error.rule, error.message)
