"""`reminders list`: every reminder the changelog holds now, filtered and sorted by due time;
`--watch` then follows the changelog and reports each change (like `kubectl get -w`)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision.reminders._read import OperatorReader
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics
from coffeebuddy.infra.kafka.provision.reminders._view import (
    Change,
    ChangelogState,
    ReminderFilter,
    ReminderView,
    Unreadable,
    sort_by_due,
)

__all__ = ["Listing", "list_reminders", "watch_reminders"]

T = TypeVar("T")


@dataclass
class Listing:
    """The matching reminders (sorted by due time), the unreadable records met on the way, and
    the folded changelog they come from."""

    reminders: list[ReminderView]
    unreadable: list[Unreadable]
    state: ChangelogState
    where: ReminderFilter = field(default_factory=ReminderFilter)


def _listing(state: ChangelogState, where: ReminderFilter) -> Listing:
    matching = [v for v in state.reminders.values() if where.matches(v)]
    sort_by_due(matching)
    return Listing(matching, list(state.unreadable), state, where)


async def list_reminders(
    *,
    settings: KafkaSettings | None = None,
    where: ReminderFilter | None = None,
    topics: OperatorTopics | None = None,
    read_timeout: float = 30.0,
) -> Listing:
    """Read every changelog partition to its current end (no group, no commit) and fold it."""
    where = where or ReminderFilter()
    topics = topics or OperatorTopics()
    reader = OperatorReader(settings or KafkaSettings.from_env(), topics, timeout=read_timeout)
    state = ChangelogState(topics.changelog.name)
    apply = state.apply
    async with contextlib.aclosing(reader.follow_changelog()) as batches:
        async for batch in batches:
            if batch is None:
                break
            for record in batch:
                apply(record)
    return _listing(state, where)


async def watch_reminders(
    on_listing: Callable[[Listing], Awaitable[None] | None],
    on_change: Callable[[Change | Unreadable], Awaitable[None] | None],
    *,
    settings: KafkaSettings | None = None,
    where: ReminderFilter | None = None,
    topics: OperatorTopics | None = None,
    read_timeout: float = 30.0,
) -> None:
    """`on_listing` once with what `list_reminders` gives, then `on_change` for every later
    change of a matching reminder (a pruned one matched before it went) and every unreadable
    record; runs until cancelled."""
    where = where or ReminderFilter()
    topics = topics or OperatorTopics()
    reader = OperatorReader(settings or KafkaSettings.from_env(), topics, timeout=read_timeout)
    state = ChangelogState(topics.changelog.name)
    listed = False
    async with contextlib.aclosing(reader.follow_changelog()) as batches:
        async for batch in batches:
            if batch is None:
                listed = True
                await _call(on_listing, _listing(state, where))
                continue
            for record in batch:
                change = state.apply(record)
                if not listed or change is None:
                    continue
                if isinstance(change, Unreadable) or where.matches(change.view):
                    await _call(on_change, change)


async def _call(callback: Callable[[T], Awaitable[None] | None], value: T) -> None:
    result = callback(value)
    if result is not None:
        await result
