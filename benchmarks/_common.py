"""Shared shapes for `hatch run bench`: every bench module returns rows, run.py prints them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings


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

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass(frozen=True)
class BenchContext:
    """What run.py hands every bench module: a running embedded broker and settings for it."""

    bootstrap_servers: str
    settings: KafkaSettings
    quick: bool
