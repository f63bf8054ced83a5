"""`DeadLetterFilter`: which dead letters an inspect or replay selects; durations for its ages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from coffeebuddy.infra.kafka.provision.dlq._errors import DlqError
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter, text_of

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d`, `1h30m` -> timedelta; DlqError naming the value otherwise."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise DlqError(f"duration {text!r}: use a number with s, m, h, d or w, e.g. 30m or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to select; every given criterion must match."""

    origin_topic: str | None = None
    error_type: str | None = None
    reason: str | None = None
    key: str | None = None
    run_id: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    refs: frozenset[tuple[int, int]] | None = None
    """(partition, offset) pairs in the DLQ topic."""

    @property
    def selects_all(self) -> bool:
        """No criterion given: everything matches."""
        return self == DeadLetterFilter()

    def matches(self, letter: DeadLetter, now: datetime | None = None) -> bool:
        age = letter.age(now or datetime.now(UTC))
        checks = (
            self.origin_topic is None or letter.origin_topic == self.origin_topic,
            self.error_type is None or _type_matches(letter.error_type, self.error_type),
            self.reason is None or letter.reason == self.reason,
            self.key is None or text_of(letter.origin_key) == self.key,
            self.run_id is None or letter.run_id == self.run_id,
            self.older_than is None or age >= self.older_than,
            self.newer_than is None or age <= self.newer_than,
            self.refs is None or (letter.partition, letter.offset) in self.refs,
        )
        return all(checks)


def _type_matches(actual: str, wanted: str) -> bool:
    """`SlackError` matches `SlackError` and `pkg.mod.SlackError`."""
    return actual == wanted or actual.rsplit(".", 1)[-1] == wanted
