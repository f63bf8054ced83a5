"""Codec throughput of the event models (group "models"): decode and encode events/s.

Baselines from the same run: a bare `json.loads` (what full validation costs on top of
parsing), the concrete class's `model_validate_json` (what dispatch on `type` costs), and
`model_dump` + `json.dumps` for encoding (what the compiled serializer buys).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from _common import BenchContext, BenchRow

from coffeebuddy.infra.kafka.models import (
    ReminderScheduled,
    ReminderScheduledData,
    decode_event,
    decode_events,
    encode_event,
)

GROUP = "models"


def sample_event() -> ReminderScheduled:
    """A typical ~300-byte runner reminder."""
    due = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            reminder_id="run-8f3a:runner",
            kind="runner",
            run_id="run-8f3a",
            team_id="T024BE7LD",
            channel_id="C0123ABCD",
            recipient_user_id="U0456EFGH",
            due_at=due,
            expires_at=due + timedelta(minutes=15),
            place="Blue Bottle",
        ),
        id="0b7c2f6e-4d1a-4b8e-9a51-3c2d1e0f9a87",
        time=due - timedelta(minutes=20),
    )


def _rates(fn: Callable[[], object], calls: int, per_call: int, repeats: int) -> list[float]:
    """Operations per second of each of `repeats` rounds."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append(calls * per_call / (time.perf_counter() - start))
    return out


async def run(ctx: BenchContext) -> list[BenchRow]:
    """Measure decode/encode events/s for one ~300-byte ReminderScheduled."""
    n = 2_000 if ctx.quick else 30_000
    repeats = 2 if ctx.quick else 5  # CPU only, cheap: more rounds than the broker rows
    event = sample_event()
    raw = encode_event(event)
    size = len(raw)
    batch = [raw] * 500

    def baseline_encode() -> object:
        return json.dumps(event.model_dump(mode="json", exclude_none=True)).encode()

    decode = _rates(lambda: decode_event(raw), n, 1, repeats)
    parse_only = _rates(lambda: json.loads(raw), n, 1, repeats)
    known_class = _rates(lambda: ReminderScheduled.model_validate_json(raw), n, 1, repeats)
    batch_rate = _rates(lambda: decode_events(batch), max(1, n // len(batch)), len(batch), repeats)
    encode = _rates(lambda: encode_event(event), n, 1, repeats)
    encode_base = _rates(baseline_encode, n, 1, repeats)
    return [
        BenchRow.of(
            GROUP,
            f"decode_event ReminderScheduled ({size} B)",
            decode,
            "events/s",
            baseline="json.loads only (no validation)",
            baseline_samples=parse_only,
        ),
        BenchRow.of(
            GROUP,
            f"decode_event ReminderScheduled ({size} B), type dispatch",
            decode,
            "events/s",
            baseline="ReminderScheduled.model_validate_json",
            baseline_samples=known_class,
        ),
        BenchRow.of(
            GROUP,
            f"decode_events batch of {len(batch)} ({size} B each)",
            batch_rate,
            "events/s",
            baseline="decode_event one by one",
            baseline_samples=decode,
        ),
        BenchRow.of(
            GROUP,
            f"encode_event ReminderScheduled ({size} B)",
            encode,
            "events/s",
            baseline="model_dump + json.dumps",
            baseline_samples=encode_base,
        ),
    ]
