"""Changelog records: the `coffeebuddy.reminder.state.v1` events the worker writes and restores.

Written by hand-built JSON (the reminder's own JSON bytes spliced in, no re-validation) and read
back with `json.loads` on the hot restore path; the models package owns the schema and a test
checks that every record written here validates as `ReminderState`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from coffeebuddy.infra.kafka.models import REMINDER_STATE

__all__ = ["StateRecord", "decode_state", "encode_state", "iso", "iso_now", "run_key", "ts"]

RUN_KEY_PREFIX = "run:"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_q: Callable[[str], str] = encode_basestring
"""A JSON string literal (C-accelerated, non-ASCII kept, as `_dumps` writes them)."""
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
    """The CloudEvents JSON of one state change (`reminder` is the reminder data's JSON).

    Assembled from escaped pieces (no dict, no json.dumps): this runs once per input record and
    twice per post. Times of the reminder's own lifetime repeat and are cached; the event time
    is per event and formatted without the cache."""
    parts = [
        _head(source, writer),
        ',"id":"',
        _ID_PREFIX,
        "-",
        str(next(_ids)),
        '","subject":',
        _q(run_id),
        ',"time":"',
        iso_now(now),
        '","data":{"run_id":',
        _q(run_id),
        ',"state_key":',
        _q(state_key),
        ',"status":',
        _q(status),
    ]
    for name, text in (
        ("reminder_id", reminder_id),
        ("event_id", event_id),
        ("reason", reason),
        ("owner", owner),
        ("slack_channel", slack_channel),
        ("slack_ts", slack_ts),
    ):
        if text is not None:
            parts += (',"', name, '":', _q(text))
    if event_time is not None:
        parts += (',"event_time":"', datetime.fromtimestamp(event_time, UTC).isoformat(), '"')
    if epoch is not None:
        parts += (',"epoch":', str(int(epoch)))
    if claimed_at is not None:
        parts += (',"claimed_at":"', iso(claimed_at), '"')
    if deadline is not None:
        parts += (',"deadline":"', iso(deadline), '"')
    parts += (',"keep_until":"', iso(keep_until), '","recorded_at":"', iso_now(now), '"')
    head = "".join(parts).encode()
    if reminder is None:
        return head + b"}}"
    return head + b',"reminder":' + reminder + b"}}"


_HEADS: dict[tuple[str, str], str] = {}


def _head(source: str, writer: str) -> str:
    """The envelope's constant part for one writer (its marker `"coffeebuddywriter":"<id>"`
    lets the worker skip its own records unread)."""
    head = _HEADS.get((source, writer))
    if head is None:
        head = _HEADS[source, writer] = (
            '{"specversion":"1.0","type":"'
            + REMINDER_STATE
            + '","datacontenttype":"application/json","source":'
            + _q(source)
            + ',"coffeebuddywriter":'
            + _q(writer)
        )
    return head


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
