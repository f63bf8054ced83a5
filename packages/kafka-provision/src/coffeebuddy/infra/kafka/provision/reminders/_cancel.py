"""`reminders cancel ID... | --run RUN`: publish the catalog's `reminder.cancelled` event, the
contract the Slack app uses, so the worker cancels exactly as for any other cancellation.

Only a pending reminder (scheduled, or claimed) is cancelled; one already sent, dropped,
cancelled or dead-lettered is reported as such and nothing is published for it. A claimed one
is cancelled with a warning: a post may be under way, and the worker then decides when the
attempt ends (cancelled if nothing was posted, else it stays sent).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderCancelledData,
    ReminderStatus,
    StateRecord,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision.dlq._ledger import default_operator
from coffeebuddy.infra.kafka.provision.reminders._errors import (
    NotConfirmedError,
    RemindersError,
    UnknownReminderError,
)
from coffeebuddy.infra.kafka.provision.reminders._read import CHANGELOG, OperatorReader, refusals
from coffeebuddy.infra.kafka.provision.reminders._story import sent_at, show_reminder
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics, partition_of
from coffeebuddy.infra.kafka.provision.reminders._view import (
    ChangelogState,
    ReminderView,
    by_due,
    iso,
)

__all__ = ["OPERATOR_SOURCE", "CancelReport", "CancelTarget", "cancel_reminders"]

OPERATOR_SOURCE = "/coffeebuddy/reminder-operator"
"""CloudEvents `source` of the cancellations this command publishes."""

S = ReminderStatus


@dataclass
class CancelTarget:
    """One reminder asked to be cancelled: what the changelog says of it now (or, once pruned
    from it, its last history record) and, once published, the cancellation's event and where
    it landed."""

    reminder_id: str
    run_id: str
    view: ReminderView | None
    last: StateRecord | None = None
    event_id: str | None = None
    published: str | None = None
    """`topic[partition]@offset` of the published cancellation."""

    @property
    def status(self) -> str:
        if self.view is not None:
            return str(self.view.status)
        return "pruned" if self.last is None else f"{self.last.status} (pruned)"

    @property
    def cancellable(self) -> bool:
        """Pending in the changelog: scheduled, or claimed (with the warning of `note`)."""
        return self.view is not None and self.view.status.is_pending

    def note(self, dry_run: bool = False) -> str:
        """What was (or would be) done and why, in one line."""
        r = None if self.view is None else self.view.record
        if r is None:
            last = self.last
            if last is None:
                return "not in the changelog: settled and pruned; nothing to cancel"
            return (
                f"not in the changelog (last history record: {last.status} at "
                f"{iso(last.recorded_at)}): the worker holds no pending state; nothing to cancel"
            )
        done = "would publish a cancellation" if dry_run else "cancellation published"
        if self.published is not None:
            done += f" (event {self.event_id}, {self.published})"
        if r.status is S.SCHEDULED:
            return f"scheduled, due {iso(r.due)}: {done}"
        if r.status is S.CLAIMED:
            return (
                f"claimed by {r.owner} at {iso(r.claimed_at)} (epoch {r.epoch}, deadline "
                f"{iso(r.deadline)}): {done}, but a post may be under way; the worker drops it "
                "only if nothing was posted (see `reminders show`)"
            )
        if r.status is S.SENT:
            return (
                f"already sent at {iso(sent_at(r))} (Slack channel {r.slack_channel}, ts "
                f"{r.slack_ts}): nothing to cancel"
            )
        if r.status is S.DROPPED:
            return f"already dropped ({r.reason}): nothing to cancel"
        if r.status is S.CANCELLED:
            return f"already cancelled (event {r.cause_event_id}): nothing to cancel"
        return (
            f"dead-lettered to {r.dlq_topic}[{r.dlq_partition}]@{r.dlq_offset} ({r.reason}): "
            "not pending, nothing to cancel (a replay from the dead-letter topic would schedule "
            "it again)"
        )

    def to_json(self, dry_run: bool = False) -> dict[str, Any]:
        return {
            "reminder_id": self.reminder_id,
            "run_id": self.run_id,
            "status": self.status,
            "action": (
                ("would_cancel" if dry_run else "cancelled") if self.cancellable else "skipped"
            ),
            "event_id": self.event_id,
            "published": self.published,
            "note": self.note(dry_run),
            "current": None if self.view is None else self.view.to_json(),
        }


@dataclass
class CancelReport:
    """Every target with what happened to it; `run_mark` when a whole run was asked for."""

    dry_run: bool
    targets: list[CancelTarget]
    searched: list[str] = field(default_factory=list)
    run_mark: ReminderView | None = None

    @property
    def to_cancel(self) -> list[CancelTarget]:
        return [t for t in self.targets if t.cancellable]

    @property
    def cancelled(self) -> list[CancelTarget]:
        return [t for t in self.targets if t.published is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "searched": self.searched,
            "run": None if self.run_mark is None else self.run_mark.to_json(),
            "reminders": [t.to_json(self.dry_run) for t in self.targets],
        }


async def cancel_reminders(
    reminder_ids: Sequence[str] = (),
    *,
    run_id: str | None = None,
    settings: KafkaSettings | None = None,
    topics: OperatorTopics | None = None,
    dry_run: bool = False,
    confirm: Callable[[Sequence[CancelTarget]], Awaitable[bool]] | None = None,
    reason: str | None = None,
    read_timeout: float = 30.0,
) -> CancelReport:
    """Cancel `reminder_ids` (each found through its history, or in `run_id`'s changelog
    partition), or with no ids every pending reminder of `run_id`.

    Nothing is published when an id is unknown (`UnknownReminderError`), on `dry_run`, or when
    more than one is to be cancelled and `confirm` (None: no question) answers False
    (`NotConfirmedError`). Cancellations are published one at a time, each acknowledged.
    """
    if not reminder_ids and run_id is None:
        raise RemindersError("reminders cancel: name reminder ids, or a run with --run")
    settings = settings or KafkaSettings.from_env()
    topics = topics or OperatorTopics()
    if reminder_ids:
        report = await _by_ids(reminder_ids, run_id, settings, topics, read_timeout)
    else:
        assert run_id is not None
        report = await _by_run(run_id, settings, topics, read_timeout)
    report.dry_run = dry_run
    todo = report.to_cancel
    if dry_run or not todo:
        return report
    if len(todo) > 1 and confirm is not None and not await confirm(todo):
        raise NotConfirmedError(
            f"not confirmed: nothing cancelled ({len(todo)} reminders; --yes skips the question)"
        )
    await _publish(todo, settings, topics, reason or f"cancelled by {default_operator()}")
    return report


async def _by_ids(
    ids: Sequence[str],
    run_id: str | None,
    settings: KafkaSettings,
    topics: OperatorTopics,
    read_timeout: float,
) -> CancelReport:
    targets: list[CancelTarget] = []
    searched: list[str] = []
    unknown: list[UnknownReminderError] = []
    for rid in dict.fromkeys(ids):
        try:
            story = await show_reminder(
                rid, settings=settings, topics=topics, run_id=run_id, read_timeout=read_timeout
            )
        except UnknownReminderError as exc:
            unknown.append(exc)
            continue
        searched.extend(s for s in story.searched if s not in searched)
        if story.run_id is None:
            raise RemindersError(
                f"reminder {rid!r}: its history records cannot be read, so its run (and its "
                "changelog partition) is unknown: pass --run RUN"
            )
        last = next((s.record for s in reversed(story.steps) if s.record is not None), None)
        targets.append(CancelTarget(rid, story.run_id, story.current, last))
    if unknown:
        raise UnknownReminderError(
            "; ".join(str(e) for e in unknown) + ". Nothing cancelled.",
            ids=[i for e in unknown for i in e.ids],
            searched=[s for e in unknown for s in e.searched],
        )
    return CancelReport(False, targets, searched)


async def _by_run(
    run_id: str, settings: KafkaSettings, topics: OperatorTopics, read_timeout: float
) -> CancelReport:
    reader = OperatorReader(settings, topics, timeout=read_timeout)
    count = await reader.count(topics.changelog, CHANGELOG)
    partition = partition_of(run_id, count)
    state = ChangelogState(topics.changelog.name)
    state.apply_all(await reader.read(topics.changelog, CHANGELOG, [partition]))
    views = sorted((v for v in state.reminders.values() if v.record.run_id == run_id), key=by_due)
    where = f"{topics.changelog.name}[{partition}]"
    if not views:
        raise UnknownReminderError(
            f"no reminder of run {run_id!r} in {where} (the partition the run id maps to): "
            "never scheduled, or settled and pruned. Nothing cancelled.",
            ids=[],
            searched=[where],
        )
    targets = [CancelTarget(v.reminder_id, run_id, v) for v in views]
    return CancelReport(False, targets, [where], state.runs.get(run_id))


async def _publish(
    todo: Sequence[CancelTarget], settings: KafkaSettings, topics: OperatorTopics, reason: str
) -> None:
    topic = topics.reminders
    events = [
        ReminderCancelled.create(
            data=ReminderCancelledData(
                run_id=t.run_id, reminder_id=t.reminder_id, reason=reason[:500]
            ),
            source=OPERATOR_SOURCE,
        )
        for t in todo
    ]
    try:
        with refusals(settings, "WRITE", "reminder events topic", topic.name):
            async with KafkaEventProducer(settings) as producer:
                for target, event in zip(todo, events, strict=True):
                    md = await producer.publish(topic, event)
                    target.event_id = event.id
                    target.published = f"{md.topic}[{md.partition}]@{md.offset}"
    except Exception as exc:
        done = [t.reminder_id for t in todo if t.published is not None]
        raise RemindersError(
            f"{exc} (cancellations published before this: {done or 'none'})"
        ) from exc
