"""Output of the reminder commands: plain columns for people (fast for 100,000 rows, unlike a
rich table), one JSON object per line for scripts."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import TextIO

from coffeebuddy.infra.kafka.models import ReminderStatus
from coffeebuddy.infra.kafka.provision.reminders._cancel import CancelReport
from coffeebuddy.infra.kafka.provision.reminders._list import Listing
from coffeebuddy.infra.kafka.provision.reminders._story import ReminderStory, sent_at
from coffeebuddy.infra.kafka.provision.reminders._view import (
    Change,
    ReminderView,
    Unreadable,
    iso,
)

__all__ = [
    "LIST_COLUMNS",
    "Columns",
    "print_cancel",
    "print_change",
    "print_listing",
    "print_story",
]

S = ReminderStatus
LIST_COLUMNS = ("REMINDER", "RUN", "KIND", "USER", "DUE (UTC)", "DUE", "STATUS", "DETAIL")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


_DAYS: dict[int, str] = {}


def _clock(ts: float | None, *, ms: bool = False) -> str:
    """`2026-12-07 10:00:00` (UTC), with `.123` when `ms`; the day's text is cached (a listing
    formats 100,000s of times over a few days)."""
    if ts is None:
        return "-"
    if ms:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    day, second = divmod(math.floor(ts), 86400)
    text = _DAYS.get(day)
    if text is None:
        text = _DAYS[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
    hour, second = divmod(second, 3600)
    return f"{text} {hour:02d}:{second // 60:02d}:{second % 60:02d}"


def _relative(seconds: float) -> str:
    """`in 4m`, `2h ago`: the largest whole unit."""
    size = abs(seconds)
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if size >= span:
            text = f"{int(size // span)}{unit}"
            break
    else:
        text = f"{int(size)}s"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def _detail(view: ReminderView) -> str:
    r = view.record
    status = r.status
    if status is S.CLAIMED:
        return f"by {r.owner} epoch {r.epoch}, deadline {_clock(r.deadline)}"
    if status is S.SENT:
        late = "" if r.due is None else f", {sent_at(r) - r.due:.2f} s late"
        return f"ts {r.slack_ts} in {r.slack_channel}{late}"
    if status is S.DROPPED:
        return r.reason or "-"
    if status is S.CANCELLED:
        return f"event {r.cause_event_id}" if r.cause_event_id else "-"
    if status is S.DEAD_LETTERED:
        return f"{r.dlq_topic}[{r.dlq_partition}]@{r.dlq_offset}"
    return "-"


def _cells(view: ReminderView, now: float, status: str | None = None) -> tuple[str, ...]:
    r = view.record
    return (
        view.reminder_id,
        r.run_id,
        r.kind or "-",
        r.recipient or "-",
        _clock(r.due),
        "-" if r.due is None else _relative(r.due - now),
        status or str(r.status),
        _detail(view) if status is None else f"was {r.status}",
    )


class Columns:
    """Column widths fixed by the first rows printed (a watch keeps them for later rows)."""

    def __init__(self, rows: Sequence[tuple[str, ...]]) -> None:
        widths = [len(h) for h in LIST_COLUMNS]
        if rows:
            for i in range(len(widths) - 1):  # the last column is not padded
                widths[i] = max(widths[i], max(map(len, map(itemgetter(i), rows))))
        self.widths = widths
        self._format = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"

    def line(self, row: tuple[str, ...]) -> str:
        return self._format.format(*row).rstrip()


def print_listing(listing: Listing, out: TextIO, err: TextIO, *, as_json: bool) -> Columns | None:
    """The listing (table or JSON lines), its unreadable records, and a count on `err`."""
    if as_json:
        write = out.write
        for view in listing.reminders:
            write(_dumps(view.to_json()) + "\n")
        for bad in listing.unreadable:
            write(_dumps(bad.to_json()) + "\n")
        return None
    now = time.time()
    rows = [_cells(v, now) for v in listing.reminders]
    columns = Columns(rows)
    if rows:
        out.write("\n".join([columns.line(LIST_COLUMNS), *map(columns.line, rows)]) + "\n")
    for bad in listing.unreadable:
        out.write(f"unreadable {bad.where} (key {bad.key}): {bad.error}\n")
    total = len(listing.state.reminders)
    err.write(
        f"{len(rows)} reminders"
        + (f" of {total}" if total != len(rows) else "")
        + f" in {listing.state.topic}"
        + (f", {len(listing.unreadable)} unreadable records skipped" if listing.unreadable else "")
        + "\n"
    )
    return columns


def print_change(
    change: Change | Unreadable, out: TextIO, columns: Columns | None, *, as_json: bool
) -> None:
    """One line per change while watching (JSON: the reminder with `change` set)."""
    if isinstance(change, Unreadable):
        if as_json:
            out.write(_dumps(change.to_json()) + "\n")
        else:
            out.write(f"unreadable {change.where} (key {change.key}): {change.error}\n")
        out.flush()
        return
    if as_json:
        body = change.view.to_json()
        body["change"] = change.kind
        if change.kind == "pruned":
            body["status"] = "pruned"
            body["partition"], body["offset"] = change.partition, change.offset
        out.write(_dumps(body) + "\n")
    else:
        status = "pruned" if change.kind == "pruned" else None
        row = _cells(change.view, time.time(), status)
        out.write((columns or Columns([row])).line(row) + "\n")
    out.flush()


def print_story(story: ReminderStory, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(_dumps(story.to_json()) + "\n")
        return
    lines: list[str] = []
    about = story.scheduled
    head = f"reminder {story.reminder_id} of run {story.run_id or '(unknown)'}"
    if about is not None:
        view = ReminderView(about, "", 0, 0)
        head += (
            f": {about.kind} for {about.recipient} (team {view.team_id}, channel {view.channel_id})"
        )
        lines += [head, f"due       {iso(about.due)}, expires {iso(about.expires_at)}"]
    else:
        lines.append(head)
    if story.current is not None:
        lines.append(f"now       {story.current.status} ({story.current.where})")
    elif story.pruned is not None:
        lines.append(
            f"now       pruned: tombstoned after its lifetime ended "
            f"({story.changelog_topic}[{story.pruned[0]}]@{story.pruned[1]})"
        )
    elif story.changelog_partition is not None:
        lines.append(
            f"now       not in {story.changelog_topic}[{story.changelog_partition}] "
            "(settled, pruned and compacted away, or not written yet)"
        )
    else:
        lines.append("now       unknown: the run is unknown, pass --run RUN")
    mark = story.run_mark
    if mark is not None:
        r = mark.record
        what = " and ".join(
            w for w, on in (("closed", r.run_closed), ("cancelled", r.run_cancelled)) if on
        )
        lines.append(
            f"run       {what} (recorded {iso(r.recorded_at)}"
            + (f", event {r.cause_event_id}" if r.cause_event_id else "")
            + ")"
        )
    lines.append(f"read      {', '.join(story.searched)} (the partitions its keys map to)")
    if not any(s.source == "history" for s in story.steps):
        lines.append(
            "history   none: REMINDER_HISTORY is off, the story is older than the history's "
            "retention, or the worker has not flushed it yet"
            + ("; steps below are the changelog's records" if story.steps else "")
        )
    lines.append("")
    header = ("TIME (UTC)", "STATUS", "WORKER", "DETAIL", "WHERE")
    rows = [
        (
            _clock(s.at, ms=True),
            s.status,
            (s.record.writer or "-") if s.record is not None else "-",
            s.detail(),
            s.where,
        )
        for s in story.steps
    ]
    rows += [
        ("-", "unreadable", "-", f"unreadable record: {u.error}", u.where)
        for u in story.changelog_unreadable
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        lines.append(
            "  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3], f"[{row[4]}]"])
        )
    out.write("\n".join(lines) + "\n")


def print_cancel(report: CancelReport, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(_dumps(report.to_json()) + "\n")
        return
    lines: list[str] = []
    if report.run_mark is not None:
        r = report.run_mark.record
        state = "cancelled" if r.run_cancelled else "closed"
        lines.append(f"run {r.run_id} is {state} (recorded {iso(r.recorded_at)})")
    width = max((len(t.reminder_id) for t in report.targets), default=0)
    lines += [f"{t.reminder_id.ljust(width)}  {t.note(report.dry_run)}" for t in report.targets]
    todo = len(report.to_cancel)
    if report.dry_run:
        lines.append(f"dry run: {todo} of {len(report.targets)} would be cancelled")
    else:
        lines.append(f"cancelled {len(report.cancelled)} of {len(report.targets)}")
    out.write("\n".join(lines) + "\n")
