"""Shared shapes for `hatch run bench`: every bench module returns rows, run.py prints them.

A row is the median of several rounds (`BenchRow.of`), with its spread, and so is its baseline,
measured in the same run: a ratio is only worth reading next to the spreads of both sides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import re
import statistics
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings

#: Rounds each measurement takes in a full run (`--quick` takes one).
ROUNDS = 3


def spread(samples: Sequence[float]) -> float | None:
    """Half the range of `samples` relative to their median (0.05 = +/-5 %); None for one."""
    if len(samples) < 2:
        return None
    middle = statistics.median(samples)
    if middle == 0:
        return None
    return (max(samples) - min(samples)) / 2 / abs(middle)


@dataclass(frozen=True)
class BenchRow:
    """One measured number, optionally against a baseline measured in the same run."""

    group: str
    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    target: str | None = None
    met: bool | None = None
    rounds: int = 1
    spread: float | None = None
    baseline_spread: float | None = None

    @classmethod
    def of(
        cls,
        group: str,
        name: str,
        samples: Sequence[float],
        unit: str,
        *,
        baseline: str | None = None,
        baseline_samples: Sequence[float] | None = None,
        target: str | None = None,
        meets: Callable[[float, float | None], bool] | None = None,
    ) -> BenchRow:
        """The median of `samples` (and of `baseline_samples`); `meets(value, base)` -> met."""
        if not samples:
            raise ValueError(f"bench row {name!r} has no samples")
        value = statistics.median(samples)
        base = statistics.median(baseline_samples) if baseline_samples else None
        return cls(
            group=group,
            name=name,
            value=value,
            unit=unit,
            baseline=baseline,
            baseline_value=base,
            target=target,
            met=meets(value, base) if meets is not None else None,
            rounds=len(samples),
            spread=spread(samples),
            baseline_spread=spread(baseline_samples) if baseline_samples else None,
        )

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


_TARGET = re.compile(r"^\s*(<=|>=|<|>|==)?\s*(-?[\d.,]+)\s*(x)?")


def met_from_target(target: str | None, value: float, ratio: float | None) -> bool | None:
    """Read a row's `target` ("<= 5 s", ">= 2000", ">= 0.95x", "0") against its median."""
    if target is None:
        return None
    match = _TARGET.match(target)
    if match is None:
        return None
    op, number, is_ratio = match.group(1) or "==", float(match.group(2).replace(",", "")), match[3]
    subject = ratio if is_ratio else value
    if subject is None:
        return None
    return {
        "<=": subject <= number,
        ">=": subject >= number,
        "<": subject < number,
        ">": subject > number,
        "==": subject == number,
    }[op]


def merge_rounds(per_round: Sequence[Sequence[BenchRow]]) -> list[BenchRow]:
    """Rows of the same name from several rounds as one row each: medians, spreads, targets
    read again against the medians."""
    names: dict[tuple[str, str], list[BenchRow]] = {}
    for rows in per_round:
        for row in rows:
            names.setdefault((row.group, row.name), []).append(row)
    out = []
    for (group, name), rows in names.items():
        first = rows[0]
        bases = [r.baseline_value for r in rows if r.baseline_value is not None]
        merged = BenchRow.of(
            group,
            name,
            [r.value for r in rows],
            first.unit,
            baseline=first.baseline,
            baseline_samples=bases or None,
        )
        out.append(
            dataclasses.replace(
                merged,
                target=first.target,
                met=met_from_target(first.target, merged.value, merged.ratio),
            )
        )
    return out


@contextlib.contextmanager
def input_frozen() -> Iterator[None]:
    """Objects built so far (the bench's input: tens of thousands of events) sit out every GC pass
    until the block ends. Else each full collection scans them, and whichever side of a ratio it
    lands in loses a tenth or more of its round: noise that is the bench's, not the code's."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def rounds(count: int, measure: Callable[[], Awaitable[float]]) -> list[float]:
    """`count` results of `measure`, one after another."""
    return [await measure() for _ in range(count)]


@dataclass(frozen=True)
class BenchContext:
    """What run.py hands every bench module: a running broker and settings for it."""

    bootstrap_servers: str
    settings: KafkaSettings
    quick: bool
    broker: str = "embedded"
    """`embedded` (Tansu) or `apache` (Apache Kafka, production client defaults)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The `KAFKA_*` variables behind `settings` (for bench children in other processes)."""

    @property
    def rounds(self) -> int:
        return 1 if self.quick else ROUNDS
