"""`reminders show ID`: one reminder's whole story, each step with its time.

The worker appends a copy of every reminder state record to the history topic, keyed (and so
partitioned) by the reminder id: the story is in the ONE history partition the id maps to, and
outlives the changelog's tombstones for the topic's retention (14 days). The history names the
run, hence the one changelog partition that holds the reminder's current state (the partition
the run id maps to: the changelog is co-partitioned with the reminder events keyed by run id).
Without history records (the worker runs with `REMINDER_HISTORY=0`, or the story is older than
the retention) the run must be given (`--run`), and the steps are the changelog records of the
key that compaction has not removed yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import ReminderStatus, StateRecord, decode_state
from coffeebuddy.infra.kafka.provision.dlq._reader import StoredRecord
from coffeebuddy.infra.kafka.provision.reminders._errors import UnknownReminderError
from coffeebuddy.infra.kafka.provision.reminders._read import CHANGELOG, OperatorReader
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics, partition_of
from coffeebuddy.infra.kafka.provision.reminders._view import (
    ChangelogState,
    ReminderView,
    Unreadable,
    iso,
)

__all__ = ["ReminderStory", "Step", "sent_at", "show_reminder", "trace_id"]

S = ReminderStatus


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def sent_at(record: StateRecord) -> float:
    """When a sent reminder reached Slack: its message `ts` (Slack's own clock, epoch seconds)
    when it reads as one close to the record's time, else when the worker recorded the send."""
    try:
        ts = float(record.slack_ts or "")
    except ValueError:
        return record.recorded_at
    return ts if abs(ts - record.recorded_at) < 86400 else record.recorded_at


@dataclass(frozen=True, slots=True)
class Step:
    """One record of the story (a state the reminder entered), or one that cannot be read."""

    source: Literal["history", "changelog"]
    topic: str
    partition: int
    offset: int
    record: StateRecord | None
    error: str | None = None

    @property
    def at(self) -> float | None:
        return None if self.record is None else self.record.recorded_at

    @property
    def status(self) -> str:
        return "unreadable" if self.record is None else str(self.record.status)

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def lateness(self) -> float | None:
        """Seconds from due to the Slack post, for a `sent` step."""
        r = self.record
        if r is None or r.status is not S.SENT or r.due is None:
            return None
        return sent_at(r) - r.due

    def detail(self) -> str:
        """One line for people: what happened, by whom, and the numbers that matter."""
        r = self.record
        if r is None:
            return f"unreadable record: {self.error}"
        status = r.status
        if status is S.SCHEDULED:
            parts = [f"{r.kind or '?'} for {r.recipient or '?'}, due {iso(r.due)}"]
            if r.expires_at is not None:
                parts.append(f"expires {iso(r.expires_at)}")
            if r.event_id:
                event = f"by event {r.event_id}"
                if r.event_source:
                    event += f" from {r.event_source}"
                if r.event_time is not None:
                    event += f" at {iso(r.event_time)}"
                parts.append(event)
            if r.origin_topic is not None:
                parts.append(f"record {r.origin_topic}[{r.origin_partition}]@{r.origin_offset}")
            text = "; ".join(parts)
        elif status is S.CLAIMED:
            text = (
                f"by {r.owner}, epoch {r.epoch}, at {iso(r.claimed_at)}, deadline {iso(r.deadline)}"
            )
        elif status is S.SENT:
            late = self.lateness
            text = f"Slack channel {r.slack_channel}, message ts {r.slack_ts}"
            if late is not None:
                text += f", {late:.3f} s after due"
        elif status is S.DEAD_LETTERED:
            text = f"to {r.dlq_topic}[{r.dlq_partition}]@{r.dlq_offset}: {r.reason}"
        elif status is S.CANCELLED:
            text = f"by event {r.cause_event_id}" if r.cause_event_id else "cancelled"
            if r.reason and r.reason != "cancelled":
                text += f" ({r.reason})"
        else:  # dropped, or a run mark
            text = f"reason {r.reason}" if r.reason else str(status)
            if r.cause_event_id:
                text += f", by event {r.cause_event_id}"
        tid = trace_id(r.traceparent)
        if tid is not None:
            text += f"; trace {tid}"
        return text

    @classmethod
    def of(cls, source: Literal["history", "changelog"], stored: StoredRecord) -> Step:
        """The step of one stored record; unreadable (with the decoder's reason) if it is not
        a state record."""
        if stored.value is None:
            return cls(source, stored.topic, stored.partition, stored.offset, None, "tombstone")
        try:
            rec = decode_state(stored.value)
        except Exception as exc:  # StateRecordError names the field; anything else: its type
            error = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return cls(source, stored.topic, stored.partition, stored.offset, None, error[:300])
        return cls(source, stored.topic, stored.partition, stored.offset, rec)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "status": self.status,
            "at": iso(self.at),
        }
        r = self.record
        if r is None:
            out["error"] = self.error
            return out
        view = ReminderView(r, self.topic, self.partition, self.offset).to_json()
        for name in ("topic", "partition", "offset", "status"):
            view.pop(name)
        out.update(view)
        out.update(
            event_source=r.event_source,
            event_time=iso(r.event_time),
            origin_topic=r.origin_topic,
            origin_partition=r.origin_partition,
            origin_offset=r.origin_offset,
            trace_id=trace_id(r.traceparent),
            lateness_s=self.lateness,
        )
        return out


