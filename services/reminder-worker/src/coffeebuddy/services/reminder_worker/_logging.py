"""JSON logs, one object per line: time, level, logger, message and every structured field
passed in `extra` (run / reminder / event ids, worker id, outcome, error class, lateness...)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["JsonFormatter", "configure_logging"]

_CONTEXT_FIELDS = ("run_id", "reminder_id", "event_id", "topic", "partition", "offset")
_REDACTED = "<redacted>"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
"""LogRecord's own attributes: anything else on a record came from `extra`."""


class JsonFormatter(logging.Formatter):
    """Formats records as single-line JSON; any registered secret value is replaced if it leaks."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float) else str(value)
        for name, value in record.__dict__.items():
            if name in _STANDARD or name in entry or name.startswith("_") or value is None:
                continue
            if isinstance(value, bool | int | float | str):
                entry[name] = value
            elif isinstance(value, list | tuple):
                entry[name] = [v if isinstance(v, int | float | str) else str(v) for v in value]
            else:
                entry[name] = str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        for secret in self._secrets:
            line = line.replace(secret, _REDACTED)
        return line


def configure_logging(
    level: str = "INFO", *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Route every logger to one JSON handler on stderr; quiet chatty libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # slack_sdk logs request bodies at DEBUG; aiokafka is noisy at INFO.
    for name in (
        "slack_sdk",
        "slack_bolt",
        "coffeebuddy.reminder_worker.slack_sdk",
        "aiohttp.access",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
