"""`replay_dead_letters`: re-publish selected dead letters to their origin topic, each once.

A replayed record keeps the dead letter's value, original key and headers (so its CloudEvents
content mode too), minus the dead-letter headers, plus `replayed_from` (the models'
`replay_headers`). Every origin is checked before the first send, so a bad selection sends
nothing; each send is recorded in the ledger as soon as the broker acknowledged it.

Dead letters whose reason says a replay cannot fix them (`decode_error`: the same bytes fail to
decode again) are left out unless the filter asks for that reason by name; the report lists
them with why (`ReplayReport.left_out`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision.dlq._errors import DlqError
from coffeebuddy.infra.kafka.provision.dlq._filter import DeadLetterFilter
from coffeebuddy.infra.kafka.provision.dlq._inspect import dlq_name, inspect_dead_letters
from coffeebuddy.infra.kafka.provision.dlq._ledger import ReplayLedger
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter
from coffeebuddy.infra.kafka.provision.dlq._publisher import (
    KafkaPublisher,
    Publisher,
    RecordPosition,
)
from coffeebuddy.infra.kafka.provision.dlq._reader import TopicReader
from coffeebuddy.infra.kafka.topics import CATALOG, TopicConfig

DLQ_SUFFIX = ".dlq"

NOT_FIXED_BY_REPLAY: Mapping[str, str] = {
    "decode_error": "its bytes are not a valid event and a replay sends the same bytes, which "
    "fail to decode again: fix the producer and leave it (--reason decode_error replays "
    "such records anyway)",
}
"""Dead-letter reasons (as the consumer harness writes them) a replay cannot fix, with why."""


@dataclass
class ReplayReport:
    """What a replay selected, sent (with where it landed) and skipped as already replayed."""

    dlq_topic: str
    dry_run: bool
    selected: list[DeadLetter] = field(default_factory=list)
    replayed: list[tuple[DeadLetter, RecordPosition]] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)
    left_out: list[DeadLetter] = field(default_factory=list)
    """Matched, but left out: their reason is in `NOT_FIXED_BY_REPLAY` and was not asked for."""

    @property
    def to_replay(self) -> list[DeadLetter]:
        """Selected and not yet in the ledger (what a dry run would send)."""
        done = {d.ledger_key for d in self.already_replayed}
        return [d for d in self.selected if d.ledger_key not in done]

    def to_json(self) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "dry_run": self.dry_run,
            "selected": len(self.selected),
            "already_replayed": [d.ref for d in self.already_replayed],
            "would_replay": [d.ref for d in self.to_replay] if self.dry_run else [],
            "left_out": [
                {"ref": d.ref, "reason": d.reason, "why": NOT_FIXED_BY_REPLAY.get(d.reason, "")}
                for d in self.left_out
            ],
            "replayed": [
                {"ref": d.ref, "topic": md.topic, "partition": md.partition, "offset": md.offset}
                for d, md in self.replayed
            ],
        }


def origin_topic_of(letter: DeadLetter, topics: Mapping[str, TopicConfig]) -> str:
    """The topic to re-publish `letter` to; DlqError unless it is the origin of its DLQ (by
    the `<origin>.dlq` convention, `topics`, or the catalog)."""
    origin = letter.origin_topic
    if not origin:
        raise DlqError(f"{letter.ref}: no origin topic header, cannot tell where it came from")
    expected = (
        {letter.dlq_topic.removesuffix(DLQ_SUFFIX)}
        if letter.dlq_topic.endswith(DLQ_SUFFIX)
        else set()
    )
    expected |= {t.name for t in topics.values() if t.dead_letter_topic == letter.dlq_topic}
    if letter.dlq_topic in CATALOG.topic_names:
        catalog_origin = CATALOG.origin_of(letter.dlq_topic)
        if catalog_origin is not None:
            expected.add(catalog_origin.name)
    if origin not in expected:
        raise DlqError(
            f"{letter.ref}: origin topic {origin!r} is not the origin of {letter.dlq_topic!r} "
            f"(expected one of {sorted(expected)}); refusing to publish there"
        )
    return origin


async def replay_dead_letters(
    topic: str | TopicConfig,
    *,
    ledger: ReplayLedger,
    settings: KafkaSettings | None = None,
    where: DeadLetterFilter | None = None,
    dry_run: bool = False,
    rate: float | None = None,
    limit: int | None = None,
    topics: Iterable[TopicConfig] = (),
    timeout: float = 30.0,  # noqa: ASYNC109
    reader: TopicReader | None = None,
    publisher: Publisher | None = None,
) -> ReplayReport:
    """Re-publish selected dead letters of `topic` to their origin topic, each at most once.

    Dead letters with a reason in `NOT_FIXED_BY_REPLAY` (`decode_error`) are left out
    (`report.left_out`) unless `where.reason` names that reason. `rate` caps messages per
    second; `limit` caps how many are sent (oldest first). With `dry_run` nothing is published
    or recorded. `reader`/`publisher` default to Kafka ones
    for `settings` (default `KafkaSettings.from_env()`); a given publisher is used as it is.
    """
    if rate is not None and rate <= 0:
        raise DlqError(f"rate: must be > 0 messages/s, got {rate}")
    if limit is not None and limit < 0:
        raise DlqError(f"limit: must be >= 0, got {limit}")
    dlq = dlq_name(topic)
    known = {t.name: t for t in topics}
    report = ReplayReport(dlq_topic=dlq, dry_run=dry_run)
    async with ledger:
        matching = await inspect_dead_letters(
            dlq, settings=settings, where=where, timeout=timeout, reader=reader
        )
        report.already_replayed = [d for d in matching if d in ledger]
        fresh = [d for d in matching if d not in ledger]
        asked = where.reason if where is not None else None
        report.left_out = [
            d for d in fresh if d.reason in NOT_FIXED_BY_REPLAY and d.reason != asked
        ]
        fresh = [d for d in fresh if d.reason not in NOT_FIXED_BY_REPLAY or d.reason == asked]
        fresh = fresh[:limit] if limit is not None else fresh  # the limit counts new sends only
        chosen = {d.ledger_key for d in report.already_replayed} | {d.ledger_key for d in fresh}
        report.selected = [d for d in matching if d.ledger_key in chosen]
        plan = [(d, origin_topic_of(d, known)) for d in report.to_replay]
        if dry_run or not plan:
            return report
        if publisher is not None:
            await _send(plan, ledger, publisher, rate, report)
        else:
            async with KafkaPublisher(settings or KafkaSettings.from_env()) as own:
                await _send(plan, ledger, own, rate, report)
    return report


async def _send(
    plan: list[tuple[DeadLetter, str]],
    ledger: ReplayLedger,
    publisher: Publisher,
    rate: float | None,
    report: ReplayReport,
) -> None:
    interval = 1.0 / rate if rate else 0.0
    started = time.monotonic()
    for index, (letter, origin) in enumerate(plan):
        if interval:
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # rate limit, not synchronisation
        target = await publisher.send(
            origin, letter.value, key=letter.origin_key, headers=letter.replay_headers()
        )
        await ledger.record(letter, target)
        report.replayed.append((letter, target))
