"""Changelog records: the `coffeebuddy.reminder.state.v1` events the worker writes and restores.

Written by hand-built JSON (the reminder's own JSON bytes spliced in, no re-validation) and read
back with `json.loads` on the hot restore path; the models package owns the schema and a test
checks that every record written here validates as `ReminderState`.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coffeebuddy.infra.kafka.models import REMINDER_STATE

__all__ = ["StateRecord", "decode_state", "encode_state", "iso", "iso_now", "run_key", "ts"]

RUN_KEY_PREFIX = "run:"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ids = itertools.count()
_ID_PREFIX = os.urandom(6).hex()
"""Record ids: a per-process random prefix and a counter (unique per source, cheaper than uuid4)."""


def run_key(run_id: str) -> str:
    return RUN_KEY_PREFIX + run_id


_ISO_CACHE: dict[float, str] = {}


def iso(value: float) -> str:
    """RFC 3339 of an epoch time; recent values cached (due times and lifetimes repeat)."""
    out = _ISO_CACHE.get(value)
    if out is None:
        if len(_ISO_CACHE) > 4096:
            _ISO_CACHE.clear()
        out = _ISO_CACHE[value] = datetime.fromtimestamp(value, UTC).isoformat()
    return out


_NOW_ISO: list[Any] = [-1, ""]


def iso_now(now: float) -> str:
    """RFC 3339 of the current time to the millisecond, computed once per millisecond (the
    `time` / `recorded_at` of every record written; `iso` would cache each distinct float)."""
    ms = int(now * 1000)
    if ms != _NOW_ISO[0]:
        _NOW_ISO[0] = ms
        _NOW_ISO[1] = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return str(_NOW_ISO[1])


def ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


@dataclass(slots=True)
class StateRecord:
    """One decoded changelog record (only what the worker needs)."""

    state_key: str
    status: str
    run_id: str
    keep_until: float
    writer: str
    reminder_id: str | None = None
    reminder: bytes | None = None
    kind: str | None = None
    due: float | None = None
    expires_at: float | None = None
    event_id: str | None = None
    event_time: float | None = None
    reason: str | None = None
    owner: str | None = None
    epoch: int | None = None
    claimed_at: float | None = None
    deadline: float | None = None


def encode_state(
    *,
    state_key: str,
    status: str,
    run_id: str,
    keep_until: float,
    now: float,
    source: str,
    writer: str,
    reminder_id: str | None = None,
    reminder: bytes | None = None,
    event_id: str | None = None,
    event_time: float | None = None,
    reason: str | None = None,
    owner: str | None = None,
    epoch: int | None = None,
    claimed_at: float | None = None,
    deadline: float | None = None,
    slack_channel: str | None = None,
    slack_ts: str | None = None,
) -> bytes:
    """The CloudEvents JSON of one state change (`reminder` is the reminder data's JSON)."""
    data: dict[str, Any] = {"run_id": run_id, "state_key": state_key, "status": status}
    optional = (
        ("reminder_id", reminder_id),
        ("event_id", event_id),
        ("event_time", None if event_time is None else iso(event_time)),
        ("reason", reason),
        ("owner", owner),
        ("epoch", epoch),
        ("claimed_at", None if claimed_at is None else iso(claimed_at)),
        ("deadline", None if deadline is None else iso(deadline)),
        ("slack_channel", slack_channel),
        ("slack_ts", slack_ts),
    )
    data.update((name, value) for name, value in optional if value is not None)
    data["keep_until"] = iso(keep_until)
    now_iso = iso_now(now)
    data["recorded_at"] = now_iso
    envelope = {
        "specversion": "1.0",
        "id": f"{_ID_PREFIX}-{next(_ids)}",
        "source": source,
        "type": REMINDER_STATE,
        "subject": run_id,
        "time": now_iso,
        "datacontenttype": "application/json",
        "coffeebuddywriter": writer,
    }
    head = _dumps(envelope)[:-1].encode()
    body = _dumps(data)
    if reminder is None:
        return head + b',"data":' + body.encode() + b"}"
    return head + b',"data":' + body[:-1].encode() + b',"reminder":' + reminder + b"}}"


def decode_state(value: bytes) -> StateRecord:
    """Decode one record; raises ValueError (KeyError / TypeError too) on a malformed one."""
    doc = json.loads(value)
    if doc.get("type") != REMINDER_STATE:
        raise ValueError(f"not a {REMINDER_STATE} record: type {doc.get('type')!r}")
    data = doc["data"]
    rec = StateRecord(
        state_key=data["state_key"],
        status=data["status"],
        run_id=data["run_id"],
        keep_until=datetime.fromisoformat(data["keep_until"]).timestamp(),
        writer=str(doc.get("coffeebuddywriter", "")),
        reminder_id=data.get("reminder_id"),
        event_id=data.get("event_id"),
        event_time=ts(data.get("event_time")),
        reason=data.get("reason"),
        owner=data.get("owner"),
        epoch=data.get("epoch"),
        claimed_at=ts(data.get("claimed_at")),
        deadline=ts(data.get("deadline")),
    )
    reminder = data.get("reminder")
    if reminder is not None:
        rec.reminder = _dumps(reminder).encode()
        rec.kind = reminder["kind"]
        rec.due = datetime.fromisoformat(reminder["due_at"]).timestamp()
        rec.expires_at = ts(reminder.get("expires_at"))
    return rec
