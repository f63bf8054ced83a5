"""Cyclic GC thresholds for a process holding many long-lived pending reminders: with CPython's
700/10/10, older-generation passes over 100,000 pending entries cost a quarter of an intake
(`hatch run bench`). Entries form no cycles, so collecting less only keeps cyclic garbage
(aiokafka, aiohttp internals) a little longer."""

from __future__ import annotations

import gc
import logging

__all__ = ["DEFAULT_GC_THRESHOLDS", "tune_gc"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

DEFAULT_GC_THRESHOLDS = (50_000, 20, 100)
"""(young allocations, young passes per middle pass, middle passes per full pass)."""


def tune_gc(thresholds: tuple[int, int, int] | None = DEFAULT_GC_THRESHOLDS) -> tuple[int, ...]:
    """Set the collector's thresholds for this process (None: leave them) and return the old
    ones. A process-wide setting: the deployable calls it once at start-up, a library never."""
    old = gc.get_threshold()
    if thresholds is None:
        return old
    if len(thresholds) != 3 or thresholds[0] < 1 or min(thresholds[1:]) < 1:
        raise ValueError(f"GC thresholds must be three positive integers, got {thresholds!r}")
    gc.set_threshold(*thresholds)
    log.info("garbage collector thresholds %s (were %s)", thresholds, old)
    return old
