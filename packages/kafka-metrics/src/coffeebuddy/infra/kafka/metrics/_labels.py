"""Label values kept to a bounded set, so a label cannot grow the number of series."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from coffeebuddy.infra.kafka.metrics._names import OTHER, SLACK_KNOWN_ERRORS


def bounded(value: str, allowed: Iterable[str], other: str = OTHER) -> str:
    """Return ``value`` when it is in ``allowed``, else ``other``: keeps label cardinality fixed."""
    return value if value in allowed else other


def slack_error_label(code: str | None) -> str:
    """The Slack ``error`` label value: the code when known, else ``other``."""
    return code if code is not None and code in SLACK_KNOWN_ERRORS else OTHER


class LabelLimiter:
    """Lets through at most ``limit`` distinct values (first come), then maps the rest to ``other``.

    For labels whose values come from code rather than a fixed list (exception type names).
    """

    def __init__(self, limit: int = 50, other: str = OTHER) -> None:
        self._limit = limit
        self._other = other
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return self._other
