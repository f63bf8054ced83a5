"""`DeadLetter`: one record of a dead-letter topic, read through the models' dead-letter contract.

Every dead-letter header is read by `parse_dead_letter_headers` and a replay's headers come from
`replay_headers` (both in `coffeebuddy.infra.kafka.models`), so this module never spells a
header name: the harness that writes dead letters and this reader share one definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from coffeebuddy.infra.kafka.models import (
    CE_HEADER_PREFIX,
    DeadLetterHeaders,
    content_mode,
    parse_dead_letter_headers,
    replay_headers,
)


def text_of(raw: bytes | None) -> str | None:
    """Bytes as text for display and matching (undecodable bytes replaced)."""
    return None if raw is None else raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic; its dead-letter headers are decoded on first use."""

    dlq_topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @cached_property
    def dead_letter(self) -> DeadLetterHeaders:
        """What the dead-letter headers say (the models' parser; absent fields are None)."""
        return parse_dead_letter_headers(self.headers)

    @property
    def ref(self) -> str:
        """`<dlq topic>/<partition>/<offset>`: what a replayed record's `replayed_from` carries."""
        return f"{self.dlq_topic}/{self.partition}/{self.offset}"

    @property
    def ledger_key(self) -> str:
        """`ref@<timestamp ms>`: keeps a recreated DLQ topic's reused offsets apart."""
        return f"{self.ref}@{int(self.timestamp.timestamp() * 1000)}"

    @property
    def origin_topic(self) -> str | None:
        return self.dead_letter.origin_topic

    @property
    def origin_partition(self) -> int | None:
        return self.dead_letter.origin_partition

    @property
    def origin_offset(self) -> int | None:
        return self.dead_letter.origin_offset

    @property
    def origin_key(self) -> bytes | None:
        """The original record key: the contract's origin key, else the dead letter's own key."""
        found = self.dead_letter.origin_key
        return self.key if found is None else found

    @property
    def error_type(self) -> str:
        return self.dead_letter.error_type

    @property
    def error_message(self) -> str:
        return self.dead_letter.error_message

    @property
    def reason(self) -> str:
        return self.dead_letter.reason

    @property
    def attempts(self) -> int | None:
        return self.dead_letter.attempts

    @property
    def first_seen(self) -> datetime | None:
        return self.dead_letter.first_seen

    @cached_property
    def event(self) -> Mapping[str, Any] | None:
        """The value as a JSON object (a CloudEvent, or binary-mode data), else None."""
        try:
            data = json.loads(self.value)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def binary(self) -> bool:
        """True for a CloudEvents binary-mode record (attributes in `ce_*` headers, the value
        is the data); dead letters keep the original record's mode."""
        return content_mode(self.headers) == "binary"

    @property
    def run_id(self) -> str | None:
        event = self.event
        data = event if self.binary else (event.get("data") if event else None)
        run_id = data.get("run_id") if isinstance(data, dict) else None
        return str(run_id) if run_id is not None else None

    @property
    def event_type(self) -> str | None:
        if self.binary:  # the type is the ce_type header (names are case-insensitive)
            found = [v for k, v in self.headers if k.lower() == CE_HEADER_PREFIX + "type"]
            return text_of(found[-1]) if found else None
        event = self.event
        kind = event.get("type") if event else None
        return str(kind) if kind is not None else None

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (no dead-letter ones) plus `replayed_from: ref`."""
        return replay_headers(self.headers, self.ref)

    def age(self, now: datetime | None = None) -> timedelta:
        """Time since the record was dead-lettered (its timestamp in the DLQ)."""
        return (now or datetime.now(UTC)) - self.timestamp

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "partition": self.partition,
            "offset": self.offset,
            "ref": self.ref,
            "timestamp": self.timestamp.isoformat(),
            "age_seconds": round(self.age(now).total_seconds(), 3),
            "origin_topic": self.origin_topic,
            "origin_partition": self.origin_partition,
            "origin_offset": self.origin_offset,
            "key": text_of(self.origin_key),
            "run_id": self.run_id,
            "event_type": self.event_type,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "reason": self.reason,
            "attempts": self.attempts,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "value_bytes": len(self.value),
        }
