"""What a send's outcome counts: per-topic metric children, and a batch's tally of them."""

from __future__ import annotations

import time
from collections.abc import Sequence

from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.producer._records import RecordMetadata


class TopicMetrics:
    """Pre-resolved label children for one topic, so the hot path does no label lookups."""

    __slots__ = ("bytes", "duration", "error", "success")

    def __init__(self, metrics: KafkaMetrics, topic: str) -> None:
        self.success = metrics.messages_produced.labels(topic, "success")
        self.error = metrics.messages_produced.labels(topic, "error")
        self.duration = metrics.produce_duration.labels(topic)
        self.bytes = metrics.bytes_produced.labels(topic)


def tally(
    tm: TopicMetrics,
    start: float,
    values: Sequence[bytes | None],
    metas: Sequence[RecordMetadata | BaseException],
) -> tuple[list[RecordMetadata], list[BaseException]]:
    """Count a batch sent since `start` (perf_counter): (delivered records, failures)."""
    out: list[RecordMetadata] = []
    failures: list[BaseException] = []
    sent_bytes = 0
    for value, md in zip(values, metas, strict=True):
        if isinstance(md, BaseException):
            failures.append(md)
        else:
            out.append(md)
            sent_bytes += len(value or b"")
    tm.duration.observe(time.perf_counter() - start)
    if out:
        tm.success.inc(len(out))
        tm.bytes.inc(sent_bytes)
    if failures:
        tm.error.inc(len(failures))
    return out, failures