@dataclass
class ReminderStory:
    """A reminder's steps (history records, in the order written) and its state now."""

    reminder_id: str
    run_id: str | None
    history_topic: str
    history_partition: int
    history_partitions: int
    steps: list[Step] = field(default_factory=list)
    changelog_topic: str | None = None
    changelog_partition: int | None = None
    current: ReminderView | None = None
    """Its record in the changelog now; None when pruned or never there."""
    pruned: tuple[int, int] | None = None
    """(partition, offset) of the tombstone that removed it from the changelog, if still seen."""
    run_mark: ReminderView | None = None
    changelog_unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def searched(self) -> list[str]:
        out = [f"{self.history_topic}[{self.history_partition}]"]
        if self.changelog_partition is not None:
            out.append(f"{self.changelog_topic}[{self.changelog_partition}]")
        return out

    @property
    def scheduled(self) -> StateRecord | None:
        """The newest record carrying the reminder's data (kind, recipient, due time)."""
        records = [s.record for s in self.steps if s.record is not None]
        if self.current is not None:
            records.append(self.current.record)
        return next((r for r in reversed(records) if r.reminder is not None), None)

    @property
    def now(self) -> str:
        """`sent`, `scheduled`, ...: the changelog's word; `pruned` / `absent` without one."""
        if self.current is not None:
            return str(self.current.status)
        if self.pruned is not None:
            return "pruned"
        return "absent" if self.changelog_partition is not None else "unknown"

    def to_json(self) -> dict[str, Any]:
        about = self.scheduled
        view = ReminderView(about, "", 0, 0) if about is not None else None
        return {
            "reminder_id": self.reminder_id,
            "run_id": self.run_id,
            "kind": about.kind if about else None,
            "recipient_user_id": about.recipient if about else None,
            "team_id": view.team_id if view else None,
            "channel_id": view.channel_id if view else None,
            "due_at": iso(about.due) if about else None,
            "expires_at": iso(about.expires_at) if about else None,
            "now": self.now,
            "history": {
                "topic": self.history_topic,
                "partition": self.history_partition,
                "partitions": self.history_partitions,
            },
            "changelog": {
                "topic": self.changelog_topic,
                "partition": self.changelog_partition,
                "current": self.current.to_json() if self.current else None,
                "pruned_at": (
                    None
                    if self.pruned is None
                    else {"partition": self.pruned[0], "offset": self.pruned[1]}
                ),
                "unreadable": [u.to_json() for u in self.changelog_unreadable],
            },
            "run": self.run_mark.to_json() if self.run_mark else None,
            "steps": [s.to_json() for s in self.steps],
        }


async def show_reminder(
    reminder_id: str,
    *,
    settings: KafkaSettings | None = None,
    topics: OperatorTopics | None = None,
    run_id: str | None = None,
    read_timeout: float = 30.0,
) -> ReminderStory:
    """Read the history partition `reminder_id` maps to, then the changelog partition of its
    run (from the history, else `run_id`). `UnknownReminderError` (naming the id and the
    partitions read) when neither has a record of it."""
    topics = topics or OperatorTopics()
    reader = OperatorReader(settings or KafkaSettings.from_env(), topics, timeout=read_timeout)
    partition, count, records = await reader.history_of(reminder_id)
    story = ReminderStory(
        reminder_id,
        None,
        topics.history.name,
        partition,
        count,
        [Step.of("history", r) for r in records],
    )
    readable = [s.record for s in story.steps if s.record is not None]
    story.run_id = readable[-1].run_id if readable else run_id
    if story.run_id is not None:
        await _read_changelog(reader, story, readable)
    if not (story.steps or story.current or story.pruned or story.changelog_unreadable):
        searched = story.searched
        hint = (
            ""
            if story.run_id is not None
            else "; without history records the run is unknown: pass --run RUN to read its "
            "changelog partition (REMINDER_HISTORY off, or older than the history's retention)"
        )
        raise UnknownReminderError(
            f"unknown reminder id {reminder_id!r}: no record of it in {', '.join(searched)} "
            f"(the partition{'s' if len(searched) > 1 else ''} its key maps to){hint}",
            ids=[reminder_id],
            searched=searched,
        )
    return story


async def _read_changelog(
    reader: OperatorReader, story: ReminderStory, readable: list[StateRecord]
) -> None:
    assert story.run_id is not None
    topic = reader.topics.changelog
    count = await reader.count(topic, CHANGELOG)
    # where the worker wrote it (the input record's partition), else where the run id maps to
    origin = next(
        (r.origin_partition for r in reversed(readable) if r.origin_partition is not None), None
    )
    partition = (
        origin if origin is not None and origin < count else partition_of(story.run_id, count)
    )
    story.changelog_topic = topic.name
    story.changelog_partition = partition
    records = await reader.read(topic, CHANGELOG, [partition])
    state = ChangelogState(topic.name)
    key = story.reminder_id.encode()
    mine: list[StoredRecord] = []
    for record in records:
        state.apply(record)
        if record.key == key:
            mine.append(record)
    story.current = state.reminders.get(story.reminder_id)
    story.pruned = state.pruned.get(story.reminder_id)
    story.run_mark = state.runs.get(story.run_id)
    if story.steps:
        story.changelog_unreadable = [u for u in state.unreadable if u.key == story.reminder_id]
    else:  # no history: the changelog records compaction has left (unreadable ones included)
        story.steps = [Step.of("changelog", r) for r in mine if r.value is not None]
