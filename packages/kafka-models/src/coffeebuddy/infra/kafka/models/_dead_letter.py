"""The dead-letter record contract: `coffeebuddy.dlq.*` header names, the builder, the parser.

The consumer harness writes dead letters through `dead_letter_headers`; the inspect/replay tool
reads them through `parse_dead_letter_headers` and re-publishes with `replay_headers`. A dead
letter keeps the original value, key and headers (so its content mode too); the contract only
adds, and on replay removes, the `coffeebuddy.dlq.*` headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

Headers = Iterable[tuple[str, bytes]]

DLQ_HEADER_PREFIX: Final = "coffeebuddy.dlq."
DLQ_ORIGIN_TOPIC: Final = DLQ_HEADER_PREFIX + "origin.topic"
DLQ_ORIGIN_PARTITION: Final = DLQ_HEADER_PREFIX + "origin.partition"
DLQ_ORIGIN_OFFSET: Final = DLQ_HEADER_PREFIX + "origin.offset"
DLQ_ORIGIN_KEY: Final = DLQ_HEADER_PREFIX + "origin.key"
DLQ_ERROR_TYPE: Final = DLQ_HEADER_PREFIX + "error.type"
DLQ_ERROR_MESSAGE: Final = DLQ_HEADER_PREFIX + "error.message"
DLQ_REASON: Final = DLQ_HEADER_PREFIX + "reason"
DLQ_ATTEMPTS: Final = DLQ_HEADER_PREFIX + "attempts"
DLQ_FIRST_SEEN: Final = DLQ_HEADER_PREFIX + "first_seen"
#: Set on a replayed record: `<dlq topic>/<partition>/<offset>` of the dead letter it came from.
DLQ_REPLAYED_FROM: Final = DLQ_HEADER_PREFIX + "replayed_from"
#: The headers `dead_letter_headers` writes, in the order it writes them.
DLQ_HEADERS: Final = (
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_KEY,
    DLQ_ERROR_TYPE,
    DLQ_ERROR_MESSAGE,
    DLQ_REASON,
    DLQ_ATTEMPTS,
    DLQ_FIRST_SEEN,
)
#: Longer error messages are cut here (with "..."): a header is no place for a traceback.
DLQ_MAX_ERROR_MESSAGE: Final = 2000


@dataclass(frozen=True, slots=True)
class DeadLetterHeaders:
    """What the `coffeebuddy.dlq.*` headers of one dead letter say; None where one is absent
    or unreadable (records written by older or foreign tools), so a reader never fails on them.
    """

    origin_topic: str | None
    origin_partition: int | None
    origin_offset: int | None
    origin_key: bytes | None
    error_type: str
    error_message: str
    reason: str
    attempts: int | None
    first_seen: datetime | None
    replayed_from: str | None
    #: The record's other headers, in order: what a replay puts back.
    original: tuple[tuple[str, bytes], ...]


def _rfc3339(epoch_seconds: float) -> str:
    stamp = datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def dead_letter_headers(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    error: BaseException,
    reason: str,
    attempts: int,
    first_seen: float,
    original_headers: Headers | None,
) -> list[tuple[str, bytes]]:
    """The headers of the dead letter for record `topic[partition]@offset` that failed with
    `error` after `attempts` tries (first seen at epoch seconds `first_seen`): ours first, then
    the record's own headers without any older `coffeebuddy.dlq.*` ones."""
    message = str(error)
    if len(message) > DLQ_MAX_ERROR_MESSAGE:
        message = message[:DLQ_MAX_ERROR_MESSAGE] + "..."
    headers: list[tuple[str, bytes]] = [
        (DLQ_ORIGIN_TOPIC, topic.encode()),
        (DLQ_ORIGIN_PARTITION, str(partition).encode()),
        (DLQ_ORIGIN_OFFSET, str(offset).encode()),
        (DLQ_ORIGIN_KEY, key if key is not None else b""),
        (DLQ_ERROR_TYPE, type(error).__name__.encode()),
        (DLQ_ERROR_MESSAGE, message.encode("utf-8", "replace")),
        (DLQ_REASON, reason.encode()),
        (DLQ_ATTEMPTS, str(attempts).encode()),
        (DLQ_FIRST_SEEN, _rfc3339(first_seen).encode()),
    ]
    headers.extend(
        (name, value) for name, value in (original_headers or ()) if name not in DLQ_HEADERS
    )
    return headers


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _int(value: bytes | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _time(value: bytes | None) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_dead_letter_headers(headers: Headers | None) -> DeadLetterHeaders:
    """Read a dead letter's headers (the last value of a repeated header wins)."""
    ours: dict[str, bytes] = {}
    original: list[tuple[str, bytes]] = []
    for name, value in headers or ():
        if name.startswith(DLQ_HEADER_PREFIX):
            ours[name] = value
        else:
            original.append((name, value))
    return DeadLetterHeaders(
        origin_topic=_text(ours.get(DLQ_ORIGIN_TOPIC)),
        origin_partition=_int(ours.get(DLQ_ORIGIN_PARTITION)),
        origin_offset=_int(ours.get(DLQ_ORIGIN_OFFSET)),
        origin_key=ours.get(DLQ_ORIGIN_KEY),
        error_type=_text(ours.get(DLQ_ERROR_TYPE)) or "",
        error_message=_text(ours.get(DLQ_ERROR_MESSAGE)) or "",
        reason=_text(ours.get(DLQ_REASON)) or "",
        attempts=_int(ours.get(DLQ_ATTEMPTS)),
        first_seen=_time(ours.get(DLQ_FIRST_SEEN)),
        replayed_from=_text(ours.get(DLQ_REPLAYED_FROM)),
        original=tuple(original),
    )


def replay_headers(headers: Headers | None, ref: str) -> list[tuple[str, bytes]]:
    """The headers a replayed record carries: the original ones (no `coffeebuddy.dlq.*`) plus
    `replayed_from: ref`, where `ref` is `<dlq topic>/<partition>/<offset>`."""
    kept = [(k, v) for k, v in headers or () if not k.startswith(DLQ_HEADER_PREFIX)]
    return [*kept, (DLQ_REPLAYED_FROM, ref.encode())]
